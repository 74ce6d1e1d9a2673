"""Paramedic units on an incident: the last status of each, to diff full snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from cad_adapters.models import UnitReport, UnitStatus
from dispatch.db.types import Conn


@dataclass(frozen=True, slots=True)
class StoredUnit:
    status: UnitStatus
    status_at: datetime | None


async def current(conn: Conn, incident_id: UUID) -> dict[str, StoredUnit]:
    rows = await conn.fetch(
        "SELECT unit_id, status, status_at FROM incident_units WHERE incident_id = $1",
        incident_id,
    )
    return {r["unit_id"]: StoredUnit(UnitStatus(r["status"]), r["status_at"]) for r in rows}


async def upsert(
    conn: Conn, agency_id: UUID, incident_id: UUID, units: list[UnitReport], now: datetime
) -> None:
    if not units:
        return
    await conn.executemany(
        """
        INSERT INTO incident_units
            (incident_id, agency_id, unit_id, status, status_raw, status_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (incident_id, unit_id) DO UPDATE SET status = EXCLUDED.status,
            status_raw = EXCLUDED.status_raw, status_at = EXCLUDED.status_at,
            updated_at = EXCLUDED.updated_at
        """,
        [
            (incident_id, agency_id, u.unit_id, u.status.value, u.status_raw, u.at, now)
            for u in units
        ],
    )


async def mark_first_on_scene(conn: Conn, incident_id: UUID, at: datetime) -> None:
    """Keep the earliest EMS on-scene time (the volunteer-versus-EMS comparison needs it)."""
    await conn.execute(
        """
        UPDATE incidents SET first_ems_on_scene_at = $2
        WHERE id = $1 AND (first_ems_on_scene_at IS NULL OR first_ems_on_scene_at > $2)
        """,
        incident_id,
        at,
    )
