"""What the live board and the incident page read: active incidents with their responders'
counts and EMS units; one incident's scene (waves, anonymised responders, AEDs)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from uuid import UUID

from asyncpg import Record

from dispatch.db.types import Conn

# Accepted at some point: still responding, or released after responding.
_ANSWERED_YES = ("accepted", "en_route", "on_scene", "released")
# A responder's position is shown only while on the way; never before, never after.
_MOVING = ("accepted", "en_route")
_M_PER_DEG = 111_320.0
# AEDs this far beyond the widest wave are still worth drawing on the map.
_AED_MARGIN_M = 200.0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _call_type(report: dict[str, Any], code: str) -> dict[str, Any]:
    call_type = report.get("call_type") or {}
    return {"code": code, "text": call_type.get("text")}


def _address(report: dict[str, Any]) -> str | None:
    address = report.get("address") or {}
    text = address.get("text")
    return str(text)[:200] if text else None


def _summary(r: Record) -> dict[str, Any]:
    """What the board's row and the scene's header both start with."""
    return {
        "incident_id": str(r["id"]),
        "source_incident_id": r["source_incident_id"],
        "call_type": _call_type(r["report"], r["call_type_code"]),
        "address": _address(r["report"]),
        "received_at": _iso(r["received_at"]),
        "state": r["state"],
        "is_test": r["is_test"],
    }


async def active_incidents(conn: Conn, agency_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT i.id, i.source_incident_id, i.call_type_code, i.report, i.received_at, i.state,
               i.is_test, i.is_cardiac_arrest,
               count(a.id) AS alerted,
               count(a.id) FILTER (WHERE a.state = ANY($2::text[])) AS accepted,
               count(a.id) FILTER (WHERE a.state = 'en_route') AS en_route,
               count(a.id) FILTER (WHERE a.state = 'on_scene') AS on_scene
        FROM incidents i LEFT JOIN alerts a ON a.incident_id = i.id
        WHERE i.agency_id = $1 AND i.status = 'active'
        GROUP BY i.id
        ORDER BY i.received_at DESC, i.id
        LIMIT 200
        """,
        agency_id,
        list(_ANSWERED_YES),
    )
    units = await _units(conn, [r["id"] for r in rows])
    return [
        {
            **_summary(r),
            "is_cardiac_arrest": r["is_cardiac_arrest"],
            "volunteers": {
                "alerted": r["alerted"],
                "accepted": r["accepted"],
                "en_route": r["en_route"],
                "on_scene": r["on_scene"],
            },
            "units": units.get(r["id"], []),
        }
        for r in rows
    ]


