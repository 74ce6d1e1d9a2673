"""The feed poller: pulls CADs that only publish a JSON list of their active incidents.

Each poll is a full snapshot: listed incidents go through the normal intake
(idempotent, so a restart or a second process re-reading the same list ingests
nothing twice), and active incidents no longer listed are closed. The schedule
lives in ``cad_feeds.next_poll_at``; feeds are claimed with SKIP LOCKED, so
several processes share the work. Every poll's outcome is written to the feed's
row (the health the API shows) and counted in the metrics. Fetch failures back
off exponentially, capped; a poll whose every item was refused is a failure too,
but is retried at the normal interval, since the next snapshot may well be good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import aiohttp
import asyncpg
import structlog

from cad_adapters.errors import CadParseError
from cad_adapters.feed import FeedMapping, FeedSnapshot, parse_feed
from dispatch.domain.clock import Clock
from dispatch.domain.models import AgencyPolicy
from dispatch.domain.time_zones import UnknownTimeZone, time_zone
from dispatch.metrics import Metrics
from dispatch.service.feed_fetch import MAX_FEED_BYTES, FeedFetchError, Validators, fetch_feed
from dispatch.service.feed_intake import (
    SnapshotResult,
    ingest_snapshot,
    keep_refused,
    refused_summary,
)
from dispatch.service.positions import PositionCache
from dispatch.store import agencies as agency_store
from dispatch.store import feeds as feed_store
from dispatch.store.feeds import Feed, PollRecord
from dispatch.workers.loop import run_rounds

log = structlog.get_logger(__name__)

MAX_BACKOFF_S: Final = 600.0
OK_RESULTS: Final = frozenset({"ok", "not_modified"})


def backoff_s(interval_s: float, failures: int) -> float:
    """Seconds until the next try after ``failures`` consecutive failures."""
    return float(min(MAX_BACKOFF_S, interval_s * 2.0 ** min(failures, 16)))


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: str
    error: str | None = None
    snapshot: FeedSnapshot | None = None
    validators: Validators | None = None
    ingested: SnapshotResult | None = None


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
        metrics: Metrics | None = None,
        max_bytes: int = MAX_FEED_BYTES,
        keep_days: float = 30.0,
    ) -> None:
        self._pool = pool
        self._positions = positions
        self._http = http
        self._clock = clock
        self._on_alerts = on_alerts
        self._tick_s = tick_s
        self._metrics = metrics or Metrics()
        self._max_bytes = max_bytes
        self._keep_days = keep_days

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

    async def poll(self, feed: Feed) -> None:
        started = self._clock.now()
        async with self._pool.acquire() as conn:
            agency = await agency_store.policy(conn, feed.agency_id)
        if agency is None:
            return
        outcome = await self._poll(feed, agency, started)
        await self._record(feed, started, outcome)

    async def _poll(self, feed: Feed, agency: AgencyPolicy, started: datetime) -> _Outcome:
        try:
            tz = time_zone(agency.time_zone)
        except UnknownTimeZone as exc:
            return _Outcome("bad_time_zone", f"agency time_zone: {exc.detail}")
        try:
            mapping = FeedMapping.from_config(feed.mapping, strict=False)
        except CadParseError as exc:
            return _Outcome("bad_mapping", f"mapping {exc.pointer}: {exc.detail}")
        try:
            fetched = await fetch_feed(
                self._http,
                feed.url,
                headers=feed.headers,
                timeout_s=feed.timeout_s,
                max_bytes=self._max_bytes,
                validators=Validators(feed.etag, feed.last_modified),
            )
        except FeedFetchError as exc:
            return _Outcome("fetch_failed", str(exc))
        if fetched.body is None:
            return _Outcome("not_modified")
        try:
            snapshot = parse_feed(
                fetched.body, mapping, source=feed.source, default_tz=tz, now=started
            )
        except CadParseError as exc:
            await keep_refused(
                self._pool, agency, feed.name, snapshot=None, document=fetched.body,
                error=(exc.pointer, exc.detail), now=started, keep_days=self._keep_days,
            )  # fmt: skip
            return _Outcome("refused_document", f"{exc.pointer or '/'}: {exc.detail}")
        ingested = await ingest_snapshot(
            self._pool,
            self._positions,
            agency,
            feed.source,
            snapshot,
            self._clock,
            seen_since=feed.last_ok_at,
        )
        if ingested.alerts_queued:
            self._on_alerts()
        await keep_refused(
            self._pool, agency, feed.name, snapshot=snapshot, document=None, error=None,
            now=started, keep_days=self._keep_days,
        )  # fmt: skip
        if snapshot.refused and not snapshot.items:
            first = snapshot.refused[0].error
            error = (
                f"all {len(snapshot.refused)} items refused;"
                f" the first: {first.pointer or '/'}: {first.detail}"
            )
            return _Outcome("all_items_refused", error, snapshot, None, ingested)
        return _Outcome("ok", None, snapshot, fetched.validators, ingested)

    async def _record(self, feed: Feed, started: datetime, outcome: _Outcome) -> None:
        ok = outcome.result in OK_RESULTS
        retry = outcome.result in ("fetch_failed", "refused_document", "bad_mapping")
        delay = backoff_s(feed.interval_s, feed.failures + 1) if retry else feed.interval_s
        snapshot = outcome.snapshot
        validators = outcome.validators or Validators()
        record = PollRecord(
            at=started,
            result=outcome.result,
            ok=ok,
            next_at=started + timedelta(seconds=delay),
            error=outcome.error,
            items_seen=snapshot.item_count if snapshot else None,
            items_refused=len(snapshot.refused) if snapshot else None,
            refused=refused_summary(snapshot) if snapshot else [],
            etag=validators.etag,
            last_modified=validators.last_modified,
            same_document=outcome.result == "not_modified",
        )
        async with self._pool.acquire() as conn:
            await feed_store.record_poll(conn, feed.feed_id, record)
        metrics = self._metrics
        metrics.feed_polls.labels(outcome.result).inc()
        ingested = outcome.ingested
        if snapshot is not None and snapshot.refused:
            metrics.feed_items_refused.inc(len(snapshot.refused))
        if ingested is not None:
            for status, count in ingested.statuses.items():
                if status != "conflict":
                    metrics.incidents.labels(status).inc(count)
            metrics.alerts_queued.inc(ingested.alerts_queued)
        log_event = log.info if ok else log.warning
        log_event(
            "feed_polled",
            feed=feed.name,
            result=outcome.result,
            error=outcome.error,
            items=snapshot.item_count if snapshot else None,
            refused=len(snapshot.refused) if snapshot else None,
            closed=ingested.closed if ingested else None,
            closures_blocked=ingested.closures_blocked if ingested else None,
            alerts_queued=ingested.alerts_queued if ingested else None,
            retry_s=delay,
        )
