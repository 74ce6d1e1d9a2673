"""Agency administration over HTTP, for the agency's supervisors."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web

from cad_adapters.errors import CadParseError
from cad_adapters.generic import decode_json
from dispatch.domain.agency_settings import SettingsError, validate_settings
from dispatch.secrets import TokenKind, bearer_token
from dispatch.store import agencies as agency_store
from dispatch.web import app_keys as keys
from dispatch.web.problems import Problem, invalid, malformed, not_found, unauthorized

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


def _settings_json(settings: dict[str, Any]) -> web.Response:
    return web.json_response(settings)


@routes.get("/v1/agencies/{agency_id}/settings")
async def get_settings(request: web.Request) -> web.Response:
    agency_id = await _supervised_agency(request)
    async with request.app[keys.POOL].acquire() as conn:
        current = await agency_store.settings(conn, agency_id)
    if current is None:
        raise not_found("agency")
    return _settings_json(current)


@routes.patch("/v1/agencies/{agency_id}/settings")
async def patch_settings(request: web.Request) -> web.Response:
    """Change alerting parameters and intake rules; unnamed settings stay as they are."""
    agency_id = await _supervised_agency(request)
    if request.content_type != "application/json":
        raise Problem(415, "unsupported-media-type", "Unsupported media type", "send JSON")
    try:
        data = decode_json(await request.read())
    except CadParseError as exc:
        raise malformed(exc.detail) from None
    try:
        changes = validate_settings(data)
    except SettingsError as exc:
        raise invalid(exc.pointer, exc.detail) from None
    async with request.app[keys.POOL].acquire() as conn:
        await agency_store.update_settings(conn, agency_id, changes)
        current = await agency_store.settings(conn, agency_id)
    request.app[keys.AUTH_CACHE].forget(agency_id)
    assert current is not None
    return _settings_json(current)
