"""A volunteer's own timeline: what happened to them outside any incident (migration 0009)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.store.unnest import columns


@dataclass(frozen=True, slots=True)
class VolunteerEvent:
    agency_id: UUID
    volunteer_id: int
    event: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


async def append(conn: Conn, events: Sequence[VolunteerEvent]) -> None:
    if not events:
        return
    await conn.execute(
        """
        INSERT INTO volunteer_events (agency_id, volunteer_id, event, at, details)
        SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[],
                             $5::jsonb[])
        """,
        *columns(events, "agency_id", "volunteer_id", "event", "at"),
        [dict(e.details) for e in events],
    )


async def record(
    conn: Conn,
    agency_id: UUID,
    volunteer_id: int,
    event: str,
    at: datetime,
    details: Mapping[str, Any],
) -> None:
    """One event on one volunteer's timeline."""
    await append(conn, [VolunteerEvent(agency_id, volunteer_id, event, at, details)])


async def newest(
    conn: Conn, agency_id: UUID, volunteer_id: int, *, limit: int, before_id: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, at, event, details FROM volunteer_events
        WHERE agency_id = $1 AND volunteer_id = $2 AND id < $3
        ORDER BY id DESC LIMIT $4
        """,
        agency_id,
        volunteer_id,
        before_id,
        limit,
    )
    return [
        {"seq": r["id"], "at": r["at"].isoformat(), "event": r["event"], "details": r["details"]}
        for r in rows
    ]
