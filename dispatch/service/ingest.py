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
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from cad_adapters.models import IncidentReport, IncidentStatus
from dispatch.domain.alert_states import apply
from dispatch.domain.intake import (
    EMS_ON_SCENE,
    IntakeStatus,
    apply_agency_rules,
    changed_units,
    classify,
    not_alertable_reason,
    stand_down_event,
)
from dispatch.domain.models import AgencyPolicy
from dispatch.service.positions import PositionCache
from dispatch.store import alerts as alert_store
from dispatch.store import incidents as incident_store
from dispatch.store import intake as intake_store
from dispatch.store import response_log
from dispatch.store import units as unit_store
from dispatch.store.alerts import NewAlert
from dispatch.store.response_log import LogEvent

# Re-query at most this many times when volunteers turn out ineligible in the database
# (e.g. made unavailable by another process since this one indexed them).
_MAX_MATCH_ROUNDS = 3
# The worker plans each alert's fallback chain from this first outbox row (issue 4).
DEFAULT_CHANNEL = "auto"


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
        at: datetime | None = None,
        **details: Any,
    ) -> None:
        self.rows.append(
            LogEvent(
                self.agency_id,
                self.incident_id,
                name,
                at or self.now,
                alert_id,
                volunteer_id,
                details,
            )
        )


def _plain(value: Any) -> Any:
    """JSON-ready data from report values (dataclasses.asdict deep-copies: too slow here)."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in a report document")


def report_document(report: IncidentReport) -> dict[str, Any]:
    """The normalized report as JSON-ready data (stored, and hashed to detect replays)."""
    document: dict[str, Any] = _plain(report)
    return document


def content_hash(document: dict[str, Any]) -> bytes:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


class ReplayedSignature(Exception):
    """This exact body signature was already used: a replay, whatever the body says."""


async def ingest_incident(
    pool: asyncpg.Pool,
    positions: PositionCache,
    agency: AgencyPolicy,
    report: IncidentReport,
    *,
    now: datetime,
    signature: bytes | None = None,
) -> IngestResult:
    """Store one snapshot and act on it, all in one transaction.

    The replay check hashes the snapshot as the source sent it; the agency's
    rules (call types, place words) are applied afterwards, so changing the rules
    never turns a replay into a conflict.
    """
    document = report_document(report)
    digest = content_hash(document)
    resolved = apply_agency_rules(report, agency)
    async with pool.acquire() as conn, conn.transaction():
        if signature is not None and not await intake_store.remember_signature(
            conn, agency.agency_id, signature, now
        ):
            raise ReplayedSignature
        incident_id, stored = await incident_store.insert_or_lock(
            conn,
            incident_id=uuid4(),
            agency_id=agency.agency_id,
            report=resolved,
            document=document,
            content_hash=digest,
            now=now,
        )
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
                is_cardiac_arrest=resolved.is_cardiac_arrest,
                place_type=resolved.place_type.value,
            )
        else:
            await incident_store.update(
                conn,
                incident_id=incident_id,
                report=resolved,
                document=document,
                content_hash=digest,
                now=now,
            )
            events.add("incident_updated", status=report.status.value)

        await _record_units(
            conn, agency, incident_id, resolved, events, new=status is IntakeStatus.CREATED
        )
        queued = 0
        if stored is not None and resolved.status is not IncidentStatus.ACTIVE:
            if stored.status is IncidentStatus.ACTIVE:
                await _stand_down(conn, incident_id, resolved.status, events)
        else:
            reason = not_alertable_reason(resolved)
            if reason is not None:
                events.add("not_alertable", reason=reason.value)
            else:
                # A new incident has no alerts yet: skip the look-up on the hot path.
                alerted = (
                    set()
                    if status is IntakeStatus.CREATED
                    else await alert_store.alerted_volunteers(conn, incident_id)
                )
                if not alerted:
                    queued = await _match_and_queue(
                        conn, positions, agency, resolved, incident_id, events, alerted
                    )
        await response_log.append(conn, events.rows)
    return IngestResult(incident_id, status, queued)


async def _record_units(
    conn: Any,
    agency: AgencyPolicy,
    incident_id: UUID,
    report: IncidentReport,
    events: _Events,
    *,
    new: bool,
) -> None:
    """Log each unit whose status changed, at the source's time; keep first EMS on scene."""
    if not report.units:
        return
    stored = {} if new else await unit_store.current(conn, incident_id)
    changes = changed_units(
        {unit_id: (u.status, u.status_at) for unit_id, u in stored.items()}, report.units
    )
    await unit_store.upsert(conn, agency.agency_id, incident_id, changes, events.now)
    for unit in changes:
        events.add(
            "unit_status",
            at=unit.at or events.now,
            unit_id=unit.unit_id,
            status=unit.status.value,
            status_raw=unit.status_raw,
            source_at=unit.at.isoformat() if unit.at else None,
        )
    on_scene = [u.at or events.now for u in changes if u.status in EMS_ON_SCENE]
    if on_scene:
        await unit_store.mark_first_on_scene(conn, incident_id, min(on_scene))


