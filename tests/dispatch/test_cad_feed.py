"""Polled CAD feeds against a local feed server: diff by id, close on disappearance,
back off on errors, never ingest twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatch.config import Settings
from dispatch.store import feeds
from dispatch.web.app import create_app
from dispatch.workers.cad_poller import backoff_s
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, drained, offset, volunteer_at, wait_until
from tests.fakes.feed_server import CAD_MAPPING, FeedServer, serving

# Minutes ago: intake never alerts for an incident received more than half an hour before.
RECEIVED = (datetime.now(UTC) - timedelta(minutes=3)).isoformat(timespec="seconds")


def cad_item(incident_id: str, north_m: float = 0, type_: str = "09E01") -> dict[str, Any]:
    lat, lon = offset(*CENTRE, north_m, 0)
    return {
        "ID": incident_id,
        "Type": type_,
        "TypeText": "CARDIAC ARREST",
        "Received": RECEIVED,
        "Latitude": f"{lat:.7f}",  # many feeds send strings
        "Longitude": f"{lon:.7f}",
        "Address": "Dam",
    }


def listing(*items: dict[str, Any]) -> dict[str, Any]:
    """The CAD's document of its active incidents (``CAD_MAPPING`` reads it)."""
    return {"data": {"incidents": list(items)}}


@pytest.fixture
async def feed_server() -> AsyncIterator[tuple[FeedServer, str]]:
    """A CAD that publishes its active incidents as JSON; tests change what it serves."""
    fake = FeedServer(document=listing())
    async with serving(fake) as url:
        yield fake, url


async def _wait(predicate: Any, timeout_s: float = 10.0) -> None:
    await wait_until(predicate, timeout_s=timeout_s, every_s=0.05)


async def _poll_once(db: asyncpg.Connection, feed_id: int) -> None:
    """Make the feed due now and wait until the poller has been through it."""
    before = await db.fetchval("SELECT last_ok_at FROM cad_feeds WHERE id = $1", feed_id)
    await db.execute("UPDATE cad_feeds SET next_poll_at = now() WHERE id = $1", feed_id)

    async def polled() -> bool:
        row = await db.fetchrow(
            "SELECT last_ok_at, next_poll_at > now() AS scheduled FROM cad_feeds WHERE id = $1",
            feed_id,
        )
        return bool(row["scheduled"]) and row["last_ok_at"] != before

    await _wait(polled)


async def _add_feed(
    db: asyncpg.Connection, agency: AgencyFixture, url: str, name: str, **options: Any
) -> int:
    """A feed of the fake CAD's JSON (``CAD_MAPPING``) for ``agency``."""
    return await feeds.create(
        db, agency_id=agency.agency_id, name=name, url=url, mapping=CAD_MAPPING, **options
    )


