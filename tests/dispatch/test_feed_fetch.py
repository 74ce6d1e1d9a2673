"""Feeds as servers really send them: large and in chunks, gzip-encoded, unchanged (304),
or too large."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from dispatch.config import Settings
from dispatch.store import feeds
from dispatch.web.app import create_app
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.feed_helpers import poll_now
from tests.fakes.feed_server import FeedServer, serving

MAPPING = {
    "items": "incidents",
    "fields": {"id": "ID", "call_type_code": "Type", "received_at": "Received"},
}


def _document(count: int, filler_bytes: int) -> dict[str, Any]:
    received = (datetime.now(UTC) - timedelta(minutes=2)).isoformat(timespec="seconds")
    return {
        "incidents": [
            {"ID": f"L{i}", "Type": "FALL", "Received": received, "Notes": "x" * filler_bytes}
            for i in range(count)
        ]
    }


async def _app(settings: Settings, aiohttp_client: Any, **overrides: Any) -> Any:
    return await aiohttp_client(create_app(settings.with_overrides(feed_tick_s=0.05, **overrides)))


async def test_a_large_feed_sent_in_small_chunks_is_read_whole(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """600 KB written 4 KiB at a time: every incident in it is taken (one read of the first
    chunk would see broken JSON)."""
    fake = FeedServer(document=_document(30, 20_000), chunk_size=4096)
    assert len(fake.body()) > 600_000
    async with serving(fake) as url:
        feed_id = await feeds.create(
            db, agency_id=agency.agency_id, name="big", url=url, mapping=MAPPING, interval_s=3600
        )
        await _app(settings, aiohttp_client)
        row = await poll_now(db, feed_id)
    assert (row["last_result"], row["last_error"], row["items_seen"]) == ("ok", None, 30)
    assert await db.fetchval("SELECT count(*) FROM incidents") == 30


async def test_gzip_encoded_feed_is_decoded_and_the_limit_applies_to_the_decoded_body(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """The poller asks for gzip and reads it; a small gzip body that decodes past the limit
    (a compression bomb) is refused with the reason, as is a plain body over the limit."""
    fake = FeedServer(document=_document(5, 30_000), gzip=True, chunk_size=1024)
    assert len(gzip.compress(fake.body())) < 2_000 < 150_000 < len(fake.body())
    async with serving(fake) as url:
        feed_id = await feeds.create(
            db, agency_id=agency.agency_id, name="gz", url=url, mapping=MAPPING, interval_s=3600
        )
        await _app(settings, aiohttp_client, feed_max_bytes=200_000)
        row = await poll_now(db, feed_id)
        assert "gzip" in fake.requests[-1]["Accept-Encoding"]
        assert (row["last_result"], row["items_seen"]) == ("ok", 5)

        fake.document = _document(5, 50_000)  # 250 KB decoded, about 1 KB on the wire
        row = await poll_now(db, feed_id)
        assert row["last_result"] == "fetch_failed"
        assert "larger than the limit of 200000 bytes" in row["last_error"]
        assert row["failures"] == 1

        fake.gzip = False
        row = await poll_now(db, feed_id)
        assert (row["last_result"], row["failures"]) == ("fetch_failed", 2)
        assert "larger than the limit of 200000 bytes" in row["last_error"]
    active = await db.fetchval("SELECT count(*) FROM incidents WHERE status = 'active'")
    assert active == 5, "a refused body closes nothing"


async def test_an_unchanged_feed_costs_one_304_and_a_failing_one_is_fetched_whole(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """ETag and Last-Modified go back to the server; its 304 changes nothing and counts as a
    success. After a failed poll no validator is sent, so a failure cannot hide behind a 304."""
    fake = FeedServer(document=_document(2, 10), conditional=True)
    async with serving(fake) as url:
        feed_id = await feeds.create(
            db, agency_id=agency.agency_id, name="etag", url=url, mapping=MAPPING, interval_s=3600
        )
        await _app(settings, aiohttp_client)
        first = await poll_now(db, feed_id)
        assert "If-None-Match" not in fake.requests[-1]
        events = await db.fetchval("SELECT count(*) FROM response_log")

        second = await poll_now(db, feed_id)
        sent = fake.requests[-1]
        assert sent["If-None-Match"] == first["etag"]
        assert sent["If-Modified-Since"] == first["last_modified"]
        assert (second["last_result"], second["items_seen"], second["failures"]) == (
            "not_modified",
            2,
            0,
        )
        assert second["last_ok_at"] > first["last_ok_at"]
        assert fake.bodies_sent == 1
        assert await db.fetchval("SELECT count(*) FROM response_log") == events

        fake.document = {"incidents": [{"ID": "bad", "Type": "FALL", "Received": "soon"}]}
        failed = await poll_now(db, feed_id)
        assert (failed["last_result"], failed["etag"]) == ("all_items_refused", None)
        again = await poll_now(db, feed_id)
        assert "If-None-Match" not in fake.requests[-1]
        assert (again["last_result"], again["failures"]) == ("all_items_refused", 2)
        assert fake.bodies_sent == 3


async def test_malformed_document_is_a_failure_kept_for_audit(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """A body that is not JSON fails the poll with the parser's reason and is kept once."""
    fake = FeedServer(raw=b'{"incidents": [')
    async with serving(fake) as url:
        feed_id = await feeds.create(
            db, agency_id=agency.agency_id, name="broken", url=url, mapping=MAPPING
        )
        await _app(settings, aiohttp_client)
        row = await poll_now(db, feed_id)
        await poll_now(db, feed_id)
    assert row["last_result"] == "refused_document"
    assert "malformed JSON" in row["last_error"]
    kept = await db.fetch("SELECT feed_name, body, status FROM rejected_documents")
    assert [(k["feed_name"], bytes(k["body"]), k["status"]) for k in kept] == [
        ("broken", b'{"incidents": [', 400)
    ]
