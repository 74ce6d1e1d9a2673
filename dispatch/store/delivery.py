"""Outbox rows as steps of an alert's fallback chain, and look-ups for provider callbacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.store import response_log
from dispatch.store.alerts import AlertRow, alert_row
from dispatch.store.response_log import LogEvent


@dataclass(frozen=True, slots=True)
class NewStep:
    agency_id: UUID
    alert_id: UUID
    channel: str
    at: datetime


async def lock_incidents_of(conn: Conn, alert_ids: Sequence[UUID]) -> None:
    """Key-share-lock the incidents of these alerts, before the caller locks the alerts.

    Intake locks an incident, then its alerts (stand-down); writing a response-log row
    key-share-locks the incident through its foreign key. Taking the incident lock
    first, as intake does, keeps a delivery transaction and intake from deadlocking.
    """
    await conn.execute(
        """
        SELECT 1 FROM incidents
        WHERE id IN (SELECT incident_id FROM alerts WHERE id = ANY($1::uuid[]))
        ORDER BY id FOR KEY SHARE
        """,
        list(alert_ids),
    )


def _step_columns(steps: Sequence[NewStep]) -> tuple[list[Any], ...]:
    return (
        [s.agency_id for s in steps],
        [s.alert_id for s in steps],
        [s.channel for s in steps],
        [s.at for s in steps],
    )


async def end_leases(
    conn: Conn,
    finished: Sequence[tuple[int, str, str | None, str | None, str | None]],
    retried: Sequence[tuple[int, datetime | None, str, str | None, bool]],
    *,
    now: datetime,
) -> set[int]:
    """Mark leased rows done, ``(id, outcome, error, channel, provider_ref)``, and put others
    back for another attempt, ``(id, at, error, channel, verify)``: one statement.

    Returns the ids actually ended here; a row another worker finished after our lease
    ran out is left alone (its result is recorded once, by that worker).
    """
    if not finished and not retried:
        return set()
    rows = await conn.fetch(
        """
        WITH done AS (
            UPDATE outbox o SET done_at = $1, outcome = x.outcome, last_error = x.error,
                                lease_until = NULL, channel = coalesce(x.channel, o.channel),
                                provider_ref = x.ref
            FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
                 AS x(id, outcome, error, channel, ref)
            WHERE o.id = x.id AND o.done_at IS NULL
            RETURNING o.id
        ), again AS (
            UPDATE outbox o SET available_at = x.at, lease_until = NULL, last_error = x.error,
                                channel = coalesce(x.channel, o.channel),
                                verify_before_send = x.verify
            FROM unnest($7::bigint[], $8::timestamptz[], $9::text[], $10::text[], $11::bool[])
                 AS x(id, at, error, channel, verify)
            WHERE o.id = x.id AND o.done_at IS NULL
            RETURNING o.id
        )
        SELECT id FROM done UNION ALL SELECT id FROM again
        """,
        now,
        *([r[i] for r in finished] for i in range(5)),
        *([r[i] for r in retried] for i in range(5)),
    )
    return {r["id"] for r in rows}


async def record_changes(
    conn: Conn,
    steps: Sequence[NewStep],
    states: Sequence[tuple[UUID, str]],
    events: Sequence[LogEvent],
    *,
    now: datetime,
) -> None:
    """A finished batch's later chain steps, new alert states and timeline rows: one
    statement (the timeline rows' trigger sees the states written beside them)."""
    if not steps and not states and not events:
        return
    await conn.execute(
        """
        WITH steps AS (
            INSERT INTO outbox (agency_id, alert_id, channel, available_at, created_at)
            SELECT s.agency, s.alert, s.channel, s.at, $1
            FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[])
                 AS s(agency, alert, channel, at)
        ), states AS (
            UPDATE alerts a SET state = x.state, updated_at = $1
            FROM unnest($6::uuid[], $7::text[]) AS x(id, state) WHERE a.id = x.id
        )
        INSERT INTO response_log
            (agency_id, incident_id, alert_id, volunteer_id, event, at, details)
        SELECT * FROM unnest($8::uuid[], $9::uuid[], $10::uuid[], $11::bigint[], $12::text[],
                             $13::timestamptz[], $14::jsonb[])
        """,
        now,
        *_step_columns(steps),
        [alert_id for alert_id, _ in states],
        [state for _, state in states],
        *response_log.columns(events),
    )


async def bring_forward(conn: Conn, alert_id: UUID, *, now: datetime) -> str | None:
    """Start the alert's next waiting step now, keeping the spacing of the ones after it.

    Returns the channel of the step that moved, or None when nothing was waiting.
    """
    row = await conn.fetchrow(
        """
        WITH nxt AS (
            SELECT min(available_at) AS first FROM outbox
            WHERE alert_id = $1 AND done_at IS NULL AND available_at > $2
        ), moved AS (
            UPDATE outbox o SET available_at = o.available_at - (nxt.first - $2)
            FROM nxt
            WHERE o.alert_id = $1 AND o.done_at IS NULL AND o.available_at > $2
            RETURNING o.channel, o.available_at
        )
        SELECT channel FROM moved ORDER BY available_at LIMIT 1
        """,
        alert_id,
        now,
    )
    return None if row is None else str(row["channel"])


async def pending_steps(conn: Conn, alert_id: UUID, *, excluding: int) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE alert_id = $1 AND done_at IS NULL AND id <> $2",
        alert_id,
        excluding,
    )
    return count