async def test_feed_diff_close_and_no_duplicates_after_restart(
    feed_server: tuple[FeedServer, str],
    agency: AgencyFixture,
    db: asyncpg.Connection,
    settings: Settings,
    aiohttp_client: Any,
) -> None:
    """Listed incidents are ingested once, repeats change nothing (also after a restart), and
    an incident that leaves the list is closed with its volunteers stood down."""
    fake, url = feed_server
    fake.document = listing(cad_item("F1", 10), cad_item("F2", 3000, type_="FALL"))
    client = await aiohttp_client(create_app(settings))
    await volunteer_at(client, agency, CENTRE, tier="professional")
    # The feed is added once the volunteer is in place: a new feed is polled at once.
    feed_id = await _add_feed(
        db, agency, url, "metro", interval_s=3600, headers={"X-Api-Key": "feed-secret"}
    )
    await _poll_once(db, feed_id)
    rows = await db.fetch("SELECT source_incident_id, status FROM incidents ORDER BY 1")
    assert [(r["source_incident_id"], r["status"]) for r in rows] == [
        ("F1", "active"),
        ("F2", "active"),
    ]
    assert await db.fetchval("SELECT count(*) FROM alerts") == 1, "09E01 alerts, FALL does not"
    assert fake.requests[-1].get("X-Api-Key") == "feed-secret"
    await drained(db)  # the alert's own send is logged too; wait for it before counting
    events = await db.fetchval("SELECT count(*) FROM response_log")

    await _poll_once(db, feed_id)
    assert await db.fetchval("SELECT count(*) FROM response_log") == events

    await client.close()
    restarted = await aiohttp_client(create_app(settings))
    await _poll_once(db, feed_id)
    assert await db.fetchval("SELECT count(*) FROM response_log") == events
    assert await db.fetchval("SELECT count(*) FROM incidents") == 2

    fake.document = listing(cad_item("F2", 3000, type_="FALL"))
    await _poll_once(db, feed_id)
    f1 = await db.fetchrow("SELECT id, status FROM incidents WHERE source_incident_id = 'F1'")
    assert f1["status"] == "closed"
    assert {r["state"] for r in await db.fetch("SELECT state FROM alerts")} == {"stood_down"}
    reasons = await db.fetch(
        "SELECT details->>'reason' AS reason FROM response_log"
        " WHERE incident_id = $1 AND event = 'incident_updated'",
        f1["id"],
    )
    assert [r["reason"] for r in reasons] == ["left_feed"]
    await restarted.close()


async def test_feed_failures_back_off_and_never_close_incidents(
    feed_server: tuple[FeedServer, str],
    agency: AgencyFixture,
    db: asyncpg.Connection,
    settings: Settings,
    aiohttp_client: Any,
) -> None:
    """A 503, a timeout or a broken document count as failures with growing delays and
    leave the incidents alone; a refused item keeps its own incident open, the rest go on."""
    fake, url = feed_server
    fake.document = listing(cad_item("G1"))
    feed_id = await _add_feed(db, agency, url, "flaky", interval_s=5, timeout_s=0.5)
    await aiohttp_client(create_app(settings))
    await _poll_once(db, feed_id)
    assert await db.fetchval("SELECT count(*) FROM incidents WHERE status = 'active'") == 1

    fake.status = 503
    for failures in (1, 2):
        await db.execute("UPDATE cad_feeds SET next_poll_at = now() WHERE id = $1", feed_id)

        async def failed(n: int = failures) -> bool:
            return bool(
                await db.fetchval("SELECT failures FROM cad_feeds WHERE id = $1", feed_id) == n
            )

        await _wait(failed)
    row = await db.fetchrow(
        "SELECT last_error, next_poll_at - now() AS wait FROM cad_feeds WHERE id = $1", feed_id
    )
    assert "503" in row["last_error"]
    assert row["wait"].total_seconds() > 15, "second failure waits about 4 intervals"
    assert backoff_s(5, 1) == 10
    assert backoff_s(5, 30) == 600

    fake.status, fake.delay_s = 200, 2.0
    await db.execute("UPDATE cad_feeds SET next_poll_at = now() WHERE id = $1", feed_id)

    async def timed_out() -> bool:
        return bool(await db.fetchval("SELECT failures FROM cad_feeds WHERE id = $1", feed_id) == 3)

    await _wait(timed_out)
    assert "Timeout" in await db.fetchval("SELECT last_error FROM cad_feeds WHERE id = $1", feed_id)
    assert await db.fetchval("SELECT count(*) FROM incidents WHERE status = 'active'") == 1

    fake.delay_s = 0
    fake.document = listing({**cad_item("G1"), "Received": "yesterday"}, cad_item("G2"))
    await _poll_once(db, feed_id)
    rows = await db.fetch("SELECT source_incident_id, status FROM incidents ORDER BY 1")
    assert [(r["source_incident_id"], r["status"]) for r in rows] == [
        ("G1", "active"),
        ("G2", "active"),
    ], "G1 is refused this time, not gone: it stays open; G2 is taken"
    assert await db.fetchval("SELECT failures FROM cad_feeds WHERE id = $1", feed_id) == 0
