"""Bearer-secret checks behind the failed-authentication throttle (``AuthGuard``)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

from aiohttp import web

from dispatch.secrets import TokenKind, bearer_token, hash_token
from dispatch.store import accounts as account_store
from dispatch.store import agencies as agency_store
from dispatch.store import volunteers as volunteer_store
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


async def supervisor_of(request: web.Request, agency_id: UUID) -> int:
    """The supervisor's id when the bearer is a supervisor token of ``agency_id``; 401 or
    429 otherwise."""
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
