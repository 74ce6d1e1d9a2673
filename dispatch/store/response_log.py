"""The append-only response log: one row per thing that happened to an incident."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn


@dataclass(frozen=True, slots=True)
class LogEvent:
    agency_id: UUID
    incident_id: UUID
    event: str
    at: datetime
    alert_id: UUID | None = None
    volunteer_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


async def append(conn: Conn, events: Sequence[LogEvent]) -> None:
    """Append events in one statement (one round trip however many there are)."""
    if not events:
        return
    await conn.execute(
        """
        INSERT INTO response_log
            (agency_id, incident_id, alert_id, volunteer_id, event, at, details)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[],
                             $6::timestamptz[], $7::jsonb[])
        """,
        *columns(events),
    )


def columns(events: Sequence[LogEvent]) -> tuple[list[Any], ...]:
    """The events as the seven arrays an ``unnest`` insert into response_log takes."""
    return (
        [e.agency_id for e in events],
        [e.incident_id for e in events],
        [e.alert_id for e in events],
        [e.volunteer_id for e in events],
        [e.event for e in events],
        [e.at for e in events],
        [dict(e.details) for e in events],
    )


async def metric_inputs(
    conn: Conn, incident_id: UUID
) -> tuple[datetime, list[tuple[str, datetime, Any]]]:
    """When we received the incident, and the events the incident's metrics are made of."""
    # Intake logs ``incident_received`` in the transaction that stores the incident.
    received_at: datetime = await conn.fetchval(
        "SELECT min(at) FROM response_log WHERE incident_id = $1 AND event = 'incident_received'",
        incident_id,
    )
    rows = await conn.fetch(
        "SELECT event, at, details FROM response_log WHERE incident_id = $1"
        " AND event IN ('alert_sent', 'alert_accepted', 'alert_on_scene', 'unit_status')",
        incident_id,
    )
    return received_at, [(r["event"], r["at"], r["details"]) for r in rows]


async def timeline(conn: Conn, incident_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, at, event, alert_id, volunteer_id, details
        FROM response_log WHERE incident_id = $1 ORDER BY at, id
        """,
        incident_id,
    )
    return [
        {
            "seq": r["id"],
            "at": r["at"].isoformat(),
            "event": r["event"],
            "alert_id": str(r["alert_id"]) if r["alert_id"] else None,
            "volunteer_id": r["volunteer_id"],
            "details": r["details"],
        }
        for r in rows
    ]
