"""Agency administration over HTTP, for the agency's supervisors."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from cad_adapters.errors import CadParseError
from cad_adapters.generic import decode_json
from dispatch.domain.aed_import import AedImportError
from dispatch.domain.aed_import import parse_csv as parse_aed_csv
from dispatch.domain.aed_import import parse_geojson as parse_aed_geojson
from dispatch.domain.agency_settings import SettingsError, validate_settings
from dispatch.domain.policy import AlertPolicy, PolicyError, policy_from_json
from dispatch.domain.volunteer_settings import (
    IDENTITY_FIELDS,
    validate_identity,
    validate_volunteer_settings,
)
from dispatch.secrets import TokenKind, bearer_token
from dispatch.service.feeds import health_view
from dispatch.store import aeds as aed_store
from dispatch.store import agencies as agency_store
from dispatch.store import feeds as feed_store
from dispatch.store import rejected as rejected_store
from dispatch.store import volunteers as volunteer_store
from dispatch.web import app_keys as keys
from dispatch.web.body import check, json_body
from dispatch.web.problems import (
    Problem,
    invalid,
    malformed,
    not_found,
    refused_document,
    unauthorized,
)

routes = web.RouteTableDef()


async def _supervised_agency(request: web.Request) -> UUID:
    try:
        agency_id = UUID(request.match_info["agency_id"])
    except ValueError:
        raise not_found("agency") from None
    token = bearer_token(request.headers.get("Authorization"))
    if token is None or not token.startswith(f"{TokenKind.SUPERVISOR.value}_"):
        raise unauthorized()
    async with request.app[keys.POOL].acquire() as conn:
        if await agency_store.supervisor_agency(conn, token) != agency_id:
            raise unauthorized("the supervisor token is not valid for this agency")
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
    agency_id = await _supervised_agency(request)
    data = await json_body(request, "AgencySettingsChange")
    try:
        changes = validate_settings(data)
    except SettingsError as exc:
        raise invalid(exc.pointer, exc.detail) from None
    async with request.app[keys.POOL].acquire() as conn:
        await agency_store.update_settings(conn, agency_id, changes)
        current = await agency_store.settings(conn, agency_id)
    request.app[keys.AUTH_CACHE].forget(agency_id)
    assert current is not None
    return web.json_response(current)


@routes.post("/v1/agencies/{agency_id}/volunteers")
async def create_volunteer(request: web.Request) -> web.Response:
    """Register a volunteer; the bearer token is in the answer, once."""
    agency_id = await _supervised_agency(request)
    data = await json_body(request, "NewVolunteer")
    try:
        identity = validate_identity(data)
        settings = validate_volunteer_settings(
            {k: v for k, v in data.items() if k not in IDENTITY_FIELDS}
        )
    except SettingsError as exc:
        raise invalid(exc.pointer, exc.detail) from None
    async with request.app[keys.POOL].acquire() as conn:
        volunteer_id, token = await volunteer_store.create_volunteer(
            conn,
            agency_id=agency_id,
            display_name=identity.display_name,
            phone_e164=identity.phone_e164,
            language=identity.language,
            settings=settings,
            now=request.app[keys.CLOCK].now(),
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
    agency_id = await _supervised_agency(request)
    volunteer_id = _volunteer_id(request)
    try:
        changes = validate_volunteer_settings(await json_body(request, "VolunteerSettingsChange"))
    except SettingsError as exc:
        raise invalid(exc.pointer, exc.detail) from None
    if not changes:
        raise invalid("", "name at least one setting to change")
    async with request.app[keys.POOL].acquire() as conn:
        if not await volunteer_store.update_settings(conn, agency_id, volunteer_id, changes):
            raise not_found("volunteer")
        found = await volunteer_store.settings_of(conn, agency_id, volunteer_id)
        position = await volunteer_store.position_of(conn, volunteer_id)
    assert found is not None
    # The index holds only volunteers who may be alerted: follow the change at once.
    cache = request.app[keys.POSITIONS]
    if found["verified"] and found["available"] and position is not None:
        cache.upsert(position)
    else:
        cache.remove(volunteer_id)
    return web.json_response(found)


def _policy_json(policy: AlertPolicy) -> dict[str, Any]:
    return {"version": policy.version, **policy.to_json()}


@routes.get("/v1/agencies/{agency_id}/policy")
async def get_policy(request: web.Request) -> web.Response:
    agency_id = await _supervised_agency(request)
    async with request.app[keys.POOL].acquire() as conn:
        agency = await agency_store.policy(conn, agency_id)
    if agency is None:
        raise not_found("agency")
    return web.json_response(_policy_json(agency.alert_policy))


@routes.put("/v1/agencies/{agency_id}/policy")
async def put_policy(request: web.Request) -> web.Response:
    """A whole policy document (fields left out take the documented defaults)."""
    agency_id = await _supervised_agency(request)
    data = await json_body(request, "PolicyDocument")
    try:
        policy = policy_from_json(data)
    except PolicyError as exc:
        raise invalid(exc.pointer, exc.detail) from None
    async with request.app[keys.POOL].acquire() as conn:
        version = await agency_store.store_alert_policy(conn, agency_id, policy)
    request.app[keys.AUTH_CACHE].forget(agency_id)
    return web.json_response({**_policy_json(policy), "version": version})


_CSV_TYPES = frozenset({"text/csv", "application/csv"})
_GEOJSON_TYPES = frozenset({"application/geo+json", "application/json"})


@routes.post("/v1/agencies/{agency_id}/aeds")
async def import_aeds(request: web.Request) -> web.Response:
    """Add or update AEDs from CSV or GeoJSON; the whole file is checked before any is stored."""
    agency_id = await _supervised_agency(request)
    body = await request.read()
    try:
        if request.content_type in _CSV_TYPES:
            records = parse_aed_csv(body.decode("utf-8-sig"))
        elif request.content_type in _GEOJSON_TYPES:
            try:
                document = decode_json(body)
            except CadParseError as exc:
                raise refused_document(exc.pointer, exc.detail) from None
            check("AedFeatureCollection", document)
            records = parse_aed_geojson(document)
        else:
            raise Problem(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                "send text/csv or application/geo+json",
            )
    except UnicodeDecodeError:
        raise malformed("the file is not UTF-8") from None
    except AedImportError as exc:
        raise invalid(exc.pointer, exc.detail) from None
    async with request.app[keys.POOL].acquire() as conn:
        count = await aed_store.import_records(
            conn, agency_id, records, request.app[keys.CLOCK].now()
        )
    request.app[keys.AUTH_CACHE].forget(agency_id)
    return web.json_response({"imported": count})


@routes.get("/v1/agencies/{agency_id}/aeds")
async def list_aeds(request: web.Request) -> web.Response:
    agency_id = await _supervised_agency(request)
    async with request.app[keys.POOL].acquire() as conn:
        aeds = await aed_store.list_for_agency(conn, agency_id)
    return web.json_response({"aeds": aeds})


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
