"""The supervisors' web console: its static pages, sign-in and sign-out, and the live
board's event stream. Every number the pages show comes from the /v1 API, which accepts the
console's session cookie in place of a supervisor token (see ``dispatch.web.auth``)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from functools import cache
from importlib import resources
from typing import Any, Final

from aiohttp import web

from dispatch.domain.agency_settings import tile_origin
from dispatch.secrets import TokenKind
from dispatch.service.board_hub import CLOSED, board, fingerprint
from dispatch.store import agencies as agency_store
from dispatch.store import console_sessions
from dispatch.store.console_sessions import ConsoleSession
from dispatch.web import app_keys as keys
from dispatch.web.auth import (
    CONSOLE_COOKIE,
    checked,
    console_session,
    csrf_token,
    record_use,
)
from dispatch.web.body import json_body
from dispatch.web.problems import not_found, unauthorized

routes = web.RouteTableDef()

# Nothing but our own origin: no inline script or style, no frames, no plugins. The one
# exception is an agency's own map tile server, for images only, named by its setting.
_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
CONTENT_SECURITY_POLICY: Final = _POLICY.format(images="'self'")
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
_ASSET_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.(html|js|css|svg)$")
# A quiet stream still says something this often, so proxies keep it open and a closed
# browser is noticed (the write fails).
_KEEPALIVE_S: Final = 15.0
# Streams end after this long; the browser's EventSource reconnects on its own, and the
# session is checked again when it does.
_STREAM_MAX_S: Final = 600.0


@cache
def _assets() -> dict[str, bytes]:
    """Every file the console ships, read once (a few tens of kB)."""
    folder = resources.files("dispatch").joinpath("console_static")
    return {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and _ASSET_RE.match(entry.name)
    }


def _static(name: str) -> web.Response:
    body = _assets().get(name)
    if body is None:
        raise not_found("asset")
    suffix = name[name.rindex(".") :]
    return web.Response(body=body, content_type=_TYPES[suffix], headers=SECURITY_HEADERS)


@routes.get("/console/")
async def console_index(request: web.Request) -> web.Response:
    response = _static("index.html")
    origin = await _tile_origin(request)
    if origin is not None:
        response.headers["Content-Security-Policy"] = _POLICY.format(images=f"'self' {origin}")
    return response


async def _tile_origin(request: web.Request) -> str | None:
    """The tile server of the signed-in supervisor's agency, if it has one. Only widens
    what the page may load as images; grants nothing, so the look-up is not throttled."""
    secret = request.cookies.get(CONSOLE_COOKIE)
    if secret is None or len(secret) > 512:
        return None
    settings = request.app[keys.SETTINGS]
    now = request.app[keys.CLOCK].now()
    async with request.app[keys.POOL].acquire() as conn:
        session = await console_sessions.find(
            conn, secret, now, timedelta(seconds=settings.console_idle_s)
        )
        if session is None or session.ended:
            return None
        template = await agency_store.map_tile_url(conn, session.agency_id)
    return tile_origin(template) if template else None


@routes.get("/console/{asset}")
async def console_asset(request: web.Request) -> web.Response:
    return _static(request.match_info["asset"])


def _session_json(session: ConsoleSession, secret: str) -> dict[str, Any]:
    return {
        "agency_id": str(session.agency_id),
        "supervisor_id": session.supervisor_id,
        "supervisor_name": session.supervisor_name,
        "csrf_token": csrf_token(secret),
        "idle_expires_at": session.idle_until.isoformat(),
        "expires_at": session.expires_at.isoformat(),
    }


def _secure(request: web.Request) -> bool:
    base = request.app[keys.SETTINGS].public_base_url
    return base is not None and base.lower().startswith("https://")


@routes.post("/console/session")
async def sign_in(request: web.Request) -> web.Response:
    """A supervisor token exchanged for a session cookie (the token is not kept)."""
    data = await json_body(request, "ConsoleSignIn")
    token = str(data["token"])
    if not token.startswith(f"{TokenKind.SUPERVISOR.value}_"):
        raise unauthorized("the supervisor token is not valid")

    async def look_up(secret: str) -> tuple[int, Any] | None:
        async with request.app[keys.POOL].acquire() as conn:
            return await agency_store.supervisor_identity(conn, secret)

    supervisor_id, agency_id = await checked(
        request, None, token, look_up, refused="the supervisor token is not valid"
    )
    settings = request.app[keys.SETTINGS]
    now = request.app[keys.CLOCK].now()
    idle = timedelta(seconds=settings.console_idle_s)
    async with request.app[keys.POOL].acquire() as conn:
        secret = await console_sessions.create(
            conn,
            agency_id=agency_id,
            supervisor_id=supervisor_id,
            now=now,
            max_age=timedelta(seconds=settings.console_max_age_s),
        )
        session = await console_sessions.find(conn, secret, now, idle)
    assert session is not None
    response = web.json_response(_session_json(session, secret), status=201)
    response.set_cookie(
        CONSOLE_COOKIE,
        secret,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )
    response.headers.update(SECURITY_HEADERS)
    return response


@routes.get("/console/session")
async def whoami(request: web.Request) -> web.Response:
    """The signed-in supervisor, and the CSRF token the page sends with every change."""
    session = await console_session(request)
    await record_use(request, session)
    secret = request.cookies[CONSOLE_COOKIE]
    response = web.json_response(_session_json(session, secret))
    response.headers.update(SECURITY_HEADERS)
    return response


@routes.delete("/console/session")
async def sign_out(request: web.Request) -> web.Response:
    session = await console_session(request)
    async with request.app[keys.POOL].acquire() as conn:
        await console_sessions.sign_out(conn, session.session_id, request.app[keys.CLOCK].now())
    response = web.Response(status=204, headers=SECURITY_HEADERS)
    response.del_cookie(CONSOLE_COOKIE, path="/", samesite="Strict", secure=_secure(request))
    return response


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


@routes.get("/console/events")
async def board_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the agency's live board at once, then each time it changes."""
    # Not a use of the session: a board left open on a wall does not keep it alive.
    session = await console_session(request)
    response = web.StreamResponse(
        headers={
            **SECURITY_HEADERS,
            "Content-Type": "text/event-stream",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await _stream(request, response, session)
    except ConnectionResetError:
        # The browser left (closed the tab, navigated): nothing to answer, nothing wrong.
        return response
    await response.write_eof()
    return response


async def _stream(
    request: web.Request, response: web.StreamResponse, session: ConsoleSession
) -> None:
    hub = request.app[keys.BOARD_HUB]
    async with hub.listen(session.agency_id) as listener:
        await response.prepare(request)
        first = await board(request.app[keys.POOL], request.app[keys.CLOCK], session.agency_id)
        listener.seen = fingerprint(first)
        await response.write(_event("board", json.dumps(first, separators=(",", ":"))))
        started = request.app[keys.CLOCK].now()
        while True:
            text = await listener.next(_KEEPALIVE_S)
            if text == CLOSED:
                break
            if text is None:
                now = request.app[keys.CLOCK].now()
                if session.idle_until <= now or (now - started).total_seconds() > _STREAM_MAX_S:
                    await response.write(_event("end", "{}"))
                    break
                await response.write(b": keep-alive\n\n")
                continue
            await response.write(_event("board", text))
