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
        self.position_follow_lag = Gauge(
            "dispatch_position_follow_lag_changes",
            "Position changes written (by any process) that this process has not applied yet",
            registry=self.registry,
        )
        self.position_follow_age = Gauge(
            "dispatch_position_follow_age_seconds",
            "Seconds since this process last caught up with every process's position writes",
            registry=self.registry,
        )
        self.position_rebuilds = Counter(
            "dispatch_position_rebuilds_total",
            "Geo index rebuilds from the table after falling too far behind the change feed",
            registry=self.registry,
        )
        self.outbox_oldest_due = Gauge(
            "dispatch_outbox_oldest_due_seconds",
            "How long the oldest due, unsent outbox step has waited (read at each scrape)",
            registry=self.registry,
        )
        self.database_unavailable = Counter(
            "dispatch_database_unavailable_total",
            "Requests answered 503 because the database could not serve (down, failing over,"
            " overloaded)",
            registry=self.registry,
        )

    def statement_counter(self, pool: str) -> Callable[[LoggedQuery], None]:
        """A query logger for asyncpg that counts each statement of ``pool``'s connections."""
        ok = self.db_statements.labels(pool, "ok")
        failed = self.db_statements.labels(pool, "error")

        def count(query: LoggedQuery) -> None:
            (ok if query.exception is None else failed).inc()

        return count
