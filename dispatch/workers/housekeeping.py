"""Housekeeping: what must not be kept is deleted continuously, not only at start-up.

Every round: positions older than their agency's freshness limit (database and the
in-memory index) and positions of volunteers off duty; sign-in codes past their rate
windows; sessions long revoked or lapsed; notices long done; old position tombstones.
And the response log's monthly partitions: the next months made ahead, months wholly
older than the retention dropped (``DISPATCH_RESPONSE_LOG_RETENTION_DAYS``).
Every process runs it; the database part runs in one process at a time (an advisory
lock taken without waiting), and its deletes are idempotent anyway.

Beside those rounds, on its own shorter tick: the activations report of every settled
calendar month and year (agency time) is kept computed, and computed again soon after a
late change made the kept one invalid, so that a supervisor asking for one is answered
from the kept figures rather than waiting for a computation over the whole range.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import asyncpg
import structlog

from dispatch.db.types import Conn
from dispatch.domain import log_months
from dispatch.domain.clock import Clock
from dispatch.domain.phone_codes import CODE_KEEP
from dispatch.domain.report_ranges import standard_ranges
from dispatch.service.agency_zone import zone_or_skip
from dispatch.service.positions import PositionCache
from dispatch.store import accounts as account_store
from dispatch.store import console_sessions, review_activations
from dispatch.store import notices as notice_store
from dispatch.store import position_changes as change_store
from dispatch.store import response_log as log_store
from dispatch.store import review as review_store
from dispatch.store import volunteers as volunteer_store
from dispatch.workers.loop import run_rounds

log = structlog.get_logger(__name__)

SESSION_KEEP: Final = timedelta(days=30)
NOTICE_KEEP: Final = timedelta(days=30)
TOMBSTONE_KEEP: Final = timedelta(hours=1)
"""A process that has not read the position changes for this long rebuilds its index."""
REPORTS_PER_ROUND: Final = 4
"""Reports computed per warm-up round; more waiting means the next round starts at once."""


class Housekeeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        positions: PositionCache,
        clock: Clock,
        *,
        tick_s: float,
        log_retention_days: int = 0,
        report_warmup_s: float = 0.0,
    ) -> None:
        self._pool = pool
        self._positions = positions
        self._clock = clock
        self._tick_s = tick_s
        self._log_retention_days = log_retention_days
        self._report_warmup_s = report_warmup_s
        self._zones_warned: set[tuple[UUID, str]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        async def round_() -> bool:
            await self.run_once()
            return False

        async def warm_round() -> bool:
            return await warm_reports(self._pool, warned=self._zones_warned) >= REPORTS_PER_ROUND

        rounds = [run_rounds(stop, round_, tick_s=self._tick_s, name="housekeeping")]
        if self._report_warmup_s > 0:
            rounds.append(
                run_rounds(stop, warm_round, tick_s=self._report_warmup_s, name="report_warmup")
            )
        await asyncio.gather(*rounds)

    async def run_once(self) -> dict[str, int]:
        now = self._clock.now()
        done: dict[str, int] = {}
        async with self._pool.acquire() as conn:
            limits = await volunteer_store.freshness_limits(conn)
            # One process at a time: the others would only wait on the same rows' locks.
            async with conn.transaction():
                if await change_store.try_purge_lock(conn):
                    done = {
                        "positions": await volunteer_store.purge_stale_positions(conn, now),
                        "off_duty_positions": await volunteer_store.purge_off_duty_positions(conn),
                        "codes": await account_store.purge_codes(conn, now - CODE_KEEP),
                        "sessions": await account_store.purge_sessions(conn, now - SESSION_KEEP),
                        "console_sessions": await console_sessions.purge(conn, now - SESSION_KEEP),
                        "notices": await notice_store.purge_done(conn, now - NOTICE_KEEP),
                        "position_tombstones": await change_store.prune_tombstones(
                            conn, TOMBSTONE_KEEP
                        ),
                    }
        # Every process forgets stale positions in its own memory (the deletes above reach
        # the others through the change feed too, but only once a follower reads them).
        done["indexed_positions"] = self._positions.purge_stale(limits, now)
        async with self._pool.acquire() as conn:
            done["coverage_presence"] = await review_store.purge_presence(
                conn, now - review_store.COVERAGE_WINDOW
            )
        done.update(await keep_log_months(self._pool, now, self._log_retention_days))
        if any(done.values()):
            log.info("housekeeping", **done)
        return done


async def warm_reports(
    pool: asyncpg.Pool,
    *,
    limit: int = REPORTS_PER_ROUND,
    warned: set[tuple[UUID, str]] | None = None,
) -> int:
    """Compute up to ``limit`` standard activations reports that have no valid kept copy,
    newest ranges first; one process at a time. Returns how many were computed. An agency
    whose zone this server does not know is skipped, with a warning once per ``warned``."""
    computed = 0
    async with pool.acquire() as conn:
        if not await review_activations.try_warm_lock(conn):
            return 0
        try:
            now, agencies = await review_activations.histories(conn)
            for agency in agencies:
                # Its reports are kept in its zone or not at all; the next round retries.
                tz = zone_or_skip(
                    agency.agency_id,
                    agency.time_zone,
                    skipped="report_warmup_skipped",
                    warned=warned,
                )
                if tz is None:
                    continue
                ranges = standard_ranges(tz, now, agency.first_received)
                if not ranges:
                    continue
                computed += await review_activations.warm(
                    conn, agency.agency_id, tz.key, ranges, limit=limit - computed
                )
                if computed >= limit:
                    break
        finally:
            await review_activations.release_warm_lock(conn)
    if computed:
        log.info("reports_warmed", reports=computed)
    return computed


async def keep_log_months(pool: asyncpg.Pool, now: datetime, retention_days: int) -> dict[str, int]:
    """Make the response log's coming months and drop the expired ones; one process at a time.

    Each change is its own transaction, so a lock not granted in time (a long report read
    holding the log) skips that change until the next round and costs nothing else.
    """
    done = {"log_months_created": 0, "log_rows_moved": 0, "log_months_dropped": 0}
    async with pool.acquire() as conn:
        if not await log_store.try_partition_lock(conn):
            return done
        try:
            await _add_months(conn, now, done)
            cutoff = log_months.retention_cutoff(now, retention_days)
            if cutoff is not None:
                await _drop_months(conn, cutoff, done)
        finally:
            await log_store.release_partition_lock(conn)
    return done


async def _add_months(conn: Conn, now: datetime, done: dict[str, int]) -> None:
    existing = await log_store.partitions(conn)
    default = next((p.name for p in existing if p.is_default), None)
    ranges = [(p.lower, p.upper) for p in existing if not p.is_default]
    for month in log_months.months_needed(now):
        if log_months.covered(month, ranges):
            continue
        try:
            async with conn.transaction():
                moved = await log_store.add_month(conn, month.name, month.start, month.end, default)
        except (asyncpg.LockNotAvailableError, asyncpg.DuplicateTableError) as exc:
            log.warning("log_month_not_created", month=month.name, reason=type(exc).__name__)
            return
        done["log_months_created"] += 1
        done["log_rows_moved"] += moved


async def _drop_months(conn: Conn, cutoff: datetime, done: dict[str, int]) -> None:
    for part in await log_store.partitions(conn):
        if part.is_default or part.upper is None or part.upper > cutoff:
            continue
        try:
            async with conn.transaction():
                await log_store.drop_partition(conn, part.name)
        except asyncpg.LockNotAvailableError:
            log.warning("log_month_not_dropped", partition=part.name, reason="lock_timeout")
            return
        done["log_months_dropped"] += 1
    default = next((p.name for p in await log_store.partitions(conn) if p.is_default), None)
    if default is not None:
        done["log_default_rows_purged"] = await log_store.purge_default(conn, default, cutoff)
