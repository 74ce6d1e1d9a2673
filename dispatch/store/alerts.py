"""Alerts and the outbox rows that carry them to the notifier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from dispatch.db.types import Conn
from dispatch.domain.alert_states import AlertState
from dispatch.domain.waves import AlertView
from dispatch.store.unnest import columns


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
class DeviceAddress:
    device_id: int
    fcm_token: str
    platform: str


@dataclass(frozen=True, slots=True)
class WebPushAddress:
    """An active Web Push subscription: where to post and the browser's keys."""

    subscription_id: int
    endpoint: str
    p256dh: bytes
    auth: bytes


def alert_row(row: asyncpg.Record) -> AlertRow:
    """An :class:`AlertRow` from a record with id, agency_id, incident_id, volunteer_id, state."""
    return AlertRow(
        row["id"],
        row["agency_id"],
        row["incident_id"],
        row["volunteer_id"],
        AlertState(row["state"]),
    )


@dataclass(frozen=True, slots=True)
class AedDirections:
    """Where the AED to fetch is, for a volunteer with the AED role."""

    name: str
    lat: float
    lon: float
    access: str | None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """One outbox row (one step of an alert's fallback chain) leased to this worker.

    Carries what the message needs and what the chain decides on: the
    volunteer's active devices, phone, preferences, and the agency's windows.
    """

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
    phone_e164: str | None = None
    devices: tuple[DeviceAddress, ...] = ()
    web_push: tuple[WebPushAddress, ...] = ()
    preferred: str | None = None
    refused: tuple[str, ...] = ()
    sms_opt_out: bool = False
    phone_invalid: bool = False
    ack_timeout_s: int = 15
    next_channel_after_s: int = 45
    critical_alerts: bool = False
    verify_before_send: bool = False
    reclaimed: bool = False
    """Leased before by a worker that never recorded a result (it died, or lost the database
    after sending): the provider may already have this message."""
    patient: tuple[float, float] | None = None
    aed: AedDirections | None = None


async def insert_with_outbox(
    conn: Conn,
    *,
    agency_id: UUID,
    incident_id: UUID,
    alerts: Sequence[NewAlert],
    expires_at: datetime,
    now: datetime,
    wave: int = 0,
) -> set[int]:
    """Alerts and their outbox rows, in the caller's transaction (never one without the other).

    Only volunteers still verified and available as of this transaction get a row
    (the in-memory index may lag another process's change); returns the volunteer
    ids that did. One round trip: this runs inside every intake transaction.
    """
    if not alerts:
        return set()
    rows = await conn.fetch(
        """
        WITH input AS (
            SELECT * FROM unnest($5::uuid[], $6::bigint[], $7::text[], $8::float8[], $9::text[])
                AS a(id, vid, role, dist, channel)
        ), eligible AS (
            SELECT input.* FROM input JOIN volunteers v
                ON v.id = input.vid AND v.agency_id = $1 AND v.verified AND v.available
        ), inserted AS (
            INSERT INTO alerts (id, agency_id, incident_id, volunteer_id, role, state,
                                distance_m, expires_at, created_at, updated_at, wave)
            SELECT id, $1, $2, vid, role, 'queued', dist, $3, $4, $4, $10 FROM eligible
            ON CONFLICT (incident_id, volunteer_id) DO NOTHING
            RETURNING id, volunteer_id
        ), queued AS (
            INSERT INTO outbox (agency_id, alert_id, channel, available_at, created_at)
            SELECT $1, eligible.id, eligible.channel, $4, $4
            FROM eligible JOIN inserted USING (id)
        )
        SELECT volunteer_id FROM inserted
        """,
        agency_id,
        incident_id,
        expires_at,
        now,
        *columns(alerts, "alert_id", "volunteer_id", "role", "distance_m", "channel"),
        wave,
    )
    return {r["volunteer_id"] for r in rows}


async def lock_alert(conn: Conn, alert_id: UUID) -> AlertRow | None:
    row = await conn.fetchrow(
        "SELECT id, agency_id, incident_id, volunteer_id, state FROM alerts"
        " WHERE id = $1 FOR NO KEY UPDATE",
        alert_id,
    )
    if row is None:
        return None
    return alert_row(row)


