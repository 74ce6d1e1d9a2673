"""Polled CAD feeds: configuration, the schedule and each feed's health, all in the database."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from cad_adapters.models import IncidentStatus
from dispatch.db.types import Conn

REFUSED_SHOWN = 20
"""Refused items of the last poll kept with the feed's health."""


@dataclass(frozen=True, slots=True)
class Feed:
    feed_id: int
    agency_id: UUID
    name: str
    url: str
    interval_s: float
    timeout_s: float
    headers: Mapping[str, str]
    mapping: Mapping[str, Any]
    failures: int
    etag: str | None = None
    last_modified: str | None = None
    last_ok_at: datetime | None = None
    """The last successful poll before this one (None: never)."""

    @property
    def source(self) -> str:
        return f"feed:{self.name}"


async def create(
    conn: Conn,
    *,
    agency_id: UUID,
    name: str,
    url: str,
    mapping: Mapping[str, Any],
    interval_s: float = 30.0,
    timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> int:
    feed_id: int = await conn.fetchval(
        """
        INSERT INTO cad_feeds (agency_id, name, url, interval_s, timeout_s, headers, mapping)
        VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
        """,
        agency_id,
        name,
        url,
        interval_s,
        timeout_s,
        dict(headers or {}),
        dict(mapping),
    )
    return feed_id


async def claim_due(conn: Conn, now: datetime, lease: timedelta) -> list[Feed]:
    """Feeds due for a poll, pushed forward by ``lease`` so no other process polls them too."""
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM cad_feeds WHERE enabled AND next_poll_at <= $1
            ORDER BY next_poll_at FOR UPDATE SKIP LOCKED
        )
        UPDATE cad_feeds f SET next_poll_at = $1 + $2::interval FROM due WHERE f.id = due.id
        RETURNING f.*
        """,
        now,
        lease,
    )
    return [
        Feed(
            r["id"],
            r["agency_id"],
            r["name"],
            r["url"],
            r["interval_s"],
            r["timeout_s"],
            r["headers"],
            r["mapping"],
            r["failures"],
            r["etag"],
            r["last_modified"],
            r["last_ok_at"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class PollRecord:
    """What one poll found; ``items_seen`` None means no document was read."""

    at: datetime
    result: str
    ok: bool
    next_at: datetime
    error: str | None = None
    items_seen: int | None = None
    items_refused: int | None = None
    refused: Sequence[Mapping[str, Any]] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    same_document: bool = False
    """A 304: the document, its counts and validators are those of the last poll."""


async def record_poll(conn: Conn, feed_id: int, poll: PollRecord) -> None:
    await conn.execute(
        """
        UPDATE cad_feeds SET
            last_poll_at = $2, last_result = $3,
            failures = CASE WHEN $4 THEN 0 ELSE failures + 1 END,
            last_error = $5,
            last_ok_at = CASE WHEN $4 THEN $2 ELSE last_ok_at END,
            next_poll_at = $6,
            items_seen = CASE WHEN $7 THEN items_seen ELSE $8 END,
            items_refused = CASE WHEN $7 THEN items_refused ELSE $9 END,
            refused_items = CASE WHEN $7 THEN refused_items ELSE $10 END,
            etag = CASE WHEN $7 THEN etag ELSE $11 END,
            last_modified = CASE WHEN $7 THEN last_modified ELSE $12 END
        WHERE id = $1
        """,
        feed_id,
        poll.at,
        poll.result,
        poll.ok,
        None if poll.error is None else poll.error[:500],
        poll.next_at,
        poll.same_document,
        poll.items_seen,
        poll.items_refused,
        [dict(r) for r in poll.refused[:REFUSED_SHOWN]],
        poll.etag,
        poll.last_modified,
    )


async def health(conn: Conn, agency_id: UUID) -> list[dict[str, Any]]:
    """Every feed of the agency with what its polls found (headers, which hold keys, never)."""
    rows = await conn.fetch(
        """
        SELECT id, name, url, enabled, interval_s, last_poll_at, last_ok_at, last_result,
               failures, last_error, items_seen, items_refused, refused_items, next_poll_at
        FROM cad_feeds WHERE agency_id = $1 ORDER BY name
        """,
        agency_id,
    )
    return [dict(r) for r in rows]


@dataclass(frozen=True, slots=True)
class HeldIncident:
    """What intake holds for a feed item: enough to keep its times and version steady."""

    received_at: datetime
    version_at: datetime
    version_seq: int
    content_hash: bytes
    status: IncidentStatus
    source_updated_at: datetime | None


async def held_incidents(
    conn: Conn, agency_id: UUID, source: str, ids: Collection[str]
) -> dict[str, HeldIncident]:
    if not ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT source_incident_id, received_at, version_at, version_seq, content_hash, status,
               report->>'source_updated_at' AS source_updated_at
        FROM incidents
        WHERE agency_id = $1 AND source = $2 AND source_incident_id = ANY($3::text[])
        """,
        agency_id,
        source,
        list(ids),
    )
    return {
        r["source_incident_id"]: HeldIncident(
            received_at=r["received_at"],
            version_at=r["version_at"],
            version_seq=r["version_seq"],
            content_hash=r["content_hash"],
            status=IncidentStatus(r["status"]),
            source_updated_at=(
                datetime.fromisoformat(r["source_updated_at"]) if r["source_updated_at"] else None
            ),
        )
        for r in rows
    }
