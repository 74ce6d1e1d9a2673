"""The feed poller: pulls CADs that only publish a JSON list of their active incidents.

Each poll is a full snapshot: listed incidents go through the normal intake
(idempotent, so a restart or a second process re-reading the same list ingests
nothing twice), and active incidents no longer listed are closed. The schedule
lives in ``cad_feeds.next_poll_at``; feeds are claimed with SKIP LOCKED, so
several processes share the work. Failures back off exponentially, capped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
import asyncpg
import structlog

from cad_adapters.errors import CadParseError
from cad_adapters.feed import FeedMapping, parse_feed
from dispatch.domain.clock import Clock
from dispatch.domain.intake import VersionConflict
from dispatch.service.ingest import close_vanished, ingest_incident
from dispatch.service.positions import PositionCache
from dispatch.store import agencies as agency_store
from dispatch.store import feeds as feed_store
from dispatch.store.feeds import Feed
from dispatch.workers.loop import run_rounds

log = structlog.get_logger(__name__)

MAX_FEED_BYTES: Final = 8 * 1024 * 1024
MAX_BACKOFF_S: Final = 600.0


class FeedError(Exception):
    pass


def backoff_s(interval_s: float, failures: int) -> float:
    """Seconds until the next try after ``failures`` consecutive failures."""
    return float(min(MAX_BACKOFF_S, interval_s * 2.0 ** min(failures, 16)))


class FeedPoller:
    def __init__(
        self,
        pool: asyncpg.Pool,
        positions: PositionCache,
        http: aiohttp.ClientSession,
        clock: Clock,
        on_alerts: Callable[[], None],
        *,
        tick_s: float,
    ) -> None:
        self._pool = pool
        self._positions = positions
        self._http = http
        self._clock = clock
        self._on_alerts = on_alerts
        self._tick_s = tick_s

    async def run(self, stop: asyncio.Event) -> None:
        async def round_() -> bool:
            await self.run_once()
            return False

        await run_rounds(stop, round_, tick_s=self._tick_s, name="feed_poller")

    async def run_once(self) -> int:
        now = self._clock.now()
        async with self._pool.acquire() as conn, conn.transaction():
            # Long enough to cover a slow poll; success or failure sets the real next time.
            due = await feed_store.claim_due(conn, now, timedelta(seconds=90))
        await asyncio.gather(*(self.poll(feed) for feed in due))
        return len(due)

    async def _fetch(self, feed: Feed) -> bytes:
        timeout = aiohttp.ClientTimeout(total=feed.timeout_s, connect=min(feed.timeout_s, 5))
        async with self._http.get(
            feed.url, headers=dict(feed.headers), timeout=timeout, allow_redirects=False
        ) as resp:
            if resp.status != 200:
                raise FeedError(f"HTTP {resp.status}")
            body = await resp.content.read(MAX_FEED_BYTES + 1)
        if len(body) > MAX_FEED_BYTES:
            raise FeedError(f"feed larger than {MAX_FEED_BYTES} bytes")
        return body

    async def poll(self, feed: Feed) -> None:
        started = self._clock.now()
        async with self._pool.acquire() as conn:
            agency = await agency_store.policy(conn, feed.agency_id)
        if agency is None:
            return
        try:
            tz = ZoneInfo(agency.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            tz = ZoneInfo("UTC")
        try:
            body = await self._fetch(feed)
            snapshot = parse_feed(
                body, FeedMapping.from_config(feed.mapping), source=feed.source, default_tz=tz
            )
        except (aiohttp.ClientError, TimeoutError, FeedError, CadParseError) as exc:
            delay = backoff_s(feed.interval_s, feed.failures + 1)
            async with self._pool.acquire() as conn:
                await feed_store.record_failure(
                    conn,
                    feed.feed_id,
                    f"{type(exc).__name__}: {exc}",
                    started + timedelta(seconds=delay),
                )
            log.warning("feed_poll_failed", feed=feed.name, error=type(exc).__name__, retry_s=delay)
            return
        queued = 0
        for report in snapshot.reports:
            try:
                result = await ingest_incident(
                    self._pool, self._positions, agency, report, now=self._clock.now()
                )
            except VersionConflict:
                log.warning(
                    "feed_item_conflict", feed=feed.name, incident=report.source_incident_id
                )
                continue
            queued += result.alerts_queued
        closed = []
        if not snapshot.rejected:
            # A refused item may be an incident we hold: closing it would stand volunteers
            # down on a typo. Closures wait for a clean snapshot.
            closed = await close_vanished(
                self._pool,
                self._positions,
                agency,
                feed.source,
                {r.source_incident_id for r in snapshot.reports},
                now=self._clock.now(),
            )
        if queued:
            self._on_alerts()
        async with self._pool.acquire() as conn:
            await feed_store.record_success(
                conn, feed.feed_id, started, started + timedelta(seconds=feed.interval_s)
            )
        log.info(
            "feed_polled",
            feed=feed.name,
            incidents=len(snapshot.reports),
            rejected=len(snapshot.rejected),
            closed=len(closed),
            alerts_queued=queued,
        )
