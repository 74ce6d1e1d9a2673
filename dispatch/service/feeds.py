"""Feed administration: each feed's health as people see it, and checking a mapping
against a live sample before a feed is stored."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from cad_adapters.feed import FeedMapping, SampleCheck, check_sample
from cad_adapters.generic import decode_json
from dispatch.service.feed_fetch import MAX_FEED_BYTES, fetch_feed


def public_url(url: str) -> str:
    """The feed's URL without credentials or query (API tokens often travel there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    shown = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return shown + ("?…" if parts.query else "")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def health_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """One feed's health, JSON-ready: a feed that fails or refuses every item says so."""
    if row["last_poll_at"] is None:
        status = "pending"
    elif row["failures"]:
        status = "failing"
    else:
        status = "ok"
    return {
        "feed_id": row["id"],
        "name": row["name"],
        "url": public_url(row["url"]),
        "enabled": row["enabled"],
        "interval_s": row["interval_s"],
        "status": status,
        "last_poll_at": _iso(row["last_poll_at"]),
        "last_ok_at": _iso(row["last_ok_at"]),
        "last_result": row["last_result"],
        "consecutive_failures": row["failures"],
        "last_error": row["last_error"],
        "items_seen": row["items_seen"],
        "items_refused": row["items_refused"],
        "refused": list(row["refused_items"]),
        "next_poll_at": _iso(row["next_poll_at"]),
    }


async def sample_check(
    http: aiohttp.ClientSession,
    *,
    url: str,
    headers: Mapping[str, str],
    timeout_s: float,
    mapping: FeedMapping,
    source: str,
    tz: tzinfo,
    now: datetime,
    max_bytes: int = MAX_FEED_BYTES,
) -> SampleCheck:
    """Fetch the feed once and check the mapping against it.

    Raises :class:`~dispatch.service.feed_fetch.FeedFetchError` when it cannot be
    fetched and :class:`~cad_adapters.errors.CadParseError` when the document is refused.
    """
    fetched = await fetch_feed(http, url, headers=headers, timeout_s=timeout_s, max_bytes=max_bytes)
    assert fetched.body is not None  # no validators were sent
    document = decode_json(fetched.body)
    return check_sample(document, mapping, source=source, default_tz=tz, now=now)


def dry_run_view(check: SampleCheck) -> dict[str, Any]:
    """What the mapping gives for the sample, item by item, JSON-ready."""
    snapshot = check.snapshot
    incidents = []
    for item in snapshot.items:
        report = item.report
        location = report.location
        incidents.append(
            {
                "id": report.source_incident_id,
                "call_type_code": report.call_type.code,
                "call_type_text": report.call_type.text,
                "received_at": report.received_at.isoformat(),
                "received_at_from": item.received_from,
                "updated_at": _iso(report.source_updated_at),
                "lat": location.lat if location else None,
                "lon": location.lon if location else None,
                "address": report.address.text if report.address else None,
                "place_type": report.place_type.value,
                "is_cardiac_arrest": report.is_cardiac_arrest,
                "is_test": report.is_test,
            }
        )
    return {
        "items": snapshot.item_count,
        "document_time": _iso(snapshot.document_time),
        "incidents": incidents,
        "refused": [
            {
                "index": r.index,
                "incident_id": r.incident_id,
                "pointer": r.error.pointer,
                "detail": r.error.detail,
            }
            for r in snapshot.refused
        ],
        "problems": check.problems,
        "notes": check.notes,
    }
