"""Console sign-in sessions: looked up by the SHA-256 of the cookie's secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.secrets import TokenKind, hash_token, new_token, token_matches


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    session_id: int
    agency_id: UUID
    supervisor_id: int
    supervisor_name: str
    last_seen_at: datetime
    expires_at: datetime
    idle_until: datetime
    ended: bool
    """Signed out, idle past the limit, or past its absolute lifetime."""


async def create(
    conn: Conn,
    *,
    agency_id: UUID,
    supervisor_id: int,
    now: datetime,
    max_age: timedelta,
) -> str:
    """A new session; returns its secret (the cookie value), shown once."""
    token = new_token(TokenKind.CONSOLE_SESSION)
    await conn.execute(
        """
        INSERT INTO console_sessions
            (agency_id, supervisor_id, token_hash, created_at, last_seen_at, expires_at)
        VALUES ($1, $2, $3, $4, $4, $5)
        """,
        agency_id,
        supervisor_id,
        hash_token(token),
        now,
        now + max_age,
    )
    return token


async def find(conn: Conn, presented: str, now: datetime, idle: timedelta) -> ConsoleSession | None:
    """The session behind ``presented``, ended or not; None when there is none."""
    row = await conn.fetchrow(
        """
        SELECT s.id, s.agency_id, s.supervisor_id, s.token_hash, s.last_seen_at, s.expires_at,
               s.signed_out_at, p.name
        FROM console_sessions s JOIN supervisors p ON p.id = s.supervisor_id
        WHERE s.token_hash = $1
        """,
        hash_token(presented),
    )
    if row is None or not token_matches(presented, row["token_hash"]):
        return None
    idle_until = min(row["last_seen_at"] + idle, row["expires_at"])
    return ConsoleSession(
        session_id=row["id"],
        agency_id=row["agency_id"],
        supervisor_id=row["supervisor_id"],
        supervisor_name=row["name"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
        idle_until=idle_until,
        ended=row["signed_out_at"] is not None or now >= idle_until,
    )


async def touch(conn: Conn, session_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE console_sessions SET last_seen_at = greatest(last_seen_at, $2) WHERE id = $1",
        session_id,
        now,
    )


async def sign_out(conn: Conn, session_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE console_sessions SET signed_out_at = coalesce(signed_out_at, $2) WHERE id = $1",
        session_id,
        now,
    )


async def purge(conn: Conn, before: datetime) -> int:
    """Drop sessions that ended before ``before`` (their absolute lifetime or a sign-out)."""
    done = await conn.execute(
        "DELETE FROM console_sessions WHERE expires_at < $1 OR signed_out_at < $1", before
    )
    return int(done.split()[-1])