async def _stand_down(
    conn: Any, incident_id: UUID, status: IncidentStatus, events: _Events
) -> None:
    """The CAD closed or cancelled the incident: nobody else goes, travellers are released."""
    events.add(f"incident_{status.value}")
    for alert in await alert_store.open_for_incident(conn, incident_id):
        event = stand_down_event(alert.state)
        if event is None:
            continue
        target = apply(alert.state, event)
        await alert_store.set_state(conn, alert.alert_id, target, events.now)
        events.add(
            f"alert_{target.value}",
            alert_id=alert.alert_id,
            volunteer_id=alert.volunteer_id,
            reason=f"incident_{status.value}",
        )


async def _match_and_queue(
    conn: Any,
    positions: PositionCache,
    agency: AgencyPolicy,
    report: IncidentReport,
    incident_id: UUID,
    events: _Events,
    alerted: set[int],
) -> int:
    now = events.now
    location = report.location
    assert location is not None
    ineligible: set[int] = set()
    chosen: list[NewAlert] = []
    for _ in range(_MAX_MATCH_ROUNDS):
        hits = positions.nearest(
            agency.agency_id,
            location.lat,
            location.lon,
            radius_m=agency.radius_m,
            limit=agency.limit - len(chosen),
            max_age_s=agency.position_max_age_s,
            now=now,
            exclude=alerted | ineligible | {a.volunteer_id for a in chosen},
        )
        candidates = [
            NewAlert(uuid4(), h.volunteer_id, h.distance_m, "cpr", DEFAULT_CHANNEL) for h in hits
        ]
        inserted = await alert_store.insert_with_outbox(
            conn,
            agency_id=agency.agency_id,
            incident_id=incident_id,
            alerts=candidates,
            expires_at=now + timedelta(seconds=agency.alert_ttl_s),
            now=now,
        )
        chosen.extend(a for a in candidates if a.volunteer_id in inserted)
        ineligible.update(h.volunteer_id for h in hits if h.volunteer_id not in inserted)
        if len(inserted) == len(hits) or len(chosen) >= agency.limit:
            break
    events.add(
        "matched",
        radius_m=agency.radius_m,
        limit=agency.limit,
        max_age_s=agency.position_max_age_s,
        candidates=len(chosen),
        excluded_ineligible=len(ineligible),
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


async def close_vanished(
    pool: asyncpg.Pool,
    agency: AgencyPolicy,
    source: str,
    present: Collection[str],
    *,
    now: datetime,
) -> list[UUID]:
    """Close this source's active incidents that a full-snapshot feed no longer lists.

    The closure bumps the stored version, so the same (now old) snapshot arriving
    again later is stale rather than a reopening.
    """
    closed: list[UUID] = []
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            """
            SELECT id FROM incidents
            WHERE agency_id = $1 AND source = $2 AND status = 'active'
              AND NOT (source_incident_id = ANY($3::text[]))
            ORDER BY id FOR UPDATE
            """,
            agency.agency_id,
            source,
            list(present),
        )
        for row in rows:
            incident_id: UUID = row["id"]
            await conn.execute(
                "UPDATE incidents SET status = 'closed', version_seq = version_seq + 1,"
                " updated_at = $2 WHERE id = $1",
                incident_id,
                now,
            )
            events = _Events(agency.agency_id, incident_id, now)
            events.add("incident_updated", status="closed", reason="left_feed")
            await _stand_down(conn, incident_id, IncidentStatus.CLOSED, events)
            await response_log.append(conn, events.rows)
            closed.append(incident_id)
    return closed
