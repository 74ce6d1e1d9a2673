"""The append-only response log: one row per thing that happened to an incident."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class LogEvent:
    agency_id: UUID
    incident_id: UUID
    event: str
    at: datetime
    alert_id: UUID | None = None
    volunteer_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


async def append(conn: Any, events: Sequence[LogEvent]) -> None:
    if not events:
        return
    await conn.executemany(
        """
        INSERT INTO response_log
            (agency_id, incident_id, alert_id, volunteer_id, event, at, details)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        [
            (e.agency_id, e.incident_id, e.alert_id, e.volunteer_id, e.event, e.at, dict(e.details))
            for e in events
        ],
    )


async def timeline(conn: Any, incident_id: UUID) -> list[dict[str, Any]]:
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
