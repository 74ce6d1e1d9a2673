"""Incidents, keyed by (agency, source, source incident id)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from asyncpg import Record

from cad_adapters.models import IncidentReport, IncidentStatus, PlaceType
from dispatch.db.types import Conn
from dispatch.domain.incident_states import IncidentState
from dispatch.domain.intake import StoredVersion
from dispatch.store import response_log
from dispatch.store.response_log import LogEvent


async def lock_existing(
    conn: Conn, agency_id: UUID, source: str, source_incident_id: str
) -> tuple[UUID, StoredVersion] | None:
    """The stored incident, row-locked until the transaction ends (serialises concurrent intake)."""
    row = await conn.fetchrow(
        """
        SELECT id, version_at, version_seq, content_hash, status FROM incidents
        WHERE agency_id = $1 AND source = $2 AND source_incident_id = $3
        FOR NO KEY UPDATE
        """,
        agency_id,
        source,
        source_incident_id,
    )
    if row is None:
        return None
    return row["id"], _stored_version(row)


def _stored_version(row: Record) -> StoredVersion:
    return StoredVersion(
        version_key=(row["version_at"], row["version_seq"]),
        content_hash=row["content_hash"],
        status=IncidentStatus(row["status"]),
    )


def _columns(report: IncidentReport) -> tuple[Any, ...]:
    version_at, version_seq = report.version_key()
    loc = report.location
    return (
        version_at,
        version_seq,
        report.status.value,
        report.is_test,
        report.is_cardiac_arrest,
        report.call_type.code,
        loc.lat if loc else None,
        loc.lon if loc else None,
        report.place_type.value,
        report.received_at,
        loc.uncertainty_m if loc else None,
    )


async def insert_or_lock(
    conn: Conn,
    *,
    incident_id: UUID,
    agency_id: UUID,
    report: IncidentReport,
    document: dict[str, Any],
    content_hash: bytes,
    now: datetime,
) -> tuple[UUID, StoredVersion | None]:
    """Insert the incident, or lock the stored one: (id, None) when new, else its version.

    One round trip on both paths, since every CAD document takes one of them. The
    locking branch cannot see a row inserted by a transaction that committed after
    this statement began (same snapshot), so that rare race falls back to a plain
    locked read.
    """
    row = await conn.fetchrow(
        """
        WITH inserted AS (
            INSERT INTO incidents (id, agency_id, source, source_incident_id, content_hash,
                report, version_at, version_seq, status, is_test, is_cardiac_arrest,
                call_type_code, lat, lon, place_type, received_at, location_uncertainty_m,
                created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    $17, $18, $18)
            ON CONFLICT (agency_id, source, source_incident_id) DO NOTHING
            RETURNING id
        ), existing AS (
            SELECT id, version_at, version_seq, content_hash, status FROM incidents
            WHERE agency_id = $2 AND source = $3 AND source_incident_id = $4
            FOR NO KEY UPDATE
        )
        SELECT id, true AS created, NULL::timestamptz AS version_at, NULL::bigint AS version_seq,
               NULL::bytea AS content_hash, NULL::text AS status
        FROM inserted
        UNION ALL
        SELECT id, false, version_at, version_seq, content_hash, status FROM existing
        """,
        incident_id,
        agency_id,
        report.source,
        report.source_incident_id,
        content_hash,
        document,
        *_columns(report),
        now,
    )
    if row is None:
        found = await lock_existing(conn, agency_id, report.source, report.source_incident_id)
        if found is None:
            raise RuntimeError("incident neither inserted nor found")
        return found
    if row["created"]:
        return row["id"], None
    return row["id"], _stored_version(row)


async def update(
    conn: Conn,
    *,
    incident_id: UUID,
    report: IncidentReport,
    document: dict[str, Any],
    content_hash: bytes,
    now: datetime,
) -> None:
    await conn.execute(
        """
        UPDATE incidents SET content_hash = $2, report = $3, version_at = $4, version_seq = $5,
            status = $6, is_test = $7, is_cardiac_arrest = $8, call_type_code = $9, lat = $10,
            lon = $11, place_type = $12, received_at = $13, location_uncertainty_m = $14,
            updated_at = $15
        WHERE id = $1
        """,
        incident_id,
        content_hash,
        document,
        *_columns(report),
        now,
    )


async def agency_of(conn: Conn, incident_id: UUID) -> UUID | None:
    agency: UUID | None = await conn.fetchval(
        "SELECT agency_id FROM incidents WHERE id = $1", incident_id
    )
    return agency


async def state_of(conn: Conn, incident_id: UUID) -> str | None:
    state: str | None = await conn.fetchval(
        "SELECT state FROM incidents WHERE id = $1", incident_id
    )
    return state


async def lock(conn: Conn, incident_id: UUID) -> None:
    """Row-lock the incident until the transaction ends (no-op for an unknown id)."""
    await conn.execute("SELECT 1 FROM incidents WHERE id = $1 FOR NO KEY UPDATE", incident_id)


async def check_now(conn: Conn, incident_id: UUID, now: datetime) -> None:
    """Bring the incident's next check forward to ``now`` once alerting has started."""
    await conn.execute(
        "UPDATE incidents SET next_check_at = $2 WHERE id = $1 AND alerting_started_at IS NOT NULL",
        incident_id,
        now,
    )