async def set_state(conn: Conn, alert_id: UUID, state: AlertState, now: datetime) -> None:
    await conn.execute(
        "UPDATE alerts SET state = $2, updated_at = $3 WHERE id = $1", alert_id, state.value, now
    )


@dataclass(frozen=True, slots=True)
class AlertOwner:
    incident_id: UUID
    agency_id: UUID
    volunteer_id: int


async def owner(conn: Conn, alert_id: UUID) -> AlertOwner | None:
    """Whose alert this is and for which incident, read without a lock."""
    row = await conn.fetchrow(
        "SELECT incident_id, agency_id, volunteer_id FROM alerts WHERE id = $1", alert_id
    )
    if row is None:
        return None
    return AlertOwner(row["incident_id"], row["agency_id"], row["volunteer_id"])


async def mark_answered(conn: Conn, alert_id: UUID, now: datetime) -> None:
    await conn.execute("UPDATE alerts SET answered_at = $2 WHERE id = $1", alert_id, now)


@dataclass(frozen=True, slots=True)
class LiveAlert:
    """An alert whose volunteer may still be going, as the role planner sees it."""

    alert_id: UUID
    volunteer_id: int
    state: AlertState
    role: str
    aed_id: int | None
    distance_m: float


async def live_for_roles(conn: Conn, incident_id: UUID) -> list[LiveAlert]:
    rows = await conn.fetch(
        """
        SELECT id, volunteer_id, state, role, aed_id, distance_m FROM alerts
        WHERE incident_id = $1
          AND state IN ('queued', 'sent', 'delivered', 'accepted', 'en_route', 'on_scene')
        """,
        incident_id,
    )
    return [
        LiveAlert(
            r["id"],
            r["volunteer_id"],
            AlertState(r["state"]),
            r["role"],
            r["aed_id"],
            r["distance_m"],
        )
        for r in rows
    ]


async def set_roles(conn: Conn, changed: Sequence[tuple[UUID, str, int | None]]) -> None:
    """Store (alert id, role, AED id) for each alert whose role the planner changed."""
    await conn.executemany("UPDATE alerts SET role = $2, aed_id = $3 WHERE id = $1", changed)


# How many of the oldest due rows one claim looks at when sharing out work by incident, at
# least, and per row it leases: every row of the window costs a look-up and a place in two
# sorts, so a fixed 2000 made a claim of 100 rows do twenty rows' work for each one it took
# (half of the claim's time). Five per leased row still spreads a claim of 100 over the
# first alerts of every incident among the oldest 500 due rows (sixteen incidents of thirty
# alerts each).
_CLAIM_WINDOW = 500
_CLAIM_WINDOW_PER_ROW = 5


