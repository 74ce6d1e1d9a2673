"""The deadline ticker: incidents whose ``next_check_at`` has come are moved forward.

Waves, time-outs and top-ups are deadlines stored on the incident row; this
worker claims due incidents one at a time with SKIP LOCKED (so several
processes share them) and runs the same ``progress.advance`` that intake and
answers run. A restart resumes exactly where the table says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

import asyncpg

from dispatch.domain.clock import Clock
from dispatch.service import progress
from dispatch.service.events import EventBuffer
from dispatch.service.positions import PositionCache
from dispatch.store import agencies as agency_store
from dispatch.store import incidents as incident_store
from dispatch.workers.loop import run_rounds

# Incidents handled per wake-up before yielding to the loop's other work.
_BATCH: Final = 50


class DeadlineTicker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        positions: PositionCache,
        clock: Clock,
        on_alerts: Callable[[], None],
        *,
        tick_s: float,
    ) -> None:
        self._pool = pool
        self._positions = positions
        self._clock = clock
        self._on_alerts = on_alerts
        self._tick_s = tick_s

    async def run(self, stop: asyncio.Event) -> None:
        async def round_() -> bool:
            return await self.run_once() >= _BATCH

        await run_rounds(stop, round_, tick_s=self._tick_s, name="deadline_ticker")

    async def run_once(self) -> int:
        handled = 0
        while handled < _BATCH:
            now = self._clock.now()
            async with self._pool.acquire() as conn, conn.transaction():
                due = await incident_store.claim_due(conn, now)
                if due is None:
                    break
                incident_id, agency_id = due
                agency = await agency_store.policy(conn, agency_id)
                if agency is None:
                    break
                events = EventBuffer(agency_id, incident_id, now)
                queued = await progress.advance(conn, self._positions, agency, incident_id, events)
                await events.flush(conn)
            handled += 1
            if queued:
                self._on_alerts()
        return handled
