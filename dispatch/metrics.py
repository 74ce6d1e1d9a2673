"""Prometheus metrics, one registry per application (so tests can run several apps)."""

from __future__ import annotations

from collections.abc import Callable

from asyncpg.connection import LoggedQuery
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.incidents = Counter(
            "dispatch_incidents_total",
            "Incident snapshots accepted from CAD systems, by intake status",
            ["status"],
            registry=self.registry,
        )
        self.alerts_queued = Counter(
            "dispatch_alerts_queued_total", "Alerts written to the outbox", registry=self.registry
        )
        self.notifications = Counter(
            "dispatch_notifications_total",
            "Delivery attempts, by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.feed_polls = Counter(
            "dispatch_feed_polls_total",
            "Polls of CAD feeds, by result (ok, not_modified, fetch_failed, refused_document,"
            " all_items_refused, bad_mapping, bad_time_zone)",
            ["result"],
            registry=self.registry,
        )
        self.feed_items_refused = Counter(
            "dispatch_feed_items_refused_total",
            "Feed items the mapping refused (kept in rejected_documents)",
            registry=self.registry,
        )
        self.http_requests = Histogram(
            "dispatch_http_request_seconds",
            "HTTP request latency by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.db_statements = Counter(
            "dispatch_db_statements_total",
            "Statements sent to PostgreSQL (one round trip each), by pool and outcome",
            ["pool", "outcome"],
            registry=self.registry,
        )
        self.indexed_volunteers = Gauge(
            "dispatch_indexed_volunteers",
            "Volunteers with a position in the in-memory index",
            registry=self.registry,
        )

    def statement_counter(self, pool: str) -> Callable[[LoggedQuery], None]:
        """A query logger for asyncpg that counts each statement of ``pool``'s connections."""
        ok = self.db_statements.labels(pool, "ok")
        failed = self.db_statements.labels(pool, "error")

        def count(query: LoggedQuery) -> None:
            (ok if query.exception is None else failed).inc()

        return count
