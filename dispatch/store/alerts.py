"""Alerts and the outbox rows that carry them to the notifier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from dispatch.domain.alert_states import AlertState


@dataclass(frozen=True, slots=True)
class NewAlert:
    alert_id: UUID
    volunteer_id: int
    distance_m: float
    role: str
    channel: str


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: UUID
    agency_id: UUID
    incident_id: UUID
    volunteer_id: int
    state: AlertState


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """One outbox row leased to this worker, with what the message needs."""

    outbox_id: int
    attempts: int
    channel: str
    alert: AlertRow
    role: str
    distance_m: float
    expires_at: datetime
    language: str
    call_type_code: str
    address_text: str | None


async def alerted_volunteers(conn: Any, incident_id: UUID) -> set[int]:
    rows = await conn.fetch("SELECT volunteer_id FROM alerts WHERE incident_id = $1", incident_id)
    return {r["volunteer_id"] for r in rows}


async def count_for_incident(conn: Any, incident_id: UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM alerts WHERE incident_id = $1", incident_id
    )
    return count


async def insert_with_outbox(
    conn: Any,
    *,
    agency_id: UUID,
    incident_id: UUID,
    alerts: Sequence[NewAlert],
    expires_at: datetime,
    now: datetime,
) -> None:
    """Alerts and their outbox rows, in the caller's transaction (never one without the other)."""
    if not alerts:
        return
    await conn.execute(
        """
        INSERT INTO alerts (id, agency_id, incident_id, volunteer_id, role, state, distance_m,
                            expires_at, created_at, updated_at)
        SELECT a.id, $1, $2, a.vid, a.role, 'queued', a.dist, $3, $4, $4
        FROM unnest($5::uuid[], $6::bigint[], $7::text[], $8::float8[]) AS a(id, vid, role, dist)
        """,
        agency_id,
        incident_id,
        expires_at,
        now,
        [a.alert_id for a in alerts],
        [a.volunteer_id for a in alerts],
        [a.role for a in alerts],
        [a.distance_m for a in alerts],
    )
    await conn.execute(
        """
        INSERT INTO outbox (agency_id, alert_id, channel, available_at, created_at)
        SELECT $1, a.id, a.channel, $2, $2 FROM unnest($3::uuid[], $4::text[]) AS a(id, channel)
        """,
        agency_id,
        now,
        [a.alert_id for a in alerts],
        [a.channel for a in alerts],
    )


async def lock_alert(conn: Any, alert_id: UUID) -> AlertRow | None:
    row = await conn.fetchrow(
        "SELECT id, agency_id, incident_id, volunteer_id, state FROM alerts"
        " WHERE id = $1 FOR UPDATE",
        alert_id,
    )
    if row is None:
        return None
    return AlertRow(
        row["id"],
        row["agency_id"],
        row["incident_id"],
        row["volunteer_id"],
        AlertState(row["state"]),
    )


async def set_state(conn: Any, alert_id: UUID, state: AlertState, now: datetime) -> None:
    await conn.execute(
        "UPDATE alerts SET state = $2, updated_at = $3 WHERE id = $1", alert_id, state.value, now
    )


async def claim_due(
    conn: Any, *, now: datetime, limit: int, lease: timedelta
) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` due outbox rows to the caller.

    ``FOR UPDATE SKIP LOCKED`` lets several workers share the table; the lease
    (rather than a transaction held open across the network call) means a worker
    that dies mid-send releases its rows when the lease runs out.
    """
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM outbox
            WHERE done_at IS NULL AND available_at <= $1
              AND (lease_until IS NULL OR lease_until < $1)
            ORDER BY available_at, id
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        ), leased AS (
            UPDATE outbox o SET lease_until = $1 + $3::interval, attempts = o.attempts + 1
            FROM due WHERE o.id = due.id
            RETURNING o.id, o.alert_id, o.channel, o.attempts
        )
        SELECT l.id AS outbox_id, l.channel, l.attempts, a.id AS alert_id, a.agency_id,
               a.incident_id, a.volunteer_id, a.state, a.role, a.distance_m, a.expires_at,
               v.language, i.call_type_code, i.report #>> '{address,text}' AS address_text
        FROM leased l
        JOIN alerts a ON a.id = l.alert_id
        JOIN volunteers v ON v.id = a.volunteer_id
        JOIN incidents i ON i.id = a.incident_id
        ORDER BY l.id
        """,
        now,
        limit,
        lease,
    )
    return [
        ClaimedDelivery(
            outbox_id=r["outbox_id"],
            attempts=r["attempts"],
            channel=r["channel"],
            alert=AlertRow(
                r["alert_id"],
                r["agency_id"],
                r["incident_id"],
                r["volunteer_id"],
                AlertState(r["state"]),
            ),
            role=r["role"],
            distance_m=r["distance_m"],
            expires_at=r["expires_at"],
            language=r["language"],
            call_type_code=r["call_type_code"],
            address_text=r["address_text"],
        )
        for r in rows
    ]


async def finish_delivery(
    conn: Any, outbox_id: int, *, outcome: str, error: str | None, now: datetime
) -> bool:
    """Mark a leased row done; False if it was already done (another worker after lease expiry)."""
    updated = await conn.fetchval(
        """
        UPDATE outbox SET done_at = $2, outcome = $3, last_error = $4, lease_until = NULL
        WHERE id = $1 AND done_at IS NULL RETURNING true
        """,
        outbox_id,
        now,
        outcome,
        error,
    )
    return bool(updated)


async def retry_delivery(conn: Any, outbox_id: int, *, at: datetime, error: str) -> None:
    await conn.execute(
        """
        UPDATE outbox SET available_at = $2, lease_until = NULL, last_error = $3
        WHERE id = $1 AND done_at IS NULL
        """,
        outbox_id,
        at,
        error,
    )
