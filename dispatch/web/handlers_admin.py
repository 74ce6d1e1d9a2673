"""Agency administration over HTTP, for the agency's supervisors.

The use cases are ``dispatch.service.admin``'s, which the CLI calls too: this module only
reads the request, names the actor and turns refusals into problem+json.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any

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
from dispatch.web.body import check, json_body, read_upload
from dispatch.web.params import int_param, newest_page, page, supervisor
from dispatch.web.problems import Problem, found_json, invalid, malformed, not_found

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


async def _admin_change(
    request: web.Request, schema: str, use_case: Callable[..., Awaitable[Any]], **extra: Any
) -> Any:
    """Run ``use_case(conn, agency_id, document, actor=, now=, **extra)`` for the supervisor
    calling, on the request's ``schema``-checked JSON body."""
    agency_id, actor = await supervisor(request)
    data = await json_body(request, schema)
    async with _admin(request) as (conn, now):
        return await use_case(conn, agency_id, data, actor=actor, now=now, **extra)


@routes.get("/v1/agencies/{agency_id}/settings")
async def get_settings(request: web.Request) -> web.Response:
    agency_id, _ = await supervisor(request)
    async with request.app[keys.POOL].acquire() as conn:
        current = await agency_store.settings(conn, agency_id)
    return found_json(current, not_found("agency"))


@routes.patch("/v1/agencies/{agency_id}/settings")
async def patch_settings(request: web.Request) -> web.Response:
    """Change alerting parameters and intake rules; unnamed settings stay as they are."""
    current = await _admin_change(
        request, "AgencySettingsChange", admin.change_settings, followers=_followers(request)
    )
    return web.json_response(current)


@routes.put("/v1/agencies/{agency_id}/delivery-settings")
async def put_delivery_settings(request: web.Request) -> web.Response:
    """The delivery chain's windows and the iOS critical-alert flag; others stay."""
    stored = await _admin_change(request, "DeliverySettingsChange", admin.change_delivery_settings)
    return web.json_response(stored)


@routes.post("/v1/agencies/{agency_id}/volunteers")
async def create_volunteer(request: web.Request) -> web.Response:
    """Register a volunteer; the bearer token is in the answer, once."""
    volunteer_id, token = await _admin_change(request, "NewVolunteer", admin.create_volunteer)
    return web.json_response({"volunteer_id": volunteer_id, "token": token}, status=201)


@routes.get("/v1/agencies/{agency_id}/volunteers/{volunteer_id}")
async def get_volunteer(request: web.Request) -> web.Response:
    agency_id, _ = await supervisor(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await volunteer_store.settings_of(
            conn, agency_id, int_param(request, "volunteer_id")
        )
    return found_json(found, not_found("volunteer"))


@routes.patch("/v1/agencies/{agency_id}/volunteers/{volunteer_id}")
async def patch_volunteer(request: web.Request) -> web.Response:
    """Tier, certificate, duty, quiet hours, budget, tester, availability; others stay."""
    agency_id, actor = await supervisor(request)
    volunteer_id = int_param(request, "volunteer_id")
    data = await json_body(request, "VolunteerSettingsChange")
    async with _admin(request) as (conn, now):
        found = await admin.change_volunteer(
            conn, agency_id, volunteer_id, data, actor=actor, now=now, followers=_followers(request)
        )
    return web.json_response(found)


@routes.get("/v1/agencies/{agency_id}/volunteers/{volunteer_id}/events")
async def volunteer_events(request: web.Request) -> web.Response:
    """What happened to a volunteer outside incidents (devices, SMS opt-outs), newest first."""
    agency_id, _ = await supervisor(request)
    volunteer_id = int_param(request, "volunteer_id")
    limit, before = page(request, default=50, maximum=200)
    async with request.app[keys.POOL].acquire() as conn:
        if await volunteer_store.settings_of(conn, agency_id, volunteer_id) is None:
            raise not_found("volunteer")
        events = await volunteer_event_store.newest(
            conn, agency_id, volunteer_id, limit=limit, before_id=before
        )
    return web.json_response({"volunteer_id": volunteer_id, "events": events})


@routes.get("/v1/agencies/{agency_id}/policy")
async def get_policy(request: web.Request) -> web.Response:
    agency_id, _ = await supervisor(request)
    async with _admin(request) as (conn, _):
        policy = await admin.current_policy(conn, agency_id)
    return web.json_response(admin.policy_view(policy))


@routes.put("/v1/agencies/{agency_id}/policy")
async def put_policy(request: web.Request) -> web.Response:
    """A whole policy document (fields left out take the documented defaults)."""
    policy = await _admin_change(
        request, "PolicyDocument", admin.store_policy, followers=_followers(request)
    )
    return web.json_response(admin.policy_view(policy))


_CSV_TYPES = frozenset({"text/csv", "application/csv"})
_GEOJSON_TYPES = frozenset({"application/geo+json", "application/json"})
MAX_AED_UPLOAD_BYTES = 16 * 1024 * 1024
"""A national registry (50,000 AEDs with names and access notes) is several MB."""


@routes.post("/v1/agencies/{agency_id}/aeds")
async def import_aeds(request: web.Request) -> web.Response:
    """Add or update AEDs from CSV or GeoJSON; the whole file is checked before any is stored.

    Parsed in short slices and stored a chunk at a time (one transaction), so a large
    file never holds up other agencies' requests for more than a slice.
    """
    agency_id, _ = await supervisor(request)
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
    body = await read_upload(request, MAX_AED_UPLOAD_BYTES)
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
    agency_id, _ = await supervisor(request)
    limit, before = page(request, default=500, maximum=1000)
    async with request.app[keys.POOL].acquire() as conn:
        aeds = await aed_store.list_for_agency(conn, agency_id, limit=limit, before_id=before)
    next_before = aeds[-1]["id"] if len(aeds) == limit else None
    return web.json_response({"aeds": aeds, "next_before": next_before})


@routes.get("/v1/agencies/{agency_id}/rejected-documents")
async def list_rejected_documents(request: web.Request) -> web.Response:
    """CAD documents the intake refused, newest first, with why (page with ``before``)."""
    return await newest_page(request, "documents", rejected_store.newest)


@routes.get("/v1/agencies/{agency_id}/feeds")
async def list_feeds(request: web.Request) -> web.Response:
    """Each polled feed's health: last poll and success, failures, errors, refused items."""
    agency_id, _ = await supervisor(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await feed_store.health(conn, agency_id)
    return web.json_response({"feeds": [health_view(r) for r in rows]})
