"""The notice outbox: messages to volunteers that are not alerts (migration 0011)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from dispatch.db.types import Conn
from dispatch.store.alerts import DeviceAddress


@dataclass(frozen=True, slots=True)
class NewNotice:
    agency_id: UUID
    volunteer_id: int | None
    kind: str
    available_at: datetime
    expires_at: datetime
    title: str | None = None
    """None: written when sent (a reminder's words depend on what holds then)."""
    body: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    phone_e164: str | None = None
    """Only for a code to a number that has no account yet."""
    dedupe_key: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedNotice:
    notice_id: int
    ref: UUID
    agency_id: UUID
    volunteer_id: int | None
    kind: str
    title: str | None
    body: str | None
    data: dict[str, Any]
    expires_at: datetime
    attempts: int
    language: str
    phone_e164: str | None
    devices: tuple[DeviceAddress, ...] = ()
    sms_allowed: bool = True
    refused: tuple[str, ...] = ()


async def queue(conn: Conn, notices: Sequence[NewNotice], *, now: datetime) -> int:
    """Queue notices in the caller's transaction; one already queued under its key is skipped.

    Returns how many were queued.
    """
    if not notices:
        return 0
    rows = await conn.fetch(
        """
        INSERT INTO volunteer_notices (ref, agency_id, volunteer_id, kind, title, body, data,
            phone_e164, dedupe_key, available_at, expires_at, created_at)
        SELECT *, $12::timestamptz FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[],
            $5::text[], $6::text[], $7::jsonb[], $8::text[], $9::text[], $10::timestamptz[],
            $11::timestamptz[])
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING id
        """,
        [uuid4() for _ in notices],
        [n.agency_id for n in notices],
        [n.volunteer_id for n in notices],
        [n.kind for n in notices],
        [n.title for n in notices],
        [n.body for n in notices],
        [dict(n.data) for n in notices],
        [n.phone_e164 for n in notices],
        [n.dedupe_key for n in notices],
        [n.available_at for n in notices],
        [n.expires_at for n in notices],
        now,
    )
    return len(rows)


async def claim_due(
    conn: Conn, *, now: datetime, limit: int, lease: timedelta
) -> list[ClaimedNotice]:
    """Lease due notices (SKIP LOCKED), with how their volunteer can be reached now."""
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM volunteer_notices
            WHERE done_at IS NULL AND available_at <= $1
              AND (lease_until IS NULL OR lease_until < $1)
            ORDER BY available_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
        ), leased AS (
            UPDATE volunteer_notices n SET lease_until = $1 + $3::interval,
                attempts = n.attempts + 1
            FROM due WHERE n.id = due.id
            RETURNING n.*
        )
        SELECT l.id, l.ref, l.agency_id, l.volunteer_id, l.kind, l.title, l.body, l.data,
               l.expires_at, l.attempts, coalesce(v.language, 'en') AS language,
               coalesce(l.phone_e164, v.phone_e164) AS phone,
               NOT coalesce(vc.sms_opt_out OR vc.phone_invalid, false) AS sms_allowed,
               coalesce(vc.refused, '{}') AS refused,
               coalesce((SELECT array_agg(d.id ORDER BY d.id) FROM devices d
                         WHERE d.volunteer_id = l.volunteer_id AND d.active), '{}') AS device_ids,
               coalesce((SELECT array_agg(d.fcm_token ORDER BY d.id) FROM devices d
                         WHERE d.volunteer_id = l.volunteer_id AND d.active), '{}') AS tokens,
               coalesce((SELECT array_agg(d.platform ORDER BY d.id) FROM devices d
                         WHERE d.volunteer_id = l.volunteer_id AND d.active), '{}') AS platforms
        FROM leased l
        LEFT JOIN volunteers v ON v.id = l.volunteer_id
        LEFT JOIN volunteer_channels vc ON vc.volunteer_id = l.volunteer_id
        ORDER BY l.id
        """,
        now,
        limit,
        lease,
    )
    return [
        ClaimedNotice(
            notice_id=r["id"],
            ref=r["ref"],
            agency_id=r["agency_id"],
            volunteer_id=r["volunteer_id"],
            kind=r["kind"],
            title=r["title"],
            body=r["body"],
            data=r["data"],
            expires_at=r["expires_at"],
            attempts=r["attempts"],
            language=r["language"],
            phone_e164=r["phone"],
            devices=tuple(
                DeviceAddress(i, t, p)
                for i, t, p in zip(r["device_ids"], r["tokens"], r["platforms"], strict=True)
            ),
            sms_allowed=r["sms_allowed"],
            refused=tuple(r["refused"]),
        )
        for r in rows
    ]


async def finish(
    conn: Conn,
    notice_id: int,
    *,
    outcome: str,
    channel: str | None,
    error: str | None,
    now: datetime,
    wipe: bool,
) -> bool:
    """Mark a leased notice done; ``wipe`` drops its text and number (a code's)."""
    done = await conn.fetchval(
        """
        UPDATE volunteer_notices SET done_at = $2, outcome = $3, channel = $4, last_error = $5,
            lease_until = NULL,
            body = CASE WHEN $6 THEN NULL ELSE body END,
            phone_e164 = CASE WHEN $6 THEN NULL ELSE phone_e164 END
        WHERE id = $1 AND done_at IS NULL RETURNING true
        """,
        notice_id,
        now,
        outcome,
        channel,
        error,
        wipe,
    )
    return bool(done)


async def retry(conn: Conn, notice_id: int, *, at: datetime, error: str | None) -> bool:
    done = await conn.fetchval(
        "UPDATE volunteer_notices SET available_at = $2, lease_until = NULL, last_error = $3"
        " WHERE id = $1 AND done_at IS NULL RETURNING true",
        notice_id,
        at,
        error,
    )
    return bool(done)


async def purge_done(conn: Conn, before: datetime) -> int:
    status: str = await conn.execute("DELETE FROM volunteer_notices WHERE done_at < $1", before)
    return int(status.rsplit(" ", 1)[-1])


async def forget_phone(conn: Conn, agency_id: UUID, phone_e164: str) -> None:
    """Erasure: codes still queued for a number are dropped with it."""
    await conn.execute(
        "DELETE FROM volunteer_notices WHERE agency_id = $1 AND phone_e164 = $2",
        agency_id,
        phone_e164,
    )


async def of_volunteer(conn: Conn, volunteer_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT kind, title, data, created_at, available_at, done_at, outcome, channel
        FROM volunteer_notices WHERE volunteer_id = $1 ORDER BY id
        """,
        volunteer_id,
    )
    return [
        {
            "kind": r["kind"],
            "title": r["title"],
            "data": r["data"],
            "queued_at": r["created_at"].isoformat(),
            "due_at": r["available_at"].isoformat(),
            "done_at": r["done_at"].isoformat() if r["done_at"] else None,
            "outcome": r["outcome"],
            "channel": r["channel"],
        }
        for r in rows
    ]
