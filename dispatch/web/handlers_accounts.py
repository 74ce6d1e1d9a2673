"""Volunteers join and sign in by phone code; device sessions are listed and revoked.

JSON in and out, no cookies: the access token goes in ``Authorization: Bearer``, the
refresh token in the body of ``/v1/volunteers/refresh``, so a browser app and a phone
app use the API the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final
from uuid import UUID

from aiohttp import web

from dispatch.domain.field_error import FieldError
from dispatch.domain.phone_codes import CODE_TTL
from dispatch.domain.volunteer_settings import validate_identity
from dispatch.service import accounts
from dispatch.service.accounts import InvalidCode, RefreshRefused, Throttled, UnknownAgency
from dispatch.store import accounts as account_store
from dispatch.store.accounts import SessionTokens
from dispatch.web import app_keys as keys
from dispatch.web.auth import volunteer_of
from dispatch.web.body import json_body
from dispatch.web.params import int_param, too_many
from dispatch.web.problems import Problem, invalid, not_found

routes = web.RouteTableDef()

_SENT: Final = {"status": "code_sent", "expires_in_s": int(CODE_TTL.total_seconds())}


async def _send_code(request: web.Request, data: dict[str, str], signup: bool) -> web.Response:
    signup_data = None
    if signup:
        try:
            identity = validate_identity(data)
        except FieldError as exc:
            raise invalid(exc.pointer, exc.detail) from None
        signup_data = {"display_name": identity.display_name, "language": identity.language}
    try:
        request.app[keys.ADDRESS_LIMITS].take_code(request.remote)
        queued = await accounts.request_code(
            request.app[keys.POOL],
            agency_id=UUID(data["agency_id"]),
            phone_e164=data["phone_e164"],
            signup=signup_data,
            now=request.app[keys.CLOCK].now(),
        )
    except UnknownAgency:
        raise not_found("agency") from None
    except Throttled as exc:
        raise too_many(exc.wait_s, "too many codes for this number or from this client") from None
    if queued:
        request.app[keys.NOTICE_WORKER].wakeup.set()
    return web.json_response(_SENT, status=202)


@routes.post("/v1/volunteers/signup")
async def signup(request: web.Request) -> web.Response:
    """Same answer whether the number is new or already has an account (no enumeration)."""
    return await _send_code(request, await json_body(request, "Signup"), signup=True)


@routes.post("/v1/volunteers/signin")
async def signin(request: web.Request) -> web.Response:
    return await _send_code(request, await json_body(request, "Signin"), signup=False)


@routes.post("/v1/volunteers/verify")
async def verify(request: web.Request) -> web.Response:
    data = await json_body(request, "Verify")
    return await _tokens(
        request,
        lambda: accounts.verify(
            request.app[keys.POOL],
            agency_id=UUID(data["agency_id"]),
            phone_e164=data["phone_e164"],
            code=data["code"],
            device_label=data.get("device_label"),
            now=request.app[keys.CLOCK].now(),
        ),
        throttled="too many wrong codes from this client or for this number; ask again later",
    )


@routes.post("/v1/volunteers/refresh")
async def refresh(request: web.Request) -> web.Response:
    data = await json_body(request, "Refresh")
    return await _tokens(
        request,
        lambda: accounts.refresh(
            request.app[keys.POOL], data["refresh_token"], now=request.app[keys.CLOCK].now()
        ),
        throttled="too many invalid refresh tokens from this client",
    )


def _refused(exc: InvalidCode | RefreshRefused) -> Problem:
    if isinstance(exc, InvalidCode):
        return Problem(
            401, "invalid-code", "The code is not valid", "wrong, expired or already used"
        )
    if exc.reused:
        return Problem(
            401,
            "refresh-token-reused",
            "Refresh token reused",
            "this refresh token was used before: the session is revoked; sign in again",
        )
    return Problem(
        401, "invalid-refresh-token", "Refresh token not valid", "unknown, expired or revoked"
    )


async def _tokens(
    request: web.Request, sign_in: Callable[[], Awaitable[SessionTokens]], *, throttled: str
) -> web.Response:
    """New session tokens for a presented secret (code or refresh token). A client that has
    presented too many wrong ones is held off before trying; each wrong one counts."""
    limits = request.app[keys.ADDRESS_LIMITS]
    try:
        limits.check_failures(request.remote)
        tokens = await sign_in()
    except Throttled as exc:
        raise too_many(exc.wait_s, throttled) from None
    except (InvalidCode, RefreshRefused) as exc:
        limits.failed(request.remote)
        raise _refused(exc) from None
    return web.json_response(tokens.to_json())


@routes.get("/v1/me/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await account_store.sessions_of(
            conn, volunteer.volunteer_id, request.app[keys.CLOCK].now()
        )
    sessions = [{**s, "current": s["session_id"] == volunteer.session_id} for s in found]
    return web.json_response({"sessions": sessions})


@routes.delete("/v1/me/sessions/{session_id}")
async def revoke_session(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    session_id = int_param(request, "session_id")
    done = await accounts.revoke_session(
        request.app[keys.POOL],
        volunteer.agency_id,
        volunteer.volunteer_id,
        session_id,
        now=request.app[keys.CLOCK].now(),
    )
    if not done:
        raise not_found("session")
    return web.Response(status=204)
