"""The AED registry."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from dispatch.db.types import Conn
from dispatch.domain.aed_import import AedRecord, hours_as_times
from dispatch.domain.aeds import Aed, within
from dispatch.store.unnest import columns

_M_PER_DEG: float = 111_320.0


IMPORT_CHUNK_ROWS = 250
"""Rows per statement: encoding a statement's arguments runs on the event loop, so a
50,000-row file goes as many short statements (one transaction) instead of one long one."""


async def import_records(
    conn: Conn, agency_id: UUID, records: Sequence[AedRecord], now: datetime
) -> int:
    """Insert or update by the registry's own id; all rows or none."""
    async with conn.transaction():
        for start in range(0, len(records), IMPORT_CHUNK_ROWS):
            await upsert_chunk(conn, agency_id, records[start : start + IMPORT_CHUNK_ROWS], now)
    return len(records)


async def upsert_chunk(
    conn: Conn, agency_id: UUID, records: Sequence[AedRecord], now: datetime
) -> None:
    """Insert or update one chunk of records (the caller holds the transaction)."""
    await conn.execute(
        """
        INSERT INTO aeds AS a (agency_id, external_id, name, lat, lon, access_hours,
                               indoor_description, access_notes, active, updated_at)
        SELECT $1, r.id, r.name, r.lat, r.lon, r.hours, r.indoor, r.notes, true, $2
        FROM unnest($3::text[], $4::text[], $5::float8[], $6::float8[], $7::jsonb[],
                    $8::text[], $9::text[]) AS r(id, name, lat, lon, hours, indoor, notes)
        ON CONFLICT (agency_id, external_id) DO UPDATE SET name = EXCLUDED.name,
            lat = EXCLUDED.lat, lon = EXCLUDED.lon, access_hours = EXCLUDED.access_hours,
            indoor_description = EXCLUDED.indoor_description,
            access_notes = EXCLUDED.access_notes, active = true, updated_at = EXCLUDED.updated_at
        """,
        agency_id,
        now,
        *columns(
            records,
            "external_id",
            "name",
            "lat",
            "lon",
            "access_hours",
            "indoor_description",
            "access_notes",
        ),
    )


def _aed(row: asyncpg.Record) -> Aed:
    return Aed(
        aed_id=row["id"],
        name=row["name"],
        lat=row["lat"],
        lon=row["lon"],
        access_hours=hours_as_times(row["access_hours"]),
        indoor_description=row["indoor_description"],
        access_notes=row["access_notes"],
    )


async def near(conn: Conn, agency_id: UUID, lat: float, lon: float, radius_m: float) -> list[Aed]:
    """Active AEDs within ``radius_m`` of a point (a bounding box in SQL, exact in Python)."""
    dlat = radius_m / _M_PER_DEG
    dlon = radius_m / (_M_PER_DEG * max(math.cos(math.radians(lat)), 0.01))
    rows = await conn.fetch(
        """
        SELECT id, name, lat, lon, access_hours, indoor_description, access_notes FROM aeds
        WHERE agency_id = $1 AND active AND lat BETWEEN $2 AND $3 AND lon BETWEEN $4 AND $5
        ORDER BY id
        """,
        agency_id,
        lat - dlat,
        lat + dlat,
        lon - dlon,
        lon + dlon,
    )
    return within(map(_aed, rows), lat, lon, radius_m)


async def list_for_agency(
    conn: Conn, agency_id: UUID, *, limit: int, before_id: int
) -> list[dict[str, Any]]:
    """Active AEDs, newest first (by id), only those with an id below ``before_id``."""
    rows = await conn.fetch(
        "SELECT id, external_id, name, lat, lon, access_hours, indoor_description, access_notes"
        " FROM aeds WHERE agency_id = $1 AND active AND id < $2 ORDER BY id DESC LIMIT $3",
        agency_id,
        before_id,
        limit,
    )
    return [dict(r) for r in rows]
