"""Prometheus metrics, one registry per application (so tests can run several apps)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from asyncpg.connection import LoggedQuery
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        counter = partial(Counter, registry=self.registry)
        gauge = partial(Gauge, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        self.incidents = counter(
            "dispatch_incidents_total",
            "Incident snapshots accepted from CAD systems, by intake status",
            ["status"],
        )
        self.alerts_queued = counter("dispatch_alerts_queued_total", "Alerts written to the outbox")
        self.notifications = counter(
            "dispatch_notifications_total",
            "Delivery attempts, by channel and outcome",
            ["channel", "outcome"],
        )
        self.feed_polls = counter(
            "dispatch_feed_polls_total",
            "Polls of CAD feeds, by result (ok, not_modified, fetch_failed, refused_document,"
            " all_items_refused, bad_mapping, bad_time_zone)",
            ["result"],
        )
        self.feed_items_refused = counter(
            "dispatch_feed_items_refused_total",
            "Feed items the mapping refused (kept in rejected_documents)",
        )
        self.http_requests = histogram(
            "dispatch_http_request_seconds",
            "HTTP request latency by route and status",
            ["route", "status"],
        )
        self.db_statements = counter(
            "dispatch_db_statements_total",
            "Statements sent to PostgreSQL (one round trip each), by pool and outcome",
            ["pool", "outcome"],
        )
        self.indexed_volunteers = gauge(
            "dispatch_indexed_volunteers",
            "Volunteers with a position in the in-memory index",
        )
        self.position_follow_lag = gauge(
            "dispatch_position_follow_lag_changes",
            "Position changes written (by any process) that this process has not applied yet",
        )
        self.position_follow_age = gauge(
            "dispatch_position_follow_age_seconds",
            "Seconds since this process last caught up with every process's position writes",
        )
        self.position_rebuilds = counter(
            "dispatch_position_rebuilds_total",
            "Geo index rebuilds from the table after falling too far behind the change feed",
        )
        self.outbox_oldest_due = gauge(
            "dispatch_outbox_oldest_due_seconds",
            "How long the oldest due, unsent outbox step has waited (read at each scrape)",
        )
        self.database_unavailable = counter(
            "dispatch_database_unavailable_total",
            "Requests answered 503 because the database could not serve (down, failing over,"
            " overloaded)",
        )

    def statement_counter(self, pool: str) -> Callable[[LoggedQuery], None]:
        """A query logger for asyncpg that counts each statement of ``pool``'s connections."""
        ok = self.db_statements.labels(pool, "ok")
        failed = self.db_statements.labels(pool, "error")

        def count(query: LoggedQuery) -> None:
            (ok if query.exception is None else failed).inc()

        return count