async def other_push_alive(conn: Conn, alert_id: UUID, *, excluding: int, now: datetime) -> bool:
    """Whether the alert's other push-slot step (FCM or Web Push) was sent or is due now."""
    found = await conn.fetchval(
        """
        SELECT true FROM outbox
        WHERE alert_id = $1 AND id <> $2 AND channel IN ('push', 'web_push')
          AND (outcome = 'sent' OR (done_at IS NULL AND available_at <= $3))
        LIMIT 1
        """,
        alert_id,
        excluding,
        now,
    )
    return bool(found)


async def any_sent(conn: Conn, alert_id: UUID) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM outbox WHERE alert_id = $1 AND outcome = 'sent' LIMIT 1", alert_id
    )
    return bool(found)


# An alert a text reply can still act on: not answered "no", not over, not timed out.
_OPEN_STATES = ["queued", "sent", "delivered", "accepted", "en_route", "on_scene"]


async def open_alert_for_phone(conn: Conn, phone_e164: str, *, now: datetime) -> AlertRow | None:
    """The newest open alert texted or called to this number (what a reply answers).

    The same number may belong to volunteers of several agencies; a reply acts only
    where an alert to it is still open, never on another agency's closed one.
    """
    row = await conn.fetchrow(
        """
        SELECT a.id, a.agency_id, a.incident_id, a.volunteer_id, a.state
        FROM alerts a JOIN volunteers v ON v.id = a.volunteer_id
        WHERE v.phone_e164 = $1 AND a.expires_at > $2 AND a.state = ANY($3::text[])
          AND EXISTS (SELECT 1 FROM outbox o WHERE o.alert_id = a.id
                      AND o.channel IN ('sms', 'voice') AND o.outcome = 'sent')
        ORDER BY a.created_at DESC LIMIT 1
        """,
        phone_e164,
        now,
        _OPEN_STATES,
    )
    if row is None:
        return None
    return alert_row(row)


async def latest_alert_of_each(conn: Conn, volunteer_ids: Sequence[int]) -> list[AlertRow]:
    """Each volunteer's newest alert, if any (to file an opt-out in that incident's timeline)."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (volunteer_id) id, agency_id, incident_id, volunteer_id, state
        FROM alerts WHERE volunteer_id = ANY($1::bigint[])
        ORDER BY volunteer_id, created_at DESC
        """,
        list(volunteer_ids),
    )
    return [alert_row(r) for r in rows]


async def agency_windows(conn: Conn, agency_id: UUID) -> dict[str, Any] | None:
    """The delivery chain's windows, the agency row locked until the transaction ends: a
    policy change and a windows change cannot each pass their cross-check against the
    other's old value."""
    row = await conn.fetchrow(
        "SELECT push_ack_timeout_s, answer_timeout_s, critical_alerts FROM agencies"
        " WHERE id = $1 FOR NO KEY UPDATE",
        agency_id,
    )
    return None if row is None else dict(row)


async def set_agency_windows(
    conn: Conn,
    agency_id: UUID,
    *,
    push_ack_timeout_s: int | None,
    answer_timeout_s: int | None,
    critical_alerts: bool | None,
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """
        UPDATE agencies SET push_ack_timeout_s = coalesce($2, push_ack_timeout_s),
                            answer_timeout_s = coalesce($3, answer_timeout_s),
                            critical_alerts = coalesce($4, critical_alerts)
        WHERE id = $1 RETURNING push_ack_timeout_s, answer_timeout_s, critical_alerts
        """,
        agency_id,
        push_ack_timeout_s,
        answer_timeout_s,
        critical_alerts,
    )
    return None if row is None else dict(row)


async def oldest_due_age_s(conn: Conn) -> float:
    """Seconds the oldest due, unfinished outbox row has been waiting (0 when none is)."""
    age: float = await conn.fetchval(
        "SELECT coalesce(extract(epoch FROM now() - min(available_at))::float8, 0)"
        " FROM outbox WHERE done_at IS NULL AND available_at <= now()"
    )
    return max(0.0, age)
