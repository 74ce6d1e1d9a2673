"""Feed health that cannot hide: a feed refusing every item is failing in the API, in
/metrics and in the audit list; closures wait only for refused items with the same id."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from dispatch.config import Settings
from dispatch.store import agencies, feeds
from dispatch.web.app import create_app
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.feed_helpers import metric, poll_now
from tests.fakes.feed_server import FeedServer, serving

MAPPING = {
    "items": "calls",
    "fields": {"id": "ID", "call_type_code": "Type", "received_at": "Received"},
}
RECEIVED = (datetime.now(UTC) - timedelta(minutes=2)).isoformat(timespec="seconds")


def _call(call_id: str | None, received: str = RECEIVED) -> dict[str, Any]:
    item = {"Type": "FALL", "Received": received}
    return item if call_id is None else {"ID": call_id, **item}


async def test_a_feed_refusing_every_item_shows_as_failing(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """Every item refused: a failure in the API (with the reasons), in /metrics and in the
    audit list of refused documents (each item kept once, with the feed's name)."""
    fake = FeedServer(document={"calls": [_call("R1", "yesterday"), _call("R2", "")]})
    client = await aiohttp_client(create_app(settings.with_overrides(feed_tick_s=0.05)))
    async with serving(fake) as url:
        feed_id = await feeds.create(
            db, agency_id=agency.agency_id, name="county", url=f"{url}?token=s3cret",
            mapping=MAPPING, interval_s=3600, headers={"X-Api-Key": "k3y"},
        )  # fmt: skip
        pending = await client.get(
            f"/v1/agencies/{agency.agency_id}/feeds", headers=agency.supervisor_auth
        )
        assert [f["status"] for f in (await pending.json())["feeds"]] == ["pending"]
        await poll_now(db, feed_id)
        await poll_now(db, feed_id)

    path = f"/v1/agencies/{agency.agency_id}/feeds"
    resp = await client.get(path, headers=agency.supervisor_auth)
    assert resp.status == 200
    text = await resp.text()
    assert "s3cret" not in text
    assert "k3y" not in text
    (feed,) = (await resp.json())["feeds"]
    assert feed["url"] == f"{url}?…"
    assert (feed["status"], feed["consecutive_failures"], feed["last_ok_at"]) == (
        "failing",
        2,
        None,
    )
    assert feed["last_result"] == "all_items_refused"
    assert feed["last_error"].startswith("all 2 items refused; the first: /calls/0/Received:")
    assert (feed["items_seen"], feed["items_refused"]) == (2, 2)
    assert [(r["incident_id"], r["pointer"], r["detail"]) for r in feed["refused"]] == [
        ("R1", "/calls/0/Received", "not an ISO 8601 date-time: 'yesterday'"),
        ("R2", "/calls/1/Received", "is required"),
    ]
    page = await (await client.get("/metrics")).text()
    assert metric(page, "dispatch_feed_polls_total", result="all_items_refused") == 2
    assert metric(page, "dispatch_feed_polls_total", result="ok") == 0
    assert metric(page, "dispatch_feed_items_refused_total") == 4
    rules = (Path(__file__).parents[2] / "ops" / "prometheus-rules.yml").read_text()
    feed_metrics = set(re.findall(r"dispatch_feed_[a-z_]+", rules))
    assert feed_metrics == {"dispatch_feed_polls_total", "dispatch_feed_items_refused_total"}
    assert all(f"\n{name}" in page for name in feed_metrics), "the alert rules use served metrics"
    kept = await client.get(
        f"/v1/agencies/{agency.agency_id}/rejected-documents", headers=agency.supervisor_auth
    )
    documents = (await kept.json())["documents"]
    assert sorted((d["feed"], d["endpoint"], d["pointer"]) for d in documents) == [
        ("county", "feed", "/calls/0/Received"),
        ("county", "feed", "/calls/1/Received"),
    ]
    assert '"ID": "R1"' in next(d["body"] for d in documents if d["pointer"].startswith("/calls/0"))


async def test_feed_health_is_for_the_agency_supervisor_only(
    agency: AgencyFixture, db: asyncpg.Connection, client: Any
) -> None:
    other_id, _ = await agencies.create_agency(db, name="Other")
    _, other_token = await agencies.create_supervisor(db, agency_id=other_id, name="S")
    path = f"/v1/agencies/{agency.agency_id}/feeds"
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers={"Authorization": f"Bearer {other_token}"})).status == (
        401
    )
    assert (await client.get(path, headers=agency.auth)).status == 401


