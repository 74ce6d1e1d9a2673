"""Polled CAD feeds: configuration and the schedule, which lives in the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID


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

    @property
    def source(self) -> str:
        return f"feed:{self.name}"


async def create(
    conn: Any,
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


async def claim_due(conn: Any, now: datetime, lease: timedelta) -> list[Feed]:
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
        )
        for r in rows
    ]


async def record_success(conn: Any, feed_id: int, now: datetime, next_at: datetime) -> None:
    await conn.execute(
        "UPDATE cad_feeds SET failures = 0, last_error = NULL, last_ok_at = $2,"
        " next_poll_at = $3 WHERE id = $1",
        feed_id,
        now,
        next_at,
    )


async def record_failure(conn: Any, feed_id: int, error: str, next_at: datetime) -> None:
    await conn.execute(
        "UPDATE cad_feeds SET failures = failures + 1, last_error = $2, next_poll_at = $3"
        " WHERE id = $1",
        feed_id,
        error[:500],
        next_at,
    )
