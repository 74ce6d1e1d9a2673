"""Housekeeping: what must not be kept is deleted continuously, not only at start-up.

Every round: positions older than their agency's freshness limit (database and the
in-memory index) and positions of volunteers off duty; sign-in codes past their rate
windows; sessions long revoked or lapsed; notices long done; old position tombstones.
Every process runs it; the database part runs in one process at a time (an advisory
lock taken without waiting), and its deletes are idempotent anyway.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Final

import asyncpg
import structlog

from dispatch.domain.clock import Clock
from dispatch.domain.phone_codes import CODE_KEEP
from dispatch.service.positions import PositionCache
from dispatch.store import accounts as account_store
from dispatch.store import console_sessions
from dispatch.store import notices as notice_store
from dispatch.store import position_changes as change_store
from dispatch.store import review as review_store
from dispatch.store import volunteers as volunteer_store
from dispatch.workers.loop import run_rounds

log = structlog.get_logger(__name__)

SESSION_KEEP: Final = timedelta(days=30)
NOTICE_KEEP: Final = timedelta(days=30)
TOMBSTONE_KEEP: Final = timedelta(hours=1)
"""A process that has not read the position changes for this long rebuilds its index."""


class Housekeeper:
    def __init__(
        self, pool: asyncpg.Pool, positions: PositionCache, clock: Clock, *, tick_s: float
    ) -> None:
        self._pool = pool
        self._positions = positions
        self._clock = clock
        self._tick_s = tick_s

    async def run(self, stop: asyncio.Event) -> None:
        async def round_() -> bool:
            await self.run_once()
            return False

        await run_rounds(stop, round_, tick_s=self._tick_s, name="housekeeping")

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
        if any(done.values()):
            log.info("housekeeping", **done)
        return done