async def test_closure_waits_only_for_a_refused_item_with_the_same_id(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """C left the list and is closed although B was refused; B (refused, id readable) stays
    open. A refused item whose id cannot be read could be anyone: then nothing is closed."""
    fake = FeedServer(document={"calls": [_call("A"), _call("B"), _call("C"), _call("D")]})
    client = await aiohttp_client(create_app(settings.with_overrides(feed_tick_s=0.05)))

    async def states() -> dict[str, str]:
        rows = await db.fetch("SELECT source_incident_id AS i, status FROM incidents")
        return {r["i"]: r["status"] for r in rows}

    async with serving(fake) as url:
        feed_id = await feeds.create(
            db, agency_id=agency.agency_id, name="f", url=url, mapping=MAPPING, interval_s=3600
        )
        await poll_now(db, feed_id)
        assert await states() == dict.fromkeys("ABCD", "active")
        page = await (await client.get("/metrics")).text()
        assert metric(page, "dispatch_incidents_total", status="created") == 4
        assert metric(page, "dispatch_feed_polls_total", result="ok") == 1

        fake.document = {"calls": [_call("A"), _call("B", "garbled"), _call("D")]}
        row = await poll_now(db, feed_id)
        assert (row["last_result"], row["failures"], row["items_refused"]) == ("ok", 0, 1)
        assert await states() == {"A": "active", "B": "active", "C": "closed", "D": "active"}

        fake.document = {"calls": [_call("A"), _call(None), _call("C")]}
        row = await poll_now(db, feed_id)
        assert row["refused_items"] == [
            {"index": 1, "incident_id": None, "pointer": "/calls/1/ID", "detail": "is required"}
        ]
        assert await states() == {"A": "active", "B": "active", "C": "closed", "D": "active"}, (
            "nothing closed while an unreadable item could be B or D; C is not reopened"
        )


async def test_a_stored_mapping_that_no_longer_passes_is_a_failing_feed(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    fake = FeedServer(document={"calls": [_call("A")]})
    await aiohttp_client(create_app(settings.with_overrides(feed_tick_s=0.05)))
    async with serving(fake) as url:
        feed_id = await feeds.create(
            db, agency_id=agency.agency_id, name="old", url=url,
            mapping={"items": "calls", "fields": {"id": "ID", "call_type_code": "Type"}},
        )  # fmt: skip
        row = await poll_now(db, feed_id)
    assert (row["last_result"], row["failures"]) == ("bad_mapping", 1)
    assert row["last_error"] == "mapping /mapping/fields/received_at: is required (a path)"
    assert fake.requests == [], "not fetched with a mapping that cannot read it"


async def test_an_unknown_agency_time_zone_fails_the_poll_instead_of_reading_utc(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """Times without an offset would be read an hour or more off: not polled at all."""
    fake = FeedServer(document={"calls": [_call("A")]})
    await db.execute(
        "UPDATE agencies SET time_zone = 'Mars/Olympus' WHERE id = $1", agency.agency_id
    )
    await aiohttp_client(create_app(settings.with_overrides(feed_tick_s=0.05)))
    async with serving(fake) as url:
        feed_id = await feeds.create(
            db, agency_id=agency.agency_id, name="zoned", url=url, mapping=MAPPING
        )
        row = await poll_now(db, feed_id)
    assert (row["last_result"], row["failures"]) == ("bad_time_zone", 1)
    assert "IANA time zone" in row["last_error"]
    assert await db.fetchval("SELECT count(*) FROM incidents") == 0
