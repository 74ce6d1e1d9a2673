"""Bearer-secret checks behind the failed-authentication throttle (``AuthGuard``)."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final, TypeVar
from uuid import UUID

from aiohttp import web

from dispatch.db.types import Conn
from dispatch.secrets import TokenKind, bearer_token, hash_token
from dispatch.store import accounts as account_store
from dispatch.store import agencies as agency_store
from dispatch.store import console_sessions
from dispatch.store import volunteers as volunteer_store
from dispatch.store.console_sessions import ConsoleSession
from dispatch.store.volunteers import VolunteerIdentity
from dispatch.web import app_keys as keys
from dispatch.web.problems import Problem, unauthorized

T = TypeVar("T")
THROTTLED_TYPE = "/problems/too-many-failed-attempts"


def throttled(wait_s: float) -> Problem:
    return Problem(
        429,
        "too-many-failed-attempts",
        "Too many failed attempts",
        "authentication failed too often from this client or for this agency; try later",
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
    )


async def checked(
    request: web.Request,
    agency_id: UUID | None,
    secret: str | None,
    look_up: Callable[[str], Awaitable[T | None]],
    *,
    refused: str,
) -> T:
    """``look_up(secret)``'s answer; 401 (``refused``) when it finds nothing, 429 while throttled.

    ``secret`` is None when the header is missing or malformed: a plain 401, never
    throttled or counted, as it costs no look-up and guesses nothing.
    """
    if secret is None:
        raise unauthorized()
    guard = request.app[keys.AUTH_GUARD]
    address = request.remote
    wait = guard.wait_s(address, agency_id, secret)
    if wait > 0:
        await guard.hold(wait)
        raise throttled(wait)

    async def attempt() -> T | None:
        if guard.is_known(secret):
            found = await look_up(secret)
            if found is None:
                guard.failed(address, agency_id)
            return found
        # Counted as a failure before the look-up, so that many guesses arriving at
        # once cannot all slip past the throttle while their look-ups are pending.
        guard.failed(address, agency_id)
        async with guard.lookup_slots:
            found = await look_up(secret)
        if found is not None:
            guard.refund(address, agency_id)
        return found

    found = await guard.once((agency_id, hash_token(secret)), attempt)
    if found is None:
        raise unauthorized(refused)
    guard.succeeded(secret)
    return found


CONSOLE_COOKIE: Final = "dispatch_console"
CSRF_HEADER: Final = "X-CSRF-Token"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# Writing last_seen_at on every call would cost a row update per page fetch; a minute of
# slack in the idle limit costs nothing.
_TOUCH_AFTER: Final = timedelta(seconds=60)


def csrf_token(session_secret: str) -> str:
    """The synchronizer token of a console session: derived from the cookie's secret, which
    another origin can neither read nor guess, so nothing more needs storing."""
    return hmac.new(session_secret.encode(), b"console-csrf", hashlib.sha256).hexdigest()


def uses_console_cookie(request: web.Request) -> bool:
    """A request speaks for a console session when it carries the cookie and no bearer."""
    return "Authorization" not in request.headers and CONSOLE_COOKIE in request.cookies


def session_expired() -> Problem:
    return Problem(
        401,
        "session-expired",
        "Console session ended",
        "the console session was signed out or expired; sign in again",
    )


def csrf_refused() -> Problem:
    return Problem(
        403,
        "csrf-token-missing",
        "CSRF token missing or wrong",
        f"a console request that changes anything needs the session's {CSRF_HEADER} header",
    )


async def console_session(request: web.Request) -> ConsoleSession:
    """The live console session named by the cookie; 401 when there is none or it ended,
    403 when a state-changing request lacks the session's CSRF token. Use is recorded
    (idle expiry) by :func:`record_use`, once the caller's own checks passed, so that a
    refused request changes nothing."""
    secret = request.cookies.get(CONSOLE_COOKIE)
    if secret is not None and (
        len(secret) > 512 or not secret.startswith(f"{TokenKind.CONSOLE_SESSION.value}_")
    ):
        secret = None
    settings = request.app[keys.SETTINGS]
    now = request.app[keys.CLOCK].now()
    idle = timedelta(seconds=settings.console_idle_s)

    async def look_up(presented: str) -> ConsoleSession | None:
        async with request.app[keys.POOL].acquire() as conn:
            found = await console_sessions.find(conn, presented, now, idle)
        if found is not None and found.ended:
            raise session_expired()
        return found

    session = await checked(
        request, None, secret, look_up, refused="the console session is not valid"
    )
    assert secret is not None
    if request.method not in _SAFE_METHODS:
        presented = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(presented.encode(), csrf_token(secret).encode()):
            raise csrf_refused()
    return session


async def record_use(
    request: web.Request, session: ConsoleSession, conn: Conn | None = None
) -> None:
    """Push the session's idle expiry back (on ``conn`` when the caller holds one)."""
    now = request.app[keys.CLOCK].now()
    if now - session.last_seen_at < _TOUCH_AFTER:
        return
    if conn is not None:
        await console_sessions.touch(conn, session.session_id, now)
        return
    async with request.app[keys.POOL].acquire() as own:
        await console_sessions.touch(own, session.session_id, now)


