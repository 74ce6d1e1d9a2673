"""Incidents, keyed by (agency, source, source incident id)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from cad_adapters.models import IncidentReport, IncidentStatus
from dispatch.domain.intake import StoredVersion


async def lock_existing(
    conn: Any, agency_id: UUID, source: str, source_incident_id: str
) -> tuple[UUID, StoredVersion] | None:
    """The stored incident, row-locked until the transaction ends (serialises concurrent intake)."""
    row = await conn.fetchrow(
        """
        SELECT id, version_at, version_seq, content_hash, status FROM incidents
        WHERE agency_id = $1 AND source = $2 AND source_incident_id = $3
        FOR UPDATE
        """,
        agency_id,
        source,
        source_incident_id,
    )
    if row is None:
        return None
    return row["id"], StoredVersion(
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
    )


async def insert_or_lock(
    conn: Any,
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
                call_type_code, lat, lon, place_type, received_at, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                    $17, $17)
            ON CONFLICT (agency_id, source, source_incident_id) DO NOTHING
            RETURNING id
        ), existing AS (
            SELECT id, version_at, version_seq, content_hash, status FROM incidents
            WHERE agency_id = $2 AND source = $3 AND source_incident_id = $4
            FOR UPDATE
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
    return row["id"], StoredVersion(
        version_key=(row["version_at"], row["version_seq"]),
        content_hash=row["content_hash"],
        status=IncidentStatus(row["status"]),
    )


async def update(
    conn: Any,
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
            lon = $11, place_type = $12, received_at = $13, updated_at = $14
        WHERE id = $1
        """,
        incident_id,
        content_hash,
        document,
        *_columns(report),
        now,
    )


async def agency_of(conn: Any, incident_id: UUID) -> UUID | None:
    agency: UUID | None = await conn.fetchval(
        "SELECT agency_id FROM incidents WHERE id = $1", incident_id
    )
    return agency
