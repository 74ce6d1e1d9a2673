"""The position change feed: what every process reads to follow the others' position writes.

Every write to ``volunteer_positions`` (and every deletion, as a tombstone) carries a
change number that becomes visible in order (see migration ``position_changes``), so a
follower that has applied everything up to N asks for ``change_seq > N`` and misses
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.store.position_arrays import PositionArrays, copy_positions, parse_copy

CHANNEL: Final = "dispatch_positions"
"""Notified (by a trigger) when a transaction that wrote positions commits."""

# One process at a time purges stale positions; any constant no other code takes.
_PURGE_LOCK: Final = 0x4453505055524745 >> 8


@dataclass(frozen=True, slots=True)
class PositionChange:
    seq: int
    volunteer_id: int
    agency_id: UUID
    position: tuple[float, float, datetime] | None
    """(lat, lon, reported_at) to index; None: forget the volunteer (deleted or not alertable)."""


async def changes_since(conn: Conn, after: int, limit: int) -> list[PositionChange]:
    """Up to ``limit`` changes numbered above ``after``, in change order."""
    rows = await conn.fetch(
        """
        SELECT * FROM (
            SELECT p.change_seq, p.volunteer_id, p.agency_id, p.lat, p.lon, p.reported_at,
                   v.verified AND v.available AS alive
            FROM volunteer_positions p JOIN volunteers v ON v.id = p.volunteer_id
            WHERE p.change_seq > $1
            UNION ALL
            SELECT t.change_seq, t.volunteer_id, t.agency_id, NULL, NULL, NULL, false
            FROM position_tombstones t
            WHERE t.change_seq > $1
        ) c
        ORDER BY change_seq
        LIMIT $2
        """,
        after,
        limit,
    )
    return [
        PositionChange(
            r["change_seq"],
            r["volunteer_id"],
            r["agency_id"],
            (r["lat"], r["lon"], r["reported_at"]) if r["alive"] else None,
        )
        for r in rows
    ]


async def latest_number(conn: Conn) -> int:
    """The last change number drawn (committed or not): how far behind a follower is."""
    value: int = await conn.fetchval(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM position_change_seq"
    )
    return value


async def pruned_through(conn: Conn) -> int:
    """Tombstones numbered up to this were pruned: a follower behind it must rebuild."""
    value: int = await conn.fetchval(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM position_tombstones_pruned"
    )
    return value


async def snapshot(conn: Conn) -> tuple[int, PositionArrays]:
    """Every alertable position as columns, and the change number they are complete up to.

    Read in one repeatable-read snapshot: a follower starting from the number misses no
    change and re-applies none that the columns already hold.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        upto: int = await conn.fetchval(
            "SELECT greatest((SELECT max(change_seq) FROM volunteer_positions),"
            " (SELECT max(change_seq) FROM position_tombstones), 0)"
        )
        data = await copy_positions(conn)
    return upto, parse_copy(data)


async def prune_tombstones(conn: Conn, keep: timedelta) -> int:
    """Drop tombstones older than ``keep``, raising the horizon past them first.

    One statement: ``setval`` takes effect at once and the deletion only at commit, so no
    follower can find a tombstone gone while the horizon still lets it trust the feed.
    Aged by the database's clock, which stamped them (a drill clock may run ahead).
    """
    row = await conn.fetchrow(
        """
        WITH gone AS (
            DELETE FROM position_tombstones WHERE deleted_at < now() - $1::interval
            RETURNING change_seq
        ), top AS (
            SELECT max(change_seq) AS seq, count(*) AS n FROM gone
        )
        SELECT n, CASE WHEN n > 0 THEN setval('position_tombstones_pruned',
                   greatest(seq, (SELECT last_value FROM position_tombstones_pruned)))
               END AS horizon
        FROM top
        """,
        keep,
    )
    assert row is not None
    pruned: int = row["n"]
    return pruned


async def try_purge_lock(conn: Conn) -> bool:
    """Take the purge lock for the current transaction, unless another process holds it."""
    taken: bool = await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _PURGE_LOCK)
    return taken
