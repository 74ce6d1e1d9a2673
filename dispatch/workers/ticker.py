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
import structlog

from dispatch.domain.clock import Clock
from dispatch.service import progress
from dispatch.service.events import EventBuffer
from dispatch.service.positions import PositionCache
from dispatch.store import agencies as agency_store
from dispatch.store import incidents as incident_store

log = structlog.get_logger(__name__)

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
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except (OSError, asyncpg.PostgresError, TimeoutError):
                log.exception("ticker_cycle_failed")
                handled = 0
            if handled >= _BATCH:
                continue
            try:
                async with asyncio.timeout(self._tick_s):
                    await stop.wait()
            except TimeoutError:
                pass

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
