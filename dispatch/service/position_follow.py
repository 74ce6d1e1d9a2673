"""Every process's geo index follows the position writes of all processes.

A process indexes the fixes reported to it at once; fixes reported to another process
reach it through the change feed (:mod:`dispatch.store.position_changes`): woken by a
notification after each flush commits, and polling every ``poll_s`` anyway, it reads
the changes numbered above the last it applied, in batches, and applies them. One that
has fallen too far behind, or behind the pruned tombstones, rebuilds from the table.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog

from dispatch.metrics import Metrics
from dispatch.service.positions import PositionCache
from dispatch.store import position_changes as change_store
from dispatch.store.position_changes import PositionChange
from dispatch.store.volunteers import PositionRow
from dispatch.workers.loop import run_rounds

log = structlog.get_logger(__name__)

# Changes applied between two hand-backs of the event loop.
_APPLY_SLICE = 500


def apply_change(cache: PositionCache, change: PositionChange) -> None:
    """Apply one change; a fix older than the one indexed here (not yet written) is skipped."""
    if change.position is None:
        cache.remove(change.volunteer_id)
        return
    lat, lon, at = change.position
    indexed = cache.reported_at(change.volunteer_id)
    if indexed is not None and indexed > at:
        return
    cache.upsert(PositionRow(change.volunteer_id, change.agency_id, lat, lon, None, at))


async def load(pool: asyncpg.Pool) -> tuple[int, PositionCache]:
    """A cache of every alertable position, and the change number it is complete up to."""
    async with pool.acquire() as conn:
        upto, columns = await change_store.snapshot(conn)
    cache = PositionCache()
    cache.load_arrays(columns)
    return upto, cache


class PositionFollower:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: PositionCache,
        *,
        after: int,
        poll_s: float = 0.2,
        batch: int = 5_000,
        max_behind: int = 500_000,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._poll_s = poll_s
        self._batch = batch
        self._max_behind = max_behind
        self._metrics = metrics
        self.applied_through = after
        self.caught_up_at = time.monotonic()
        self.rebuilds = 0
        self.wakeup = asyncio.Event()

    def notified(self, _payload: str) -> None:
        self.wakeup.set()

    async def _rebuild(self) -> None:
        started = time.perf_counter()
        upto, fresh = await load(self._pool)
        self._cache.replace_with(fresh)
        self.applied_through = upto
        self.rebuilds += 1
        if self._metrics is not None:
            self._metrics.position_rebuilds.inc()
        log.warning(
            "position_index_rebuilt",
            reason="behind_change_feed",
            volunteers=len(self._cache),
            seconds=round(time.perf_counter() - started, 3),
        )

    async def catch_up(self) -> int:
        """Apply every change committed so far; returns how many were applied."""
        async with self._pool.acquire() as conn:
            latest = await change_store.latest_number(conn)
        if self._metrics is not None:
            self._metrics.position_follow_lag.set(max(0, latest - self.applied_through))
        if latest - self.applied_through > self._max_behind:
            await self._rebuild()
            return 0
        applied = 0
        while True:
            async with self._pool.acquire() as conn:
                changes = await change_store.changes_since(conn, self.applied_through, self._batch)
                # Read after the changes: tombstones are pruned only once the horizon is
                # raised, so a deletion missing from this batch shows up here.
                pruned = await change_store.pruned_through(conn)
            if pruned > self.applied_through:
                await self._rebuild()
                return applied
            for n, change in enumerate(changes, start=1):
                apply_change(self._cache, change)
                if n % _APPLY_SLICE == 0:
                    await asyncio.sleep(0)
            if changes:
                self.applied_through = changes[-1].seq
                applied += len(changes)
            if len(changes) < self._batch:
                break
        self.caught_up_at = time.monotonic()
        if self._metrics is not None:
            self._metrics.position_follow_lag.set(0)
        return applied

    async def run(self, stop: asyncio.Event) -> None:
        if self._metrics is not None:
            self._metrics.position_follow_age.set_function(
                lambda: time.monotonic() - self.caught_up_at
            )

        async def round_() -> bool:
            await self.catch_up()
            return False

        await run_rounds(
            stop, round_, tick_s=self._poll_s, name="position_follow", wakeup=self.wakeup
        )
