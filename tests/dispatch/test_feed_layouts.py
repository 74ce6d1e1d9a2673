"""Real feed layouts through the poller into intake: PulsePoint (no dates, string and hidden
coordinates) and a Dallas-style snapshot (document time, no coordinates)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from cad_adapters.feed_templates import template_mapping
from dispatch.config import Settings
from dispatch.store import feeds
from dispatch.web.app import create_app
from tests.cad_adapters.feed_fixtures import DALLAS, feed_fixture
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.feed_helpers import poll_now
from tests.dispatch.helpers import CENTRE, drained, offset, volunteer_at
from tests.fakes.feed_server import FeedServer, serving


async def _events(db: asyncpg.Connection, source_incident_id: str) -> list[tuple[str, Any]]:
    rows = await db.fetch(
        """
        SELECT r.event, r.details FROM response_log r JOIN incidents i ON i.id = r.incident_id
        WHERE i.source_incident_id = $1 ORDER BY r.id
        """,
        source_incident_id,
    )
    return [(r["event"], r["details"]) for r in rows]


async def _polling_app(
    aiohttp_client: Any, settings: Settings, agency: AgencyFixture, codes: list[str]
) -> Any:
    """A client of an app polling feeds every 50 ms; ``agency`` alerts for ``codes`` and
    has a volunteer at the centre."""
    client = await aiohttp_client(create_app(settings.with_overrides(feed_tick_s=0.05)))
    await _rules(client, agency, codes)
    await volunteer_at(client, agency, CENTRE, tier="professional")
    return client


def _pulsepoint_near_centre() -> tuple[dict[str, Any], dict[str, Any]]:
    """The PulsePoint fixture with its first active call 20 m from the centre: the document
    and that call."""
    document = feed_fixture("pulsepoint_incidents.json")
    lat, lon = offset(*CENTRE, 20, 0)
    first = document["incidents"]["active"][0]
    first["Latitude"], first["Longitude"] = f"{lat:.10f}", f"{lon:.10f}"
    return document, first


async def _add_pulsepoint(db: asyncpg.Connection, agency: AgencyFixture, url: str) -> int:
    return await feeds.create(
        db, agency_id=agency.agency_id, name="pp", url=url,
        mapping=template_mapping("pulsepoint"), interval_s=3600,
    )  # fmt: skip


async def _rules(client: Any, agency: AgencyFixture, codes: list[str]) -> None:
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"call_type_rules": {"codes": codes}},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200, await resp.text()


async def test_pulsepoint_layout_creates_incidents_timed_at_first_sight(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """`{}` / "null" dates: received at the poll that first saw them, marked so on the
    timeline; string coordinates alert, "0.0000000000" is no position. Later polls and a
    restart change nothing; a changed item is an update that keeps its first-sight time."""
    document, _ = _pulsepoint_near_centre()
    # The feed's first poll lists nothing: calls listed later are known to be new.
    fake = FeedServer(document={"incidents": {"alerts": [], "active": []}})
    client = await _polling_app(aiohttp_client, settings, agency, ["ME"])
    async with serving(fake) as url:
        feed_id = await _add_pulsepoint(db, agency, url)
        assert (await poll_now(db, feed_id))["last_result"] == "ok"
        fake.document = document
        before = datetime.now(UTC)
        row = await poll_now(db, feed_id)
        after = datetime.now(UTC)
        assert (row["last_result"], row["items_seen"], row["items_refused"]) == ("ok", 3, 0)
        incidents = await db.fetch(
            "SELECT source_incident_id, received_at, lat FROM incidents ORDER BY 1"
        )
        assert [r["source_incident_id"] for r in incidents] == [
            "EMS0001/1580001001",
            "EMS0001/1580001002",
            "EMS0001/1580001003",
        ], "active items only, identified by agency and id"
        assert all(before - timedelta(seconds=1) <= r["received_at"] <= after for r in incidents)
        assert [r["lat"] is None for r in incidents] == [False, True, False]
        received = await _events(db, "EMS0001/1580001001")
        assert received[0][0] == "incident_received"
        assert received[0][1]["received_at_from"] == "first_seen"
        assert await db.fetchval("SELECT count(*) FROM alerts") == 1
        hidden = await _events(db, "EMS0001/1580001002")
        assert ("not_alertable", {"reason": "no_location"}) in hidden
        await drained(db)
        events = await db.fetchval("SELECT count(*) FROM response_log")
        versions = await db.fetch("SELECT version_at, received_at FROM incidents ORDER BY 1")

        await poll_now(db, feed_id)
        await client.close()
        await aiohttp_client(create_app(settings.with_overrides(feed_tick_s=0.05)))
        row = await poll_now(db, feed_id)
        assert row["last_result"] == "ok"
        assert await db.fetchval("SELECT count(*) FROM response_log") == events
        assert await db.fetch("SELECT version_at, received_at FROM incidents ORDER BY 1") == (
            versions
        )

        changed = copy.deepcopy(document)
        changed["incidents"]["active"][2]["FullDisplayAddress"] = "THIRD ST, TESTVILLE, ZZ"
        fake.document = changed
        await poll_now(db, feed_id)
    crash = await db.fetchrow(
        "SELECT received_at, report->'address'->>'text' AS address FROM incidents"
        " WHERE source_incident_id = 'EMS0001/1580001003'"
    )
    assert crash["address"] == "THIRD ST, TESTVILLE, ZZ"
    assert crash["received_at"] == versions[2]["received_at"]
    updated = [d for e, d in await _events(db, "EMS0001/1580001003") if e == "incident_updated"]
    assert [d["received_at_from"] for d in updated] == ["first_seen"]


def _dallas(generated_at: datetime, drop: str | None = None) -> dict[str, Any]:
    document = feed_fixture("dallas_active_calls.json")
    document["summary"]["generated_at"] = generated_at.isoformat(timespec="seconds")
    document["incidents"] = [i for i in document["incidents"] if i["incident_number"] != drop]
    return document


async def test_dallas_layout_stores_non_alerting_incidents_and_closes_vanished_ones(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """No time and no coordinates on the items: received at the snapshot's own time (marked),
    stored, alerting nobody; newer snapshots of the same calls change nothing; a call that
    leaves the list is closed."""
    await _polling_app(aiohttp_client, settings, agency, ["CARDIAC ARREST"])
    generated = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    fake = FeedServer(document=_dallas(generated))
    async with serving(fake) as url:
        feed_id = await feeds.create(
            db, agency_id=agency.agency_id, name="dallas", url=url, mapping=DALLAS,
            interval_s=3600,
        )  # fmt: skip
        row = await poll_now(db, feed_id)
        assert (row["last_result"], row["items_seen"]) == ("ok", 3)
        stored = await db.fetch(
            "SELECT source_incident_id, received_at, lat, status FROM incidents ORDER BY 1"
        )
        assert [(r["received_at"], r["lat"], r["status"]) for r in stored] == [
            (generated, None, "active")
        ] * 3
        arrest = await _events(db, "26-0210001")
        assert arrest[0][1]["received_at_from"] == "document"
        assert ("not_alertable", {"reason": "no_location"}) in arrest
        assert await db.fetchval("SELECT count(*) FROM alerts") == 0
        events = await db.fetchval("SELECT count(*) FROM response_log")

        fake.document = _dallas(generated + timedelta(seconds=30))
        await poll_now(db, feed_id)
        assert await db.fetchval("SELECT count(*) FROM response_log") == events

        fake.document = _dallas(generated + timedelta(seconds=60), drop="26-0210002")
        await poll_now(db, feed_id)
    rows = await db.fetch("SELECT source_incident_id, status, received_at FROM incidents")
    assert {r["source_incident_id"]: r["status"] for r in rows} == {
        "26-0210001": "active",
        "26-0210002": "closed",
        "26-0210003": "active",
    }
    assert {r["received_at"] for r in rows} == {generated}
    closed = [d.get("reason") for e, d in await _events(db, "26-0210002") if e.startswith("inc")]
    assert "left_feed" in closed


async def test_calls_with_estimated_times_alert_only_when_seen_appearing(
    agency: AgencyFixture, db: asyncpg.Connection, settings: Settings, aiohttp_client: Any
) -> None:
    """A feed's first poll, or the first after a gap longer than the agency's age limit,
    lists calls whose age nobody knows: stored, never alerted (received_time_unknown)."""
    document, first = _pulsepoint_near_centre()
    fake = FeedServer(document=document)
    await _polling_app(aiohttp_client, settings, agency, ["ME"])
    async with serving(fake) as url:
        feed_id = await _add_pulsepoint(db, agency, url)
        await poll_now(db, feed_id)
        assert await db.fetchval("SELECT count(*) FROM alerts") == 0
        located = await _events(db, "EMS0001/1580001001")
        assert ("not_alertable", {"reason": "received_time_unknown"}) in located

        # A new call after the last good poll is older than the limit: unknown age again.
        second = {**first, "ID": "1580009999"}
        document["incidents"]["active"].append(second)
        await db.execute(
            "UPDATE cad_feeds SET last_ok_at = now() - interval '31 minutes' WHERE id = $1",
            feed_id,
        )
        await poll_now(db, feed_id)
        assert await db.fetchval("SELECT count(*) FROM alerts") == 0
        late = await _events(db, "EMS0001/1580009999")
        assert ("not_alertable", {"reason": "received_time_unknown"}) in late
