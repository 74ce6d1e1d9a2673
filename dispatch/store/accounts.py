"""Sign-in codes and device sessions (migration 0011). Secrets are stored as hashes only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.domain.phone_codes import CodeState, StoredCode
from dispatch.secrets import TokenKind, hash_token, new_token, token_matches
from dispatch.store import webpush as webpush_store

# --- codes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeRow:
    code_id: int
    purpose: str
    salt: bytes
    code_hash: bytes
    signup: dict[str, Any] | None
    stored: StoredCode


async def volunteer_with_phone(conn: Conn, agency_id: UUID, phone_e164: str) -> int | None:
    """The agency's (oldest) volunteer holding this number, if any."""
    found: int | None = await conn.fetchval(
        "SELECT id FROM volunteers WHERE agency_id = $1 AND phone_e164 = $2"
        " AND erased_at IS NULL ORDER BY id LIMIT 1",
        agency_id,
        phone_e164,
    )
    return found


async def create_self_registered(
    conn: Conn,
    *,
    agency_id: UUID,
    display_name: str,
    phone_e164: str,
    language: str,
    now: datetime,
) -> int:
    """A volunteer who signed up themselves: verified by their phone, not yet alertable
    (no approved credential, so no certificate date), signed in by sessions only."""
    volunteer_id: int = await conn.fetchval(
        """
        INSERT INTO volunteers (agency_id, display_name, phone_e164, language, token_hash,
            certified_until, self_registered, created_at)
        VALUES ($1, $2, $3, $4, $5, NULL, true, $6) RETURNING id
        """,
        agency_id,
        display_name,
        phone_e164,
        language,
        # No supervisor-issued token exists for this volunteer: a random hash nobody holds.
        hash_token(new_token(TokenKind.VOLUNTEER)),
        now,
    )
    return volunteer_id


