"""Aftercare: who is followed up when an incident ends, their feedback, debrief requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn


async def responders(conn: Conn, incident_id: UUID) -> list[tuple[UUID, int]]:
    """(alert, volunteer) of everyone who accepted an alert of this incident."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT a.id, a.volunteer_id FROM alerts a
        JOIN response_log r ON r.alert_id = a.id AND r.event = 'alert_accepted'
        WHERE a.incident_id = $1 AND r.incident_id = $1 AND a.role <> 'test'
        ORDER BY a.id
        """,
        incident_id,
    )
    return [(r["id"], r["volunteer_id"]) for r in rows]


async def alert_of(conn: Conn, alert_id: UUID, volunteer_id: int) -> tuple[UUID, UUID] | None:
    """(agency, incident) of the volunteer's own alert, else None."""
    row = await conn.fetchrow(
        "SELECT agency_id, incident_id FROM alerts WHERE id = $1 AND volunteer_id = $2",
        alert_id,
        volunteer_id,
    )
    return (row["agency_id"], row["incident_id"]) if row is not None else None


async def add_feedback(
    conn: Conn,
    *,
    agency_id: UUID,
    volunteer_id: int,
    alert_id: UUID,
    text: str | None,
    wants_to_talk: bool,
    now: datetime,
) -> int:
    feedback_id: int = await conn.fetchval(
        """
        INSERT INTO alert_feedback (agency_id, volunteer_id, alert_id, text, wants_to_talk,
                                    created_at)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
        """,
        agency_id,
        volunteer_id,
        alert_id,
        text,
        wants_to_talk,
        now,
    )
    return feedback_id


def _request(r: Any) -> dict[str, Any]:
    return {
        "request_id": r["id"],
        "volunteer_id": r["volunteer_id"],
        "display_name": r["display_name"],
        "phone_e164": r["phone_e164"],
        "alert_id": str(r["alert_id"]),
        "incident_id": str(r["incident_id"]),
        "text": r["text"],
        "requested_at": r["created_at"].isoformat(),
        "handled_at": r["handled_at"].isoformat() if r["handled_at"] else None,
        "handled_by": r["handled_by"],
        "note": r["handled_note"],
    }


async def debrief_requests(
    conn: Conn, agency_id: UUID, *, handled: bool | None, limit: int, before_id: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT f.*, a.incident_id, v.display_name, v.phone_e164
        FROM alert_feedback f JOIN alerts a ON a.id = f.alert_id
        JOIN volunteers v ON v.id = f.volunteer_id
        WHERE f.agency_id = $1 AND f.wants_to_talk AND f.id < $2
          AND ($3::boolean IS NULL OR (f.handled_at IS NOT NULL) = $3)
        ORDER BY f.id DESC LIMIT $4
        """,
        agency_id,
        before_id,
        handled,
        limit,
    )
    return [_request(r) for r in rows]


async def mark_handled(
    conn: Conn,
    agency_id: UUID,
    request_id: int,
    *,
    supervisor_id: int,
    note: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """Mark a debrief request handled; None when the agency has no such open request."""
    done = await conn.fetchval(
        """
        UPDATE alert_feedback SET handled_at = $3, handled_by = $4, handled_note = $5
        WHERE agency_id = $1 AND id = $2 AND wants_to_talk AND handled_at IS NULL
        RETURNING id
        """,
        agency_id,
        request_id,
        now,
        supervisor_id,
        note,
    )
    if done is None:
        return None
    row = await conn.fetchrow(
        """
        SELECT f.*, a.incident_id, v.display_name, v.phone_e164
        FROM alert_feedback f JOIN alerts a ON a.id = f.alert_id
        JOIN volunteers v ON v.id = f.volunteer_id WHERE f.id = $1
        """,
        request_id,
    )
    return _request(row)


async def request_exists(conn: Conn, agency_id: UUID, request_id: int) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM alert_feedback WHERE agency_id = $1 AND id = $2 AND wants_to_talk",
        agency_id,
        request_id,
    )
    return bool(found)


async def feedback_of(conn: Conn, volunteer_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, alert_id, text, wants_to_talk, created_at, handled_at FROM alert_feedback"
        " WHERE volunteer_id = $1 ORDER BY id",
        volunteer_id,
    )
    return [
        {
            "feedback_id": r["id"],
            "alert_id": str(r["alert_id"]),
            "text": r["text"],
            "wants_to_talk": r["wants_to_talk"],
            "at": r["created_at"].isoformat(),
            "handled_at": r["handled_at"].isoformat() if r["handled_at"] else None,
        }
        for r in rows
    ]
