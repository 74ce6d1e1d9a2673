"""One feed snapshot into intake: steady versions, marked estimates, careful closures.

A feed item carries no version of its own when the CAD publishes no update time,
and sometimes no received time (then the mapping estimates one: the poll that
first saw it, or the document's time). Both must stay what they were at first
sight, or every poll of an unchanged item would be a new version, churning the
timeline. So for items intake already holds:

- an estimated received time is the one stored (it survives restarts and other
  processes, as it lives in the incident row);
- without an update time, an item whose content is what is stored stays
  ``unchanged``, and one whose content changed is a new version dated at this poll.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
import structlog

from cad_adapters.feed import FeedItem, FeedSnapshot
from cad_adapters.models import IncidentReport, IncidentStatus
from dispatch.domain.clock import Clock
from dispatch.domain.intake import NotAlertable, VersionConflict
from dispatch.domain.models import AgencyPolicy
from dispatch.service.ingest import close_vanished, content_hash, ingest_incident, report_document
from dispatch.service.positions import PositionCache
from dispatch.store import feeds as feed_store
from dispatch.store import rejected as rejected_store
from dispatch.store.feeds import HeldIncident

log = structlog.get_logger(__name__)

KEEP_REFUSED_PER_POLL: Final = 20
"""Refused items kept for audit from one poll (each is kept once per feed anyway)."""
_STEP: Final = timedelta(microseconds=1)


@dataclass(slots=True)
class SnapshotResult:
    statuses: Counter[str] = field(default_factory=Counter)
    alerts_queued: int = 0
    closed: int = 0
    closures_blocked: bool = False
    """A refused item without a readable id could be any vanished incident: none closed."""


def settle(item: FeedItem, held: HeldIncident | None, now: datetime) -> tuple[IncidentReport, bool]:
    """The report to ingest for ``item`` given what intake holds for its id, and whether it is
    exactly what is held (intake would answer ``unchanged``: no need to ask it)."""
    report = item.report
    if held is None:
        return report, False
    if item.pinned:
        report = replace(report, received_at=held.received_at)
    if report.source_updated_at is None and held.status is IncidentStatus.ACTIVE:
        report = replace(report, source_updated_at=held.source_updated_at)
        if content_hash(report_document(report)) != held.content_hash:
            return replace(report, source_updated_at=max(now, held.version_at + _STEP)), False
        return report, report.version_key() == (held.version_at, held.version_seq)
    same = report.version_key() == (held.version_at, held.version_seq) and (
        content_hash(report_document(report)) == held.content_hash
    )
    return report, same


async def ingest_snapshot(
    pool: asyncpg.Pool,
    positions: PositionCache,
    agency: AgencyPolicy,
    source: str,
    snapshot: FeedSnapshot,
    clock: Clock,
    *,
    seen_since: datetime | None = None,
) -> SnapshotResult:
    """Ingest every mapped item, then close the source's incidents that left the feed.

    A refused item blocks the closure of the incident with its id only (it may be that
    incident, unreadable this time); one whose id cannot be read blocks every closure.

    A new item whose received time is an estimate (first sight, the document's time) is
    only known to be younger than the last successful poll, ``seen_since``. When that poll
    is older than the agency's age limit, or there was none (a feed's first poll lists
    calls that may be hours old), the item is stored and never alerts.
    """
    result = SnapshotResult()
    async with pool.acquire() as conn:
        held = await feed_store.held_incidents(
            conn, agency.agency_id, source, [i.report.source_incident_id for i in snapshot.items]
        )
    for item in snapshot.items:
        report, same = settle(item, held.get(item.report.source_incident_id), clock.now())
        if same:
            result.statuses["unchanged"] += 1
            continue
        notes = {"received_at_from": item.received_from} if item.received_from else None
        block = None
        if item.pinned and item.report.source_incident_id not in held:
            limit = timedelta(seconds=agency.max_incident_age_s)
            if seen_since is None or clock.now() - seen_since > limit:
                block = NotAlertable.RECEIVED_TIME_UNKNOWN
        try:
            ingested = await ingest_incident(
                pool, positions, agency, report, now=clock.now(), notes=notes, block=block
            )
        except VersionConflict:
            result.statuses["conflict"] += 1
            log.warning("feed_item_conflict", source=source, incident=report.source_incident_id)
            continue
        result.statuses[ingested.status.value] += 1
        result.alerts_queued += ingested.alerts_queued
    refused_ids = {r.incident_id for r in snapshot.refused}
    if None in refused_ids:
        result.closures_blocked = True
        return result
    present = {i.report.source_incident_id for i in snapshot.items} | {
        i for i in refused_ids if i is not None
    }
    closed = await close_vanished(pool, positions, agency, source, present, now=clock.now())
    result.closed = len(closed)
    return result


def refused_summary(snapshot: FeedSnapshot) -> list[dict[str, Any]]:
    """The refused items as shown with the feed's health."""
    return [
        {
            "index": r.index,
            "incident_id": r.incident_id,
            "pointer": r.error.pointer,
            "detail": r.error.detail,
        }
        for r in snapshot.refused[: feed_store.REFUSED_SHOWN]
    ]


async def keep_refused(
    pool: asyncpg.Pool,
    agency: AgencyPolicy,
    feed_name: str,
    *,
    snapshot: FeedSnapshot | None,
    document: bytes | None,
    error: tuple[str, str] | None,
    now: datetime,
    keep_days: float,
) -> None:
    """Keep refused items (or the refused document, with ``error`` = (pointer, detail))."""
    docs: list[rejected_store.RejectedDocument] = []
    if document is not None and error is not None:
        docs.append(_doc(agency, feed_name, now, document, *error, whole=True))
    for refused in (snapshot.refused if snapshot else [])[:KEEP_REFUSED_PER_POLL]:
        body = json.dumps(refused.item, ensure_ascii=False, sort_keys=True).encode("utf-8")
        docs.append(_doc(agency, feed_name, now, body, refused.error.pointer, refused.error.detail))
    if not docs:
        return
    try:
        async with pool.acquire() as conn:
            for doc in docs:
                await rejected_store.keep(conn, doc, keep_days=keep_days, once=True)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        log.warning("feed_refusals_not_kept", feed=feed_name, error=repr(exc))


def _doc(
    agency: AgencyPolicy,
    feed_name: str,
    now: datetime,
    body: bytes,
    pointer: str,
    detail: str,
    *,
    whole: bool = False,
) -> rejected_store.RejectedDocument:
    return rejected_store.RejectedDocument(
        agency_id=agency.agency_id,
        received_at=now,
        endpoint="feed",
        content_type="application/json",
        status=400 if whole else 422,
        problem_type="/problems/malformed-document" if whole else "/problems/invalid-field",
        detail=detail,
        pointer=pointer,
        body=body,
        feed_name=feed_name,
    )
