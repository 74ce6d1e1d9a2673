"""Incident intake: one transaction from CAD snapshot to queued alerts.

In that transaction: upsert the incident (idempotent by agency + source +
source incident id, ordered by the source's version), decide whether it may
alert, find the nearest eligible volunteers, write alert and outbox rows, and
append response-log events. Nothing is sent here; the notifier picks the outbox
rows up after commit (ARCHITECTURE invariants 1–3).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from cad_adapters.models import IncidentReport
from dispatch.domain.intake import IntakeStatus, classify, not_alertable_reason
from dispatch.domain.models import AgencyPolicy
from dispatch.service.positions import PositionCache
from dispatch.store import alerts as alert_store
from dispatch.store import incidents as incident_store
from dispatch.store import response_log
from dispatch.store import volunteers as volunteer_store
from dispatch.store.alerts import NewAlert
from dispatch.store.response_log import LogEvent

# Re-query at most this many times when volunteers turn out ineligible in the database
# (e.g. made unavailable by another process since this one indexed them).
_MAX_MATCH_ROUNDS = 3
DEFAULT_CHANNEL = "log"


@dataclass(frozen=True, slots=True)
class IngestResult:
    incident_id: UUID
    status: IntakeStatus
    alerts_queued: int


class _Events:
    """Response-log rows for one incident, all stamped with the transaction's ``now``."""

    def __init__(self, agency_id: UUID, incident_id: UUID, now: datetime) -> None:
        self.agency_id = agency_id
        self.incident_id = incident_id
        self.now = now
        self.rows: list[LogEvent] = []

    def add(
        self,
        name: str,
        *,
        alert_id: UUID | None = None,
        volunteer_id: int | None = None,
        **details: Any,
    ) -> None:
        self.rows.append(
            LogEvent(
                self.agency_id, self.incident_id, name, self.now, alert_id, volunteer_id, details
            )
        )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def report_document(report: IncidentReport) -> dict[str, Any]:
    """The normalized report as JSON-ready data (stored, and hashed to detect replays)."""
    document: dict[str, Any] = _plain(dataclasses.asdict(report))
    return document


def content_hash(document: dict[str, Any]) -> bytes:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


async def ingest_incident(
    pool: asyncpg.Pool,
    positions: PositionCache,
    agency: AgencyPolicy,
    report: IncidentReport,
    *,
    now: datetime,
) -> IngestResult:
    document = report_document(report)
    digest = content_hash(document)
    async with pool.acquire() as conn, conn.transaction():
        existing = await incident_store.lock_existing(
            conn, agency.agency_id, report.source, report.source_incident_id
        )
        incident_id = existing[0] if existing else uuid4()
        if existing is None:
            inserted = await incident_store.insert(
                conn,
                incident_id=incident_id,
                agency_id=agency.agency_id,
                report=report,
                document=document,
                content_hash=digest,
                now=now,
            )
            if not inserted:
                # Lost a race with an identical key: the winner has committed; lock its row.
                existing = await incident_store.lock_existing(
                    conn, agency.agency_id, report.source, report.source_incident_id
                )
                assert existing is not None
                incident_id = existing[0]
        stored = existing[1] if existing else None
        status = classify(stored, report, digest)
        if status in (IntakeStatus.UNCHANGED, IntakeStatus.STALE):
            return IngestResult(incident_id, status, 0)

        events = _Events(agency.agency_id, incident_id, now)
        if status is IntakeStatus.CREATED:
            events.add(
                "incident_received",
                source=report.source,
                call_type=report.call_type.code,
                status=report.status.value,
                is_test=report.is_test,
            )
        else:
            await incident_store.update(
                conn,
                incident_id=incident_id,
                report=report,
                document=document,
                content_hash=digest,
                now=now,
            )
            events.add("incident_updated", status=report.status.value)

        queued = 0
        reason = not_alertable_reason(report)
        if reason is not None:
            events.add("not_alertable", reason=reason.value)
        elif await alert_store.count_for_incident(conn, incident_id) == 0:
            queued = await _match_and_queue(conn, positions, agency, report, incident_id, events)
        await response_log.append(conn, events.rows)
    return IngestResult(incident_id, status, queued)


async def _match_and_queue(
    conn: Any,
    positions: PositionCache,
    agency: AgencyPolicy,
    report: IncidentReport,
    incident_id: UUID,
    events: _Events,
) -> int:
    now = events.now
    location = report.location
    assert location is not None
    excluded = await alert_store.alerted_volunteers(conn, incident_id)
    ineligible: set[int] = set()
    chosen: list[NewAlert] = []
    for _ in range(_MAX_MATCH_ROUNDS):
        hits = positions.nearest(
            agency.agency_id,
            location.lat,
            location.lon,
            radius_m=agency.radius_m,
            limit=agency.limit,
            max_age_s=agency.position_max_age_s,
            now=now,
            exclude=excluded | ineligible,
        )
        eligible = await volunteer_store.still_eligible(
            conn, agency.agency_id, [h.volunteer_id for h in hits]
        )
        ineligible.update(h.volunteer_id for h in hits if h.volunteer_id not in eligible)
        chosen = [
            NewAlert(uuid4(), h.volunteer_id, h.distance_m, "cpr", DEFAULT_CHANNEL)
            for h in hits
            if h.volunteer_id in eligible
        ]
        if len(eligible) == len(hits):
            break
    events.add(
        "matched",
        radius_m=agency.radius_m,
        limit=agency.limit,
        max_age_s=agency.position_max_age_s,
        candidates=len(chosen),
        excluded_ineligible=len(ineligible),
    )
    await alert_store.insert_with_outbox(
        conn,
        agency_id=agency.agency_id,
        incident_id=incident_id,
        alerts=chosen,
        expires_at=now + timedelta(seconds=agency.alert_ttl_s),
        now=now,
    )
    for alert in chosen:
        events.add(
            "alert_queued",
            alert_id=alert.alert_id,
            volunteer_id=alert.volunteer_id,
            distance_m=round(alert.distance_m),
            role=alert.role,
            channel=alert.channel,
        )
    return len(chosen)
