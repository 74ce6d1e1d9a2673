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
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from cad_adapters.models import IncidentReport, IncidentStatus
from dispatch.db.types import Conn
from dispatch.domain.incident_states import IncidentState
from dispatch.domain.intake import (
    EMS_ON_SCENE,
    IntakeStatus,
    NotAlertable,
    apply_agency_rules,
    changed_units,
    classify,
    not_alertable_reason,
)
from dispatch.domain.models import AgencyPolicy
from dispatch.service import progress
from dispatch.service.events import EventBuffer
from dispatch.service.positions import PositionCache
from dispatch.store import incidents as incident_store
from dispatch.store import intake as intake_store
from dispatch.store import units as unit_store
from dispatch.store.incidents import IncidentProgress

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
    notes: Mapping[str, Any] | None = None,
    block: NotAlertable | None = None,
) -> IngestResult:
    """Store one snapshot and act on it, all in one transaction.

    The replay check hashes the snapshot as the source sent it; the agency's
    rules (call types, place words) are applied afterwards, so changing the rules
    never turns a replay into a conflict. ``notes`` are facts about how this snapshot
    reached us (e.g. a received time estimated from first sight, a signature not
    checked); they go on the timeline with the received/updated event. ``block`` keeps a
    new incident from ever alerting (the caller knows what intake cannot, e.g. that the
    received time is a guess that may be far too late).
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

        events = EventBuffer(agency.agency_id, incident_id, now)
        if status is IntakeStatus.CREATED:
            events.add(
                "incident_received",
                source=report.source,
                call_type=report.call_type.code,
                status=report.status.value,
                is_test=report.is_test,
                is_cardiac_arrest=resolved.is_cardiac_arrest,
                place_type=resolved.place_type.value,
                **(notes or {}),
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
            events.add("incident_updated", status=report.status.value, **(notes or {}))

        blocked = block if status is IntakeStatus.CREATED else None
        if blocked is not None:
            await incident_store.block_alerting(conn, incident_id, blocked.value)
            events.add("not_alertable", reason=blocked.value)
        await _record_units(
            conn, agency, incident_id, resolved, events, new=status is IntakeStatus.CREATED
        )
        if resolved.status is not IncidentStatus.ACTIVE and (
            stored is None or stored.status is IncidentStatus.ACTIVE
        ):
            events.add(f"incident_{resolved.status.value}")
        reason = not_alertable_reason(resolved)
        if reason is not None and (resolved.status is IncidentStatus.ACTIVE or stored is None):
            events.add("not_alertable", reason=reason.value)
        queued = await progress.advance(
            conn,
            positions,
            agency,
            incident_id,
            events,
            created=_new_progress(incident_id, agency, resolved, now, blocked)
            if status is IntakeStatus.CREATED
            else None,
        )
        await events.flush(conn)
    return IngestResult(incident_id, status, queued)


async def _record_units(
    conn: Conn,
    agency: AgencyPolicy,
    incident_id: UUID,
    report: IncidentReport,
    events: EventBuffer,
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


async def close_vanished(
    pool: asyncpg.Pool,
    positions: PositionCache,
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
        vanished = await incident_store.lock_active_not_listed(
            conn, agency.agency_id, source, present
        )
        for incident_id in vanished:
            await incident_store.close(conn, incident_id, now)
            events = EventBuffer(agency.agency_id, incident_id, now)
            events.add("incident_updated", status="closed", reason="left_feed")
            events.add("incident_closed")
            await progress.advance(conn, positions, agency, incident_id, events)
            await events.flush(conn)
            closed.append(incident_id)
    return closed


def _new_progress(
    incident_id: UUID,
    agency: AgencyPolicy,
    report: IncidentReport,
    now: datetime,
    blocked: NotAlertable | None,
) -> IncidentProgress:
    """The progress row of an incident this transaction has just inserted."""
    location = report.location
    return IncidentProgress(
        incident_id=incident_id,
        agency_id=agency.agency_id,
        status=report.status,
        state=IncidentState.RECEIVED,
        is_test=report.is_test,
        is_cardiac_arrest=report.is_cardiac_arrest,
        lat=location.lat if location else None,
        lon=location.lon if location else None,
        place_type=report.place_type,
        alerting_started_at=None,
        first_ems_on_scene_at=min(
            (u.at or now for u in report.units if u.status in EMS_ON_SCENE), default=None
        ),
        policy_version=None,
        received_at=report.received_at,
        location_uncertainty_m=location.uncertainty_m if location else None,
        alert_blocked=blocked.value if blocked else None,
    )
