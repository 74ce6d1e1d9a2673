"""Volunteers' own accounts: codes by SMS, device sessions, refresh-token rotation.

No account enumeration: asking for a code answers the same for a number that has an
account and one that has none (sign-up for a known number sends that number a code
that signs its owner in), and a code that is wrong, expired, used or for a number
without an account fails the same way. Limits per number live in the database (every
process sees them); limits per client address in memory, like the failed-auth throttle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import asyncpg
import structlog

from dispatch.db.types import Conn
from dispatch.domain import phone_codes as codes
from dispatch.domain.notice_texts import NoticeKind, code_text
from dispatch.domain.phone_codes import CodeState, Verdict
from dispatch.domain.rate_limit import FailureThrottle
from dispatch.secrets import code_matches, hash_code, new_code, new_salt, phone_hash
from dispatch.service.auth_guard import client_network
from dispatch.store import accounts as account_store
from dispatch.store import agencies as agency_store
from dispatch.store import notices as notice_store
from dispatch.store import volunteer_events
from dispatch.store.accounts import SessionTokens
from dispatch.store.notices import NewNotice

log = structlog.get_logger(__name__)

ACCESS_TTL: Final = timedelta(minutes=15)
REFRESH_TTL: Final = timedelta(days=60)
"""A refresh token unused this long lapses; each use extends the session by as much."""
MAX_SESSIONS: Final = 10
"""Signed-in devices per volunteer; a new one beyond this signs the oldest out."""
_DUMMY_SALT: Final = bytes(16)
_DUMMY_HASH: Final = hash_code(_DUMMY_SALT, "------")


class Throttled(Exception):
    def __init__(self, wait_s: float) -> None:
        super().__init__(f"retry in {wait_s:.0f} s")
        self.wait_s = wait_s


class UnknownAgency(Exception):
    pass


class InvalidCode(Exception):
    """The code is wrong, expired or used, or the number has no account: one answer."""


class RefreshRefused(Exception):
    def __init__(self, reused: bool) -> None:
        super().__init__("refresh token reused" if reused else "refresh token not valid")
        self.reused = reused


class AddressLimits:
    """Per client network (IPv4 address, IPv6 /64): codes asked for and wrong codes tried."""

    def __init__(
        self,
        *,
        codes: tuple[int, float] = (10, 10 / 60),
        failures: tuple[int, float] = (20, 20 / 60),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._codes = FailureThrottle(*codes)
        self._failures = FailureThrottle(*failures)
        self._clock = clock

    def take_code(self, address: str | None) -> None:
        """Count a code request; raises :class:`Throttled` when this client asked too often."""
        key, now = client_network(address), self._clock()
        wait = self._codes.blocked_for(key, now)
        if wait > 0:
            raise Throttled(wait)
        self._codes.record(key, now)

    def check_failures(self, address: str | None) -> None:
        wait = self._failures.blocked_for(client_network(address), self._clock())
        if wait > 0:
            raise Throttled(wait)

    def failed(self, address: str | None) -> None:
        self._failures.record(client_network(address), self._clock())


async def request_code(
    pool: asyncpg.Pool,
    *,
    agency_id: UUID,
    phone_e164: str,
    signup: dict[str, Any] | None,
    now: datetime,
) -> bool:
    """Issue a code to the number (sign-up when ``signup`` holds name and language).

    Returns whether an SMS was queued: always for a sign-up, for a sign-in only when the
    number has an account (the caller answers the same either way). Raises Throttled
    when the number had too many codes, UnknownAgency for an agency that does not exist.
    """
    phone = phone_hash(agency_id, phone_e164)
    async with pool.acquire() as conn, conn.transaction():
        if not await agency_store.exists(conn, agency_id):
            raise UnknownAgency(str(agency_id))
        await account_store.lock_phone(conn, agency_id, phone)
        issued = await account_store.code_times(conn, agency_id, phone, now - codes.CODE_KEEP)
        wait = codes.phone_wait_s(issued, now)
        if wait > 0:
            raise Throttled(wait)
        volunteer_id = await account_store.volunteer_with_phone(conn, agency_id, phone_e164)
        code, salt = new_code(), new_salt()
        await account_store.issue_code(
            conn,
            agency_id=agency_id,
            phone_hash=phone,
            purpose="signup" if signup is not None else "signin",
            salt=salt,
            code_hash=hash_code(salt, code),
            signup=signup,
            now=now,
            expires_at=now + codes.CODE_TTL,
        )
        if volunteer_id is None and signup is None:
            return False
        title, body = code_text(code, int(codes.CODE_TTL.total_seconds() // 60))
        await notice_store.queue(
            conn,
            [
                NewNotice(
                    agency_id=agency_id,
                    volunteer_id=volunteer_id,
                    kind=NoticeKind.CODE.value,
                    available_at=now,
                    expires_at=now + codes.CODE_TTL,
                    title=title,
                    body=body,
                    phone_e164=phone_e164 if volunteer_id is None else None,
                )
            ],
            now=now,
        )
    return True


@dataclass(frozen=True, slots=True)
class _Outcome:
    verdict: Verdict
    tokens: SessionTokens | None = None
    held_s: int = 0


async def verify(
    pool: asyncpg.Pool,
    *,
    agency_id: UUID,
    phone_e164: str,
    code: str,
    device_label: str | None,
    now: datetime,
) -> SessionTokens:
    """Exchange a code for a new device session. Raises InvalidCode or Throttled (held)."""
    phone = phone_hash(agency_id, phone_e164)
    async with pool.acquire() as conn, conn.transaction():
        outcome = await _verify_in(conn, agency_id, phone, phone_e164, code, device_label, now)
    if outcome.verdict is Verdict.HELD:
        raise Throttled(outcome.held_s)
    if outcome.tokens is None:
        raise InvalidCode
    return outcome.tokens


async def _verify_in(
    conn: Conn,
    agency_id: UUID,
    phone: bytes,
    phone_e164: str,
    code: str,
    device_label: str | None,
    now: datetime,
) -> _Outcome:
    await account_store.lock_phone(conn, agency_id, phone)
    row = await account_store.latest_code(conn, agency_id, phone)
    # The comparison runs whether or not there is a code, so every path costs the same.
    matches = code_matches(
        code, row.salt if row else _DUMMY_SALT, row.code_hash if row else _DUMMY_HASH
    )
    verdict = codes.judge(row.stored if row else None, matches=matches, now=now)
    volunteer_id = await account_store.volunteer_with_phone(conn, agency_id, phone_e164)
    if verdict is Verdict.HELD:
        assert row is not None
        log.warning("signin_code_held", agency_id=str(agency_id), volunteer_id=volunteer_id)
        await _event(conn, agency_id, volunteer_id, "signin_attempt_held", now)
        return _Outcome(verdict, held_s=codes.held_for_s(row.stored, now))
    if row is None or row.stored.state is not CodeState.LIVE or row.stored.expires_at <= now:
        return _Outcome(verdict)
    if verdict is not Verdict.ACCEPTED:
        voided = verdict is Verdict.VOIDED_NOW
        await account_store.record_attempt(
            conn, row.code_id, CodeState.VOIDED if voided else CodeState.LIVE
        )
        if voided:
            log.warning("signin_code_voided", agency_id=str(agency_id), volunteer_id=volunteer_id)
            await _event(conn, agency_id, volunteer_id, "signin_code_voided", now)
        return _Outcome(verdict)
    await account_store.record_attempt(conn, row.code_id, CodeState.USED)
    if volunteer_id is None:
        if row.purpose != "signup" or row.signup is None:
            return _Outcome(Verdict.WRONG)
        volunteer_id = await account_store.create_self_registered(
            conn,
            agency_id=agency_id,
            display_name=row.signup["display_name"],
            phone_e164=phone_e164,
            language=row.signup.get("language", "en"),
            now=now,
        )
        await _event(conn, agency_id, volunteer_id, "signed_up", now)
    tokens = await _start_session(conn, agency_id, volunteer_id, device_label, now)
    return _Outcome(verdict, tokens=tokens)


async def _start_session(
    conn: Conn, agency_id: UUID, volunteer_id: int, device_label: str | None, now: datetime
) -> SessionTokens:
    live = await account_store.live_session_ids(conn, volunteer_id, now)
    if len(live) >= MAX_SESSIONS:
        await account_store.revoke(
            conn, volunteer_id, live[MAX_SESSIONS - 1 :], reason="too_many_sessions", now=now
        )
    tokens = await account_store.create_session(
        conn,
        agency_id=agency_id,
        volunteer_id=volunteer_id,
        device_label=device_label,
        now=now,
        access_ttl=ACCESS_TTL,
        refresh_ttl=REFRESH_TTL,
    )
    await _event(
        conn, agency_id, volunteer_id, "session_started", now, session_id=tokens.session_id
    )
    return tokens


async def _event(
    conn: Conn, agency_id: UUID, volunteer_id: int | None, name: str, now: datetime, **details: Any
) -> None:
    if volunteer_id is not None:
        await volunteer_events.record(conn, agency_id, volunteer_id, name, now, details)


async def refresh(pool: asyncpg.Pool, presented: str, *, now: datetime) -> SessionTokens:
    """Rotate a session's tokens. A refresh token used before revokes its whole session."""
    reused = False
    async with pool.acquire() as conn, conn.transaction():
        found = await account_store.lock_refresh(conn, presented, now)
        if found is None or found.revoked or found.expired:
            raise RefreshRefused(reused=False)
        if found.used:
            reused = True
            await account_store.revoke(
                conn, found.volunteer_id, [found.session_id], reason="refresh_reuse", now=now
            )
            await _event(
                conn,
                found.agency_id,
                found.volunteer_id,
                "session_revoked",
                now,
                session_id=found.session_id,
                reason="refresh_reuse",
            )
            log.warning("refresh_token_reused", session_id=found.session_id)
        else:
            return await account_store.rotate(
                conn, found, presented, now=now, access_ttl=ACCESS_TTL, refresh_ttl=REFRESH_TTL
            )
    raise RefreshRefused(reused=reused)


async def revoke_session(
    pool: asyncpg.Pool, agency_id: UUID, volunteer_id: int, session_id: int, *, now: datetime
) -> bool:
    """Sign a device out (its push devices stop too); False when there was no live one."""
    async with pool.acquire() as conn, conn.transaction():
        done = await account_store.revoke(
            conn, volunteer_id, [session_id], reason="signed_out", now=now
        )
        if done:
            await _event(
                conn,
                agency_id,
                volunteer_id,
                "session_revoked",
                now,
                session_id=session_id,
                reason="signed_out",
            )
    return bool(done)
