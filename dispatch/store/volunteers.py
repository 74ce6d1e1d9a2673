"""Volunteers and their last known positions (never a history)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.secrets import TokenKind, hash_token, new_token, token_matches


@dataclass(frozen=True, slots=True)
class VolunteerIdentity:
    volunteer_id: int
    agency_id: UUID
    eligible: bool


@dataclass(frozen=True, slots=True)
class PositionRow:
    volunteer_id: int
    agency_id: UUID
    lat: float
    lon: float
    accuracy_m: float | None
    reported_at: datetime


async def create_volunteer(
    conn: Any,
    *,
    agency_id: UUID,
    display_name: str,
    phone_e164: str | None = None,
    language: str = "en",
    verified: bool = True,
) -> tuple[int, str]:
    """Create a volunteer; returns (id, bearer token). Only the token's hash is stored."""
    token = new_token(TokenKind.VOLUNTEER)
    volunteer_id: int = await conn.fetchval(
        """
        INSERT INTO volunteers (agency_id, display_name, phone_e164, language, token_hash, verified)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
        """,
        agency_id,
        display_name,
        phone_e164,
        language,
        hash_token(token),
        verified,
    )
    return volunteer_id, token


async def authenticate(conn: Any, presented: str) -> VolunteerIdentity | None:
    row = await conn.fetchrow(
        "SELECT id, agency_id, token_hash, verified AND available AS eligible"
        " FROM volunteers WHERE token_hash = $1",
        hash_token(presented),
    )
    if row is None or not token_matches(presented, row["token_hash"]):
        return None
    return VolunteerIdentity(row["id"], row["agency_id"], row["eligible"])


async def upsert_positions(conn: Any, rows: Sequence[PositionRow]) -> None:
    """Write a batch of last positions in one round trip; an older fix never overwrites a newer."""
    await conn.execute(
        """
        INSERT INTO volunteer_positions AS p
            (volunteer_id, agency_id, lat, lon, accuracy_m, reported_at)
        SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::float8[], $4::float8[],
                             $5::float8[], $6::timestamptz[])
        ON CONFLICT (volunteer_id) DO UPDATE
            SET lat = EXCLUDED.lat, lon = EXCLUDED.lon, accuracy_m = EXCLUDED.accuracy_m,
                reported_at = EXCLUDED.reported_at
            WHERE p.reported_at <= EXCLUDED.reported_at
        """,
        [r.volunteer_id for r in rows],
        [r.agency_id for r in rows],
        [r.lat for r in rows],
        [r.lon for r in rows],
        [r.accuracy_m for r in rows],
        [r.reported_at for r in rows],
    )


async def purge_stale_positions(conn: Any, now: datetime) -> int:
    """Delete positions older than their agency's freshness limit (privacy: no old whereabouts)."""
    status: str = await conn.execute(
        """
        DELETE FROM volunteer_positions p USING agencies a
        WHERE p.agency_id = a.id
          AND p.reported_at < $1::timestamptz - a.position_max_age_s * interval '1 second'
        """,
        now,
    )
    return int(status.rsplit(" ", 1)[-1])


async def fresh_positions(conn: Any) -> list[PositionRow]:
    """Positions of eligible volunteers, for rebuilding the in-memory index at start-up."""
    rows = await conn.fetch(
        """
        SELECT p.volunteer_id, p.agency_id, p.lat, p.lon, p.accuracy_m, p.reported_at
        FROM volunteer_positions p JOIN volunteers v ON v.id = p.volunteer_id
        WHERE v.verified AND v.available
        """
    )
    return [
        PositionRow(
            r["volunteer_id"], r["agency_id"], r["lat"], r["lon"], r["accuracy_m"], r["reported_at"]
        )
        for r in rows
    ]