async def lock_phone(conn: Conn, agency_id: UUID, phone_hash: bytes) -> None:
    """Serialise everything about one number in one agency for this transaction."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{agency_id}:{phone_hash.hex()}"
    )


async def code_times(conn: Conn, agency_id: UUID, phone_hash: bytes, since: datetime) -> list[Any]:
    rows = await conn.fetch(
        "SELECT created_at FROM phone_codes"
        " WHERE agency_id = $1 AND phone_hash = $2 AND created_at > $3",
        agency_id,
        phone_hash,
        since,
    )
    return [r["created_at"] for r in rows]


async def issue_code(
    conn: Conn,
    *,
    agency_id: UUID,
    phone_hash: bytes,
    purpose: str,
    salt: bytes,
    code_hash: bytes,
    signup: dict[str, Any] | None,
    now: datetime,
    expires_at: datetime,
) -> int:
    """A new live code for the number; any earlier live one is superseded."""
    await conn.execute(
        "UPDATE phone_codes SET state = 'superseded'"
        " WHERE agency_id = $1 AND phone_hash = $2 AND state = 'live'",
        agency_id,
        phone_hash,
    )
    code_id: int = await conn.fetchval(
        """
        INSERT INTO phone_codes (agency_id, phone_hash, purpose, salt, code_hash, signup,
                                 created_at, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
        """,
        agency_id,
        phone_hash,
        purpose,
        salt,
        code_hash,
        signup,
        now,
        expires_at,
    )
    return code_id


async def latest_code(conn: Conn, agency_id: UUID, phone_hash: bytes) -> CodeRow | None:
    """The newest code issued to the number (call under :func:`lock_phone`)."""
    row = await conn.fetchrow(
        """
        SELECT id, purpose, salt, code_hash, signup, attempts, state, expires_at
        FROM phone_codes WHERE agency_id = $1 AND phone_hash = $2 ORDER BY id DESC LIMIT 1
        """,
        agency_id,
        phone_hash,
    )
    if row is None:
        return None
    return CodeRow(
        row["id"],
        row["purpose"],
        bytes(row["salt"]),
        bytes(row["code_hash"]),
        row["signup"],
        StoredCode(CodeState(row["state"]), row["attempts"], row["expires_at"]),
    )


async def record_attempt(conn: Conn, code_id: int, state: CodeState) -> None:
    await conn.execute(
        "UPDATE phone_codes SET attempts = attempts + 1, state = $2 WHERE id = $1",
        code_id,
        state.value,
    )


async def forget_phone(conn: Conn, agency_id: UUID, phone_hash: bytes) -> None:
    await conn.execute(
        "DELETE FROM phone_codes WHERE agency_id = $1 AND phone_hash = $2", agency_id, phone_hash
    )


async def purge_codes(conn: Conn, before: datetime) -> int:
    status: str = await conn.execute("DELETE FROM phone_codes WHERE created_at < $1", before)
    return int(status.rsplit(" ", 1)[-1])


# --- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionTokens:
    session_id: int
    volunteer_id: int
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "volunteer_id": self.volunteer_id,
            "token_type": "Bearer",
            "access_token": self.access_token,
            "access_expires_at": self.access_expires_at.isoformat(),
            "refresh_token": self.refresh_token,
            "refresh_expires_at": self.refresh_expires_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class SessionAccess:
    """A session found by its access token."""

    session_id: int
    volunteer_id: int
    agency_id: UUID
    expired: bool
    eligible: bool
    on_duty: bool


@dataclass(frozen=True, slots=True)
class RefreshRow:
    session_id: int
    volunteer_id: int
    agency_id: UUID
    generation: int
    used: bool
    revoked: bool
    expired: bool


async def create_session(
    conn: Conn,
    *,
    agency_id: UUID,
    volunteer_id: int,
    device_label: str | None,
    now: datetime,
    access_ttl: timedelta,
    refresh_ttl: timedelta,
) -> SessionTokens:
    access = new_token(TokenKind.VOLUNTEER_ACCESS)
    session_id: int = await conn.fetchval(
        """
        INSERT INTO volunteer_sessions (agency_id, volunteer_id, device_label, access_hash,
            access_expires_at, refresh_expires_at, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
        """,
        agency_id,
        volunteer_id,
        device_label,
        hash_token(access),
        now + access_ttl,
        now + refresh_ttl,
        now,
    )
    refresh = await _new_refresh(conn, session_id, agency_id, 1, now)
    return SessionTokens(
        session_id, volunteer_id, access, now + access_ttl, refresh, now + refresh_ttl
    )


async def _new_refresh(
    conn: Conn, session_id: int, agency_id: UUID, generation: int, now: datetime
) -> str:
    refresh = new_token(TokenKind.VOLUNTEER_REFRESH)
    await conn.execute(
        "INSERT INTO session_refresh_tokens (token_hash, session_id, agency_id, generation,"
        " created_at) VALUES ($1, $2, $3, $4, $5)",
        hash_token(refresh),
        session_id,
        agency_id,
        generation,
        now,
    )
    return refresh


async def lock_refresh(conn: Conn, presented: str, now: datetime) -> RefreshRow | None:
    """The session a refresh token belongs to, both rows locked; None for an unknown token."""
    row = await conn.fetchrow(
        """
        SELECT t.token_hash, t.used_at, s.id, s.volunteer_id, s.agency_id, s.generation,
               s.revoked_at, s.refresh_expires_at
        FROM session_refresh_tokens t JOIN volunteer_sessions s ON s.id = t.session_id
        WHERE t.token_hash = $1 FOR UPDATE OF t, s
        """,
        hash_token(presented),
    )
    if row is None or not token_matches(presented, bytes(row["token_hash"])):
        return None
    return RefreshRow(
        session_id=row["id"],
        volunteer_id=row["volunteer_id"],
        agency_id=row["agency_id"],
        generation=row["generation"],
        used=row["used_at"] is not None,
        revoked=row["revoked_at"] is not None,
        expired=row["refresh_expires_at"] <= now,
    )


async def rotate(
    conn: Conn,
    found: RefreshRow,
    presented: str,
    *,
    now: datetime,
    access_ttl: timedelta,
    refresh_ttl: timedelta,
) -> SessionTokens:
    """Spend ``presented`` and give the session a new access and refresh token."""
    await conn.execute(
        "UPDATE session_refresh_tokens SET used_at = $2 WHERE token_hash = $1",
        hash_token(presented),
        now,
    )
    access = new_token(TokenKind.VOLUNTEER_ACCESS)
    generation = found.generation + 1
    await conn.execute(
        """
        UPDATE volunteer_sessions SET access_hash = $2, access_expires_at = $3,
            refresh_expires_at = $4, generation = $5, refreshed_at = $6
        WHERE id = $1
        """,
        found.session_id,
        hash_token(access),
        now + access_ttl,
        now + refresh_ttl,
        generation,
        now,
    )
    refresh = await _new_refresh(conn, found.session_id, found.agency_id, generation, now)
    return SessionTokens(
        found.session_id, found.volunteer_id, access, now + access_ttl, refresh, now + refresh_ttl
    )


async def access_session(conn: Conn, presented: str, now: datetime) -> SessionAccess | None:
    """The live session whose access token this is (expired ones too, flagged); else None."""
    row = await conn.fetchrow(
        """
        SELECT s.id, s.volunteer_id, s.agency_id, s.access_hash, s.access_expires_at,
               v.verified AND v.available AS eligible, v.on_duty
        FROM volunteer_sessions s JOIN volunteers v ON v.id = s.volunteer_id
        WHERE s.access_hash = $1 AND s.revoked_at IS NULL AND v.erased_at IS NULL
        """,
        hash_token(presented),
    )
    if row is None or not token_matches(presented, bytes(row["access_hash"])):
        return None
    return SessionAccess(
        row["id"],
        row["volunteer_id"],
        row["agency_id"],
        row["access_expires_at"] <= now,
        row["eligible"],
        row["on_duty"],
    )


async def revoke(
    conn: Conn, volunteer_id: int, session_ids: list[int], *, reason: str, now: datetime
) -> list[int]:
    """Revoke live sessions of this volunteer and stop the push devices and Web Push
    subscriptions registered through them; returns the sessions that were live."""
    rows = await conn.fetch(
        """
        UPDATE volunteer_sessions SET revoked_at = $3, revoked_reason = $4
        WHERE volunteer_id = $1 AND id = ANY($2::bigint[]) AND revoked_at IS NULL
        RETURNING id
        """,
        volunteer_id,
        session_ids,
        now,
        reason,
    )
    revoked = [r["id"] for r in rows]
    if revoked:
        await conn.execute(
            """
            UPDATE devices SET active = false, deactivated_reason = 'session_revoked',
                updated_at = $2
            WHERE session_id = ANY($1::bigint[]) AND active
            """,
            revoked,
            now,
        )
        await webpush_store.deactivate_for_sessions(conn, revoked, now=now)
    return revoked


async def live_session_ids(conn: Conn, volunteer_id: int, now: datetime) -> list[int]:
    """Live sessions, newest first."""
    rows = await conn.fetch(
        "SELECT id FROM volunteer_sessions WHERE volunteer_id = $1 AND revoked_at IS NULL"
        " AND refresh_expires_at > $2 ORDER BY id DESC",
        volunteer_id,
        now,
    )
    return [r["id"] for r in rows]


async def sessions_of(conn: Conn, volunteer_id: int, now: datetime) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, device_label, created_at, refreshed_at, refresh_expires_at, revoked_at,
               revoked_reason
        FROM volunteer_sessions WHERE volunteer_id = $1 ORDER BY id DESC LIMIT 100
        """,
        volunteer_id,
    )
    return [
        {
            "session_id": r["id"],
            "device_label": r["device_label"],
            "created_at": r["created_at"].isoformat(),
            "refreshed_at": r["refreshed_at"].isoformat() if r["refreshed_at"] else None,
            "expires_at": r["refresh_expires_at"].isoformat(),
            "state": (
                "revoked"
                if r["revoked_at"] is not None
                else "expired"
                if r["refresh_expires_at"] <= now
                else "active"
            ),
            "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None,
            "revoked_reason": r["revoked_reason"],
        }
        for r in rows
    ]


async def purge_sessions(conn: Conn, before: datetime) -> int:
    """Delete sessions revoked or expired before ``before`` (their tokens go with them)."""
    status: str = await conn.execute(
        "DELETE FROM volunteer_sessions WHERE coalesce(revoked_at, refresh_expires_at) < $1",
        before,
    )
    return int(status.rsplit(" ", 1)[-1])