async def console_supervisor_of(request: web.Request, agency_id: UUID) -> int:
    session = await console_session(request)
    if session.agency_id != agency_id:
        raise unauthorized("the console session is not for this agency")
    await record_use(request, session)
    return session.supervisor_id


async def supervisor_of(request: web.Request, agency_id: UUID) -> int:
    """The supervisor's id when the bearer is a supervisor token of ``agency_id``, or the
    request carries a console session of ``agency_id`` (see :func:`console_session`);
    401, 403 or 429 otherwise."""
    if uses_console_cookie(request):
        return await console_supervisor_of(request, agency_id)
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None and not token.startswith(f"{TokenKind.SUPERVISOR.value}_"):
        token = None

    async def look_up(secret: str) -> int | None:
        async with request.app[keys.POOL].acquire() as conn:
            found = await agency_store.supervisor_identity(conn, secret)
        return found[0] if found is not None and found[1] == agency_id else None

    return await checked(
        request,
        agency_id,
        token,
        look_up,
        refused="the supervisor token is not valid for this agency",
    )


def token_expired() -> Problem:
    return Problem(
        401,
        "token-expired",
        "Access token expired",
        "refresh the session with its refresh token",
        headers={
            "WWW-Authenticate": 'Bearer realm="dispatch", error="invalid_token",'
            ' error_description="expired"'
        },
    )


async def volunteer_of(request: web.Request) -> VolunteerIdentity:
    """The volunteer behind a supervisor-issued token (``dvt_``) or a session's access token
    (``dva_``); 401 (``token-expired`` for a session's lapsed access token) or 429."""
    token = bearer_token(request.headers.get("Authorization"))
    kinds = (f"{TokenKind.VOLUNTEER.value}_", f"{TokenKind.VOLUNTEER_ACCESS.value}_")
    if token is not None and not token.startswith(kinds):
        token = None
    now = request.app[keys.CLOCK].now()

    async def look_up(secret: str) -> VolunteerIdentity | None:
        async with request.app[keys.POOL].acquire() as conn:
            if secret.startswith(kinds[0]):
                found: VolunteerIdentity | None = await volunteer_store.authenticate(conn, secret)
                return found
            session = await account_store.access_session(conn, secret, now)
        if session is None:
            return None
        if session.expired:
            raise token_expired()
        return VolunteerIdentity(
            session.volunteer_id,
            session.agency_id,
            session.eligible,
            session.on_duty,
            session.session_id,
        )

    return await checked(request, None, token, look_up, refused="the volunteer token is not valid")
