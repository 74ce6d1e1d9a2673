"""Agency administration over HTTP, for the agency's supervisors.

The use cases are ``dispatch.service.admin``'s, which the CLI calls too: this module only
reads the request, names the actor and turns refusals into problem+json.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from aiohttp import web

from dispatch.domain.aed_import import AedRecord
from dispatch.domain.aed_import import iter_csv as iter_aed_csv
from dispatch.domain.aed_import import iter_geojson as iter_aed_geojson
from dispatch.domain.field_error import FieldError
from dispatch.domain.json_stream import JsonSyntaxError
from dispatch.service import admin, aed_import
from dispatch.service.feeds import health_view
from dispatch.store import aeds as aed_store
from dispatch.store import agencies as agency_store
from dispatch.store import feeds as feed_store
from dispatch.store import rejected as rejected_store
from dispatch.store import volunteer_events as volunteer_event_store
from dispatch.store import volunteers as volunteer_store
from dispatch.web import app_keys as keys
from dispatch.web.auth import supervisor_of
from dispatch.web.body import check, json_body
from dispatch.web.params import supervisor
from dispatch.web.problems import Problem, invalid, malformed, not_found

routes = web.RouteTableDef()


def _followers(request: web.Request) -> admin.Followers:
    return admin.Followers(
        auth_cache=request.app[keys.AUTH_CACHE],
        positions=request.app[keys.POSITIONS],
        writer=request.app[keys.POSITION_WRITER],
    )


@asynccontextmanager
async def _admin(request: web.Request) -> AsyncIterator[tuple[Any, datetime]]:
    """A connection and the time for one admin use case; its refusals as problem+json."""
    async with request.app[keys.POOL].acquire() as conn:
        try:
            yield conn, request.app[keys.CLOCK].now()
        except FieldError as exc:
            raise invalid(exc.pointer, exc.detail) from None
        except admin.NotFound as exc:
            raise not_found(exc.what) from None


async def _supervised_agency(request: web.Request) -> UUID:
    try:
        agency_id = UUID(request.match_info["agency_id"])
    except ValueError:
        raise not_found("agency") from None
    await supervisor_of(request, agency_id)
    return agency_id


@routes.get("/v1/agencies/{agency_id}/settings")
async def get_settings(request: web.Request) -> web.Response:
    agency_id = await _supervised_agency(request)
    async with request.app[keys.POOL].acquire() as conn:
        current = await agency_store.settings(conn, agency_id)
    if current is None:
        raise not_found("agency")
    return web.json_response(current)


@routes.patch("/v1/agencies/{agency_id}/settings")
async def patch_settings(request: web.Request) -> web.Response:
    """Change alerting parameters and intake rules; unnamed settings stay as they are."""
    agency_id, actor = await supervisor(request)
    data = await json_body(request, "AgencySettingsChange")
    async with _admin(request) as (conn, now):
        current = await admin.change_settings(
            conn, agency_id, data, actor=actor, now=now, followers=_followers(request)
        )
    return web.json_response(current)


@routes.post("/v1/agencies/{agency_id}/volunteers")
async def create_volunteer(request: web.Request) -> web.Response:
    """Register a volunteer; the bearer token is in the answer, once."""
    agency_id, actor = await supervisor(request)
    data = await json_body(request, "NewVolunteer")
    async with _admin(request) as (conn, now):
        volunteer_id, token = await admin.create_volunteer(
            conn, agency_id, data, actor=actor, now=now
        )
    return web.json_response({"volunteer_id": volunteer_id, "token": token}, status=201)


def _volunteer_id(request: web.Request) -> int:
    raw = request.match_info["volunteer_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise not_found("volunteer")
    return int(raw)


@routes.get("/v1/agencies/{agency_id}/volunteers/{volunteer_id}")
async def get_volunteer(request: web.Request) -> web.Response:
    agency_id = await _supervised_agency(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await volunteer_store.settings_of(conn, agency_id, _volunteer_id(request))
    if found is None:
        raise not_found("volunteer")
    return web.json_response(found)


@routes.patch("/v1/agencies/{agency_id}/volunteers/{volunteer_id}")
async def patch_volunteer(request: web.Request) -> web.Response:
    """Tier, certificate, duty, quiet hours, budget, tester, availability; others stay."""
    agency_id, actor = await supervisor(request)
    volunteer_id = _volunteer_id(request)
    data = await json_body(request, "VolunteerSettingsChange")
    async with _admin(request) as (conn, now):
        found = await admin.change_volunteer(
            conn, agency_id, volunteer_id, data, actor=actor, now=now, followers=_followers(request)
        )
    return web.json_response(found)


@routes.get("/v1/agencies/{agency_id}/volunteers/{volunteer_id}/events")
async def volunteer_events(request: web.Request) -> web.Response:
    """What happened to a volunteer outside incidents (devices, SMS opt-outs), newest first."""
    agency_id = await _supervised_agency(request)
    volunteer_id = _volunteer_id(request)
    limit = _query_int(request, "limit", default=50, low=1, high=200)
    before = _query_int(request, "before", default=2**63 - 1, low=1, high=2**63 - 1)
    async with request.app[keys.POOL].acquire() as conn:
        if await volunteer_store.settings_of(conn, agency_id, volunteer_id) is None:
            raise not_found("volunteer")
        events = await volunteer_event_store.newest(
            conn, agency_id, volunteer_id, limit=limit, before_id=before
        )
    return web.json_response({"volunteer_id": volunteer_id, "events": events})


@routes.get("/v1/agencies/{agency_id}/policy")
async def get_policy(request: web.Request) -> web.Response:
    agency_id = await _supervised_agency(request)
    async with _admin(request) as (conn, _):
        policy = await admin.current_policy(conn, agency_id)
    return web.json_response(admin.policy_view(policy))


@routes.put("/v1/agencies/{agency_id}/policy")
async def put_policy(request: web.Request) -> web.Response:
    """A whole policy document (fields left out take the documented defaults)."""
    agency_id, actor = await supervisor(request)
    data = await json_body(request, "PolicyDocument")
    async with _admin(request) as (conn, now):
        policy = await admin.store_policy(
            conn, agency_id, data, actor=actor, now=now, followers=_followers(request)
        )
    return web.json_response(admin.policy_view(policy))


_CSV_TYPES = frozenset({"text/csv", "application/csv"})
_GEOJSON_TYPES = frozenset({"application/geo+json", "application/json"})
MAX_AED_UPLOAD_BYTES = 16 * 1024 * 1024
"""A national registry (50,000 AEDs with names and access notes) is several MB."""


async def _read_upload(request: web.Request, limit: int) -> bytes:
    """The body, up to ``limit`` bytes (above the app-wide cap, for this route only)."""
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "body-too-large", "Body too large", f"at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "body-too-large", "Body too large", f"at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@routes.post("/v1/agencies/{agency_id}/aeds")
async def import_aeds(request: web.Request) -> web.Response:
    """Add or update AEDs from CSV or GeoJSON; the whole file is checked before any is stored.

    Parsed in short slices and stored a chunk at a time (one transaction), so a large
    file never holds up other agencies' requests for more than a slice.
    """
    agency_id = await _supervised_agency(request)
    read: Callable[[str], Iterator[AedRecord]]
    if request.content_type in _CSV_TYPES:
        read = iter_aed_csv
    elif request.content_type in _GEOJSON_TYPES:
        # Each feature is held to the documented schema as it is decoded (the file is not
        # decoded whole, so the collection's schema cannot be checked in one go).
        read = partial(iter_aed_geojson, vet=partial(check, "AedFeature"))
    else:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "send text/csv or application/geo+json",
        )
    body = await _read_upload(request, MAX_AED_UPLOAD_BYTES)
    try:
        count = await aed_import.import_file(
            request.app[keys.POOL],
            agency_id,
            read(body.decode("utf-8-sig")),
            now=request.app[keys.CLOCK].now(),
        )
    except UnicodeDecodeError:
        raise malformed("the file is not UTF-8") from None
    except JsonSyntaxError as exc:
        raise malformed(str(exc)) from None
    except FieldError as exc:
        raise invalid(exc.pointer, exc.detail) from None
    request.app[keys.AUTH_CACHE].forget(agency_id)
    return web.json_response({"imported": count})


@routes.get("/v1/agencies/{agency_id}/aeds")
async def list_aeds(request: web.Request) -> web.Response:
    """The agency's active AEDs, newest first, a page at a time (next page: ``before``)."""
    agency_id = await _supervised_agency(request)
    limit = _query_int(request, "limit", default=500, low=1, high=1000)
    before = _query_int(request, "before", default=2**63 - 1, low=1, high=2**63 - 1)
    async with request.app[keys.POOL].acquire() as conn:
        aeds = await aed_store.list_for_agency(conn, agency_id, limit=limit, before_id=before)
    next_before = aeds[-1]["id"] if len(aeds) == limit else None
    return web.json_response({"aeds": aeds, "next_before": next_before})


def _query_int(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Problem(
            400,
            "invalid-parameter",
            "A query parameter is invalid",
            f"{name} must be an integer from {low} to {high}",
            extra={"invalid-params": [{"name": name, "reason": f"from {low} to {high}"}]},
        )
    return value


@routes.get("/v1/agencies/{agency_id}/rejected-documents")
async def list_rejected_documents(request: web.Request) -> web.Response:
    """CAD documents the intake refused, newest first, with why (page with ``before``)."""
    agency_id = await _supervised_agency(request)
    limit = _query_int(request, "limit", default=50, low=1, high=200)
    before = _query_int(request, "before", default=2**63 - 1, low=1, high=2**63 - 1)
    async with request.app[keys.POOL].acquire() as conn:
        docs = await rejected_store.newest(conn, agency_id, limit=limit, before_id=before)
    return web.json_response({"documents": docs})


@routes.get("/v1/agencies/{agency_id}/feeds")
async def list_feeds(request: web.Request) -> web.Response:
    """Each polled feed's health: last poll and success, failures, errors, refused items."""
    agency_id = await _supervised_agency(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await feed_store.health(conn, agency_id)
    return web.json_response({"feeds": [health_view(r) for r in rows]})