async def _units(conn: Conn, incident_ids: list[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    if not incident_ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT incident_id, unit_id, status, status_at FROM incident_units
        WHERE incident_id = ANY($1::uuid[]) ORDER BY incident_id, unit_id
        """,
        incident_ids,
    )
    found: dict[UUID, list[dict[str, Any]]] = {}
    for r in rows:
        found.setdefault(r["incident_id"], []).append(
            {"unit_id": r["unit_id"], "status": r["status"], "status_at": _iso(r["status_at"])}
        )
    return found


def _metres(lat: float, lon: float, lat2: float, lon2: float) -> float:
    """Equirectangular distance: exact enough at the few kilometres a scene spans."""
    north = (lat2 - lat) * _M_PER_DEG
    east = (lon2 - lon) * _M_PER_DEG * math.cos(math.radians((lat + lat2) / 2))
    return math.hypot(north, east)


async def scene(conn: Conn, incident_id: UUID) -> dict[str, Any]:
    """The incident's map: patient, waves, responders (labelled V1, V2, … in alert order,
    positions only while on the way to an active incident), AEDs in reach, EMS units."""
    incident = await conn.fetchrow(
        """
        SELECT id, agency_id, source_incident_id, call_type_code, report, received_at, state,
               status, is_test, lat, lon
        FROM incidents WHERE id = $1
        """,
        incident_id,
    )
    assert incident is not None
    waves = await conn.fetch(
        """
        SELECT (details->>'wave')::int AS wave, max((details->>'radius_m')::float8) AS radius_m,
               min(at) AS started_at
        FROM response_log
        WHERE incident_id = $1 AND event = 'matched' AND details ? 'wave'
        GROUP BY 1 ORDER BY 1
        """,
        incident_id,
    )
    active = incident["status"] == "active"
    alerts = await conn.fetch(
        """
        SELECT a.id, a.wave, a.role, a.state, a.distance_m, a.aed_id, a.created_at,
               p.lat, p.lon
        FROM alerts a
        LEFT JOIN volunteer_positions p
               ON p.volunteer_id = a.volunteer_id AND $2 AND a.state = ANY($3::text[])
        WHERE a.incident_id = $1
        ORDER BY a.created_at, a.distance_m, a.id
        """,
        incident_id,
        active,
        list(_MOVING),
    )
    lat, lon = incident["lat"], incident["lon"]
    responders = []
    for n, a in enumerate(alerts, start=1):
        position = None
        if a["lat"] is not None and lat is not None:
            position = {
                "lat": a["lat"],
                "lon": a["lon"],
                "distance_m": round(_metres(lat, lon, a["lat"], a["lon"])),
            }
        responders.append(
            {
                "marker": f"V{n}",
                "alert_id": str(a["id"]),
                "wave": a["wave"],
                "role": a["role"],
                "state": a["state"],
                "alerted_distance_m": round(a["distance_m"]),
                "aed_id": a["aed_id"],
                "position": position,
            }
        )
    reach = max((w["radius_m"] or 0.0 for w in waves), default=0.0) + _AED_MARGIN_M
    return {
        **_summary(incident),
        "status": incident["status"],
        "location": {"lat": lat, "lon": lon} if lat is not None else None,
        "waves": [
            {"wave": w["wave"], "radius_m": w["radius_m"], "started_at": _iso(w["started_at"])}
            for w in waves
        ],
        "responders": responders,
        "aeds": await _aeds(conn, incident["agency_id"], lat, lon, reach) if lat else [],
        "units": (await _units(conn, [incident_id])).get(incident_id, []),
    }


async def _aeds(
    conn: Conn, agency_id: UUID, lat: float, lon: float, reach_m: float
) -> list[dict[str, Any]]:
    dlat = reach_m / _M_PER_DEG
    dlon = reach_m / (_M_PER_DEG * max(0.01, math.cos(math.radians(lat))))
    rows = await conn.fetch(
        """
        SELECT id, name, lat, lon FROM aeds
        WHERE agency_id = $1 AND active AND lat BETWEEN $2 AND $3 AND lon BETWEEN $4 AND $5
        ORDER BY id LIMIT 500
        """,
        agency_id,
        lat - dlat,
        lat + dlat,
        lon - dlon,
        lon + dlon,
    )
    found = []
    for r in rows:
        distance = _metres(lat, lon, r["lat"], r["lon"])
        if distance <= reach_m:
            found.append(
                {
                    "aed_id": r["id"],
                    "name": r["name"],
                    "lat": r["lat"],
                    "lon": r["lon"],
                    "distance_m": round(distance),
                }
            )
    return found


async def change_mark(conn: Conn, since_id: int) -> tuple[int, int]:
    """(newest response-log id, rows after ``since_id``): a cheap test for "anything new?".

    The count, not just the maximum, catches a transaction that took a lower id but
    committed after a higher one was already seen.
    """
    row = await conn.fetchrow(
        "SELECT coalesce(max(id), 0) AS newest, count(*) AS n FROM response_log WHERE id > $1",
        since_id,
    )
    assert row is not None
    return row["newest"], row["n"]


async def newest_id(conn: Conn) -> int:
    found = await conn.fetchval("SELECT coalesce(max(id), 0) FROM response_log")
    return int(found)