async def lock_active_not_listed(
    conn: Conn, agency_id: UUID, source: str, present: Collection[str]
) -> list[UUID]:
    """This source's active incidents whose ids are not in ``present``, row-locked in id order."""
    rows = await conn.fetch(
        """
        SELECT id FROM incidents
        WHERE agency_id = $1 AND source = $2 AND status = 'active'
          AND NOT (source_incident_id = ANY($3::text[]))
        ORDER BY id FOR NO KEY UPDATE
        """,
        agency_id,
        source,
        list(present),
    )
    return [r["id"] for r in rows]


@dataclass(frozen=True, slots=True)
class IncidentProgress:
    """What the wave planner needs to know about one incident, read under its row lock."""

    incident_id: UUID
    agency_id: UUID
    status: IncidentStatus
    state: IncidentState
    is_test: bool
    is_cardiac_arrest: bool | None
    lat: float | None
    lon: float | None
    place_type: PlaceType
    alerting_started_at: datetime | None
    first_ems_on_scene_at: datetime | None
    policy_version: int | None
    received_at: datetime
    location_uncertainty_m: float | None = None
    alert_blocked: str | None = None
    """Why this incident may never alert (decided once, before alerting starts)."""

    @property
    def alertable(self) -> bool:
        return (
            self.status is IncidentStatus.ACTIVE
            and self.is_cardiac_arrest is True
            and self.lat is not None
            and self.lon is not None
            and self.alert_blocked is None
        )


async def lock_progress(conn: Conn, incident_id: UUID) -> IncidentProgress | None:
    row = await conn.fetchrow(
        """
        SELECT id, agency_id, status, state, is_test, is_cardiac_arrest, lat, lon, place_type,
               alerting_started_at, first_ems_on_scene_at, policy_version, received_at,
               location_uncertainty_m, alert_blocked
        FROM incidents WHERE id = $1 FOR NO KEY UPDATE
        """,
        incident_id,
    )
    if row is None:
        return None
    return IncidentProgress(
        incident_id=row["id"],
        agency_id=row["agency_id"],
        status=IncidentStatus(row["status"]),
        state=IncidentState(row["state"]),
        is_test=row["is_test"],
        is_cardiac_arrest=row["is_cardiac_arrest"],
        lat=row["lat"],
        lon=row["lon"],
        place_type=PlaceType(row["place_type"]),
        alerting_started_at=row["alerting_started_at"],
        first_ems_on_scene_at=row["first_ems_on_scene_at"],
        policy_version=row["policy_version"],
        received_at=row["received_at"],
        location_uncertainty_m=row["location_uncertainty_m"],
        alert_blocked=row["alert_blocked"],
    )


async def block_alerting(conn: Conn, incident_id: UUID, reason: str) -> None:
    """Mark the incident as never to alert (see ``dispatch.domain.intake.timing_block``)."""
    await conn.execute(
        "UPDATE incidents SET alert_blocked = $2 WHERE id = $1 AND alert_blocked IS NULL",
        incident_id,
        reason,
    )


async def save_progress(
    conn: Conn,
    incident_id: UUID,
    *,
    state: IncidentState,
    alerting_started_at: datetime | None,
    policy_version: int | None,
    next_check_at: datetime | None,
    events: Sequence[LogEvent] = (),
) -> None:
    """The incident's progress, and with it the timeline events gathered so far.

    One statement for both: on the path a new cardiac arrest takes to its first alerts,
    each round trip is paid by the request (the response-log insert rides in a CTE).
    """
    await conn.execute(
        """
        WITH saved AS (
            UPDATE incidents SET state = $2, alerting_started_at = $3, policy_version = $4,
                next_check_at = $5
            WHERE id = $1
        )
        INSERT INTO response_log
            (agency_id, incident_id, alert_id, volunteer_id, event, at, details)
        SELECT * FROM unnest($6::uuid[], $7::uuid[], $8::uuid[], $9::bigint[], $10::text[],
                             $11::timestamptz[], $12::jsonb[])
        """,
        incident_id,
        state.value,
        alerting_started_at,
        policy_version,
        next_check_at,
        *response_log.columns(events),
    )


async def claim_due(conn: Conn, now: datetime) -> tuple[UUID, UUID] | None:
    """One incident whose deadline has come, locked for this transaction (SKIP LOCKED)."""
    row = await conn.fetchrow(
        """
        SELECT id, agency_id FROM incidents WHERE next_check_at <= $1
        ORDER BY next_check_at LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED
        """,
        now,
    )
    return (row["id"], row["agency_id"]) if row else None


async def close(conn: Conn, incident_id: UUID, now: datetime) -> None:
    """Close an incident the source no longer lists; the version bump makes re-sends stale."""
    await conn.execute(
        "UPDATE incidents SET status = 'closed', version_seq = version_seq + 1,"
        " updated_at = $2 WHERE id = $1",
        incident_id,
        now,
    )