async def claim_due(
    conn: Conn, *, now: datetime, limit: int, lease: timedelta
) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` due outbox rows to the caller, shared fairly between incidents.

    ``FOR UPDATE SKIP LOCKED`` lets several workers share the table; the lease
    (rather than a transaction held open across the network call) means a worker
    that dies mid-send releases its rows when the lease runs out; such a row comes back
    ``reclaimed`` (its earlier lease lapsed without a result), so the caller can treat
    the send as possibly done. Rows are taken
    round-robin by incident (each incident's first due row, then each one's
    second, …) among the oldest due rows, so one incident's thirty alerts cannot
    hold back another incident's first.
    """
    rows = await conn.fetch(
        """
        WITH oldest AS MATERIALIZED (
            SELECT o.id, o.available_at,
                   (SELECT a.incident_id FROM alerts a WHERE a.id = o.alert_id) AS incident_id
            FROM outbox o
            WHERE o.done_at IS NULL AND o.available_at <= $1
              AND (o.lease_until IS NULL OR o.lease_until < $1)
            ORDER BY o.available_at, o.id
            LIMIT $4
        ), due AS (
            -- Locked one by one in turn order, each looked up by its full key in the pending
            -- index, until $2 are held: a plan cached while the table was empty cannot turn
            -- this into a scan of the outbox per candidate (it did: 16 s for one claim of
            -- 10,000 rows). A row whose due time moved meanwhile waits for the next claim.
            SELECT o.id, o.lapsed_lease
            FROM (
                SELECT id, available_at,
                       row_number() OVER (PARTITION BY incident_id
                                          ORDER BY available_at, id) AS turn
                FROM oldest ORDER BY turn, available_at, id
            ) r
            CROSS JOIN LATERAL (
                SELECT o.id, o.lease_until AS lapsed_lease FROM outbox o
                WHERE o.available_at = r.available_at AND o.id = r.id AND o.done_at IS NULL
                  AND (o.lease_until IS NULL OR o.lease_until < $1)
                FOR UPDATE SKIP LOCKED
            ) o
            ORDER BY r.turn, r.available_at, r.id
            LIMIT $2
        ), leased AS (
            UPDATE outbox o SET lease_until = $1 + $3::interval, attempts = o.attempts + 1
            FROM due WHERE o.id = due.id
            RETURNING o.id, o.alert_id, o.channel, o.attempts, o.verify_before_send,
                      due.lapsed_lease IS NOT NULL AS reclaimed
        )
        SELECT l.id AS outbox_id, l.channel, l.attempts, l.verify_before_send, l.reclaimed,
               a.id AS alert_id, a.agency_id,
               a.incident_id, a.volunteer_id, a.state, a.role, a.distance_m, a.expires_at,
               v.language, v.phone_e164, i.call_type_code,
               i.report #>> '{address,text}' AS address_text,
               i.lat AS patient_lat, i.lon AS patient_lon,
               aed.name AS aed_name, aed.lat AS aed_lat, aed.lon AS aed_lon,
               concat_ws('. ', aed.indoor_description, aed.access_notes) AS aed_access,
               ag.push_ack_timeout_s, ag.answer_timeout_s, ag.critical_alerts,
               vc.preferred, coalesce(vc.refused, '{}') AS refused,
               coalesce(vc.sms_opt_out, false) AS sms_opt_out,
               coalesce(vc.phone_invalid, false) AS phone_invalid,
               coalesce(dv.ids, '{}') AS device_ids, coalesce(dv.tokens, '{}') AS tokens,
               coalesce(dv.platforms, '{}') AS platforms,
               wp.ids AS web_push_ids, wp.endpoints AS web_push_endpoints,
               wp.p256dh AS web_push_p256dh, wp.auth AS web_push_auth
        FROM leased l
        JOIN alerts a ON a.id = l.alert_id
        JOIN volunteers v ON v.id = a.volunteer_id
        JOIN incidents i ON i.id = a.incident_id
        JOIN agencies ag ON ag.id = a.agency_id
        LEFT JOIN volunteer_channels vc ON vc.volunteer_id = a.volunteer_id
        LEFT JOIN aeds aed ON aed.id = a.aed_id
        -- One look-up of the volunteer's devices, not one per column.
        LEFT JOIN LATERAL (
            SELECT array_agg(d.id ORDER BY d.id) AS ids,
                   array_agg(d.fcm_token ORDER BY d.id) AS tokens,
                   array_agg(d.platform ORDER BY d.id) AS platforms
            FROM devices d WHERE d.volunteer_id = a.volunteer_id AND d.active
        ) dv ON true
        LEFT JOIN LATERAL (
            SELECT array_agg(s.id ORDER BY s.id) AS ids,
                   array_agg(s.endpoint ORDER BY s.id) AS endpoints,
                   array_agg(s.p256dh ORDER BY s.id) AS p256dh,
                   array_agg(s.auth_secret ORDER BY s.id) AS auth
            FROM webpush_subscriptions s
            WHERE s.volunteer_id = a.volunteer_id AND s.active
              -- One made for a key we no longer hold would only be refused (403).
              AND s.vapid_public_key = (SELECT public_key FROM webpush_vapid_key)
        ) wp ON true
        ORDER BY l.id
        """,
        now,
        limit,
        lease,
        max(_CLAIM_WINDOW, _CLAIM_WINDOW_PER_ROW * limit),
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
            patient=(r["patient_lat"], r["patient_lon"]) if r["patient_lat"] is not None else None,
            aed=(
                AedDirections(r["aed_name"], r["aed_lat"], r["aed_lon"], r["aed_access"] or None)
                if r["aed_name"] is not None
                else None
            ),
            phone_e164=r["phone_e164"],
            devices=tuple(
                DeviceAddress(i, t, p)
                for i, t, p in zip(r["device_ids"], r["tokens"], r["platforms"], strict=True)
            ),
            web_push=tuple(
                WebPushAddress(i, e, bytes(k), bytes(a))
                for i, e, k, a in zip(
                    r["web_push_ids"] or (),
                    r["web_push_endpoints"] or (),
                    r["web_push_p256dh"] or (),
                    r["web_push_auth"] or (),
                    strict=True,
                )
            ),
            preferred=r["preferred"],
            refused=tuple(r["refused"]),
            sms_opt_out=r["sms_opt_out"],
            phone_invalid=r["phone_invalid"],
            ack_timeout_s=r["push_ack_timeout_s"],
            next_channel_after_s=r["answer_timeout_s"],
            critical_alerts=r["critical_alerts"],
            verify_before_send=r["verify_before_send"],
            reclaimed=r["reclaimed"],
        )
        for r in rows
    ]


async def views_for_incident(conn: Conn, incident_id: UUID) -> list[AlertView]:
    """Every alert of the incident, row-locked, as the wave planner sees them."""
    rows = await conn.fetch(
        """
        SELECT id, volunteer_id, state, created_at, wave FROM alerts
        WHERE incident_id = $1 ORDER BY id FOR NO KEY UPDATE
        """,
        incident_id,
    )
    return [
        AlertView(r["id"], r["volunteer_id"], AlertState(r["state"]), r["created_at"], r["wave"])
        for r in rows
    ]


async def queue_notices(
    conn: Conn, agency_id: UUID, alert_ids: Sequence[UUID], *, now: datetime
) -> None:
    """Outbox rows telling volunteers they are no longer needed (the worker picks a channel)."""
    await conn.execute(
        """
        INSERT INTO outbox (agency_id, alert_id, channel, available_at, created_at)
        SELECT $1, a, 'stand_down', $2, $2 FROM unnest($3::uuid[]) AS a
        """,
        agency_id,
        now,
        list(alert_ids),
    )


async def volunteer_view(conn: Conn, alert_id: UUID, volunteer_id: int) -> dict[str, Any] | None:
    """The facts of the volunteer's own alert the app shows; None when it is not theirs."""
    row = await conn.fetchrow(
        """
        SELECT a.id, a.incident_id, a.state, a.role, a.expires_at, a.distance_m,
               i.status AS incident_status, i.is_test,
               i.lat, i.lon, i.report #>> '{address,text}' AS address,
               aed.name AS aed_name, aed.lat AS aed_lat, aed.lon AS aed_lon,
               aed.indoor_description, aed.access_notes,
               (SELECT r.details ->> 'reason' FROM response_log r
                WHERE r.incident_id = a.incident_id AND r.alert_id = a.id
                  AND r.event IN ('alert_stood_down', 'alert_released', 'alert_timed_out')
                ORDER BY r.at DESC, r.id DESC LIMIT 1) AS ended_reason,
               EXISTS (SELECT 1 FROM response_log r
                       WHERE r.incident_id = a.incident_id AND r.alert_id = a.id
                         AND r.event = 'alert_accepted') AS was_accepted,
               EXISTS (SELECT 1 FROM alert_feedback f
                       WHERE f.alert_id = a.id AND f.volunteer_id = a.volunteer_id)
                   AS feedback_given
        FROM alerts a JOIN incidents i ON i.id = a.incident_id
        LEFT JOIN aeds aed ON aed.id = a.aed_id
        WHERE a.id = $1 AND a.volunteer_id = $2
        """,
        alert_id,
        volunteer_id,
    )
    return None if row is None else dict(row)
