"""Recency and precision guards: old, future-dated or vaguely located incidents never alert.

A real feed once replayed an item received in 2019 and volunteers were alerted in 2026.
Every format and the feeds go through the same intake, so each guard is shown through
more than one door.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dispatch.config import Settings
from dispatch.domain.intake import NotAlertable, location_imprecise, timing_block
from dispatch.store import feeds
from dispatch.web.app import create_app
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, incident, offset, volunteers_near, wait_until


class ManualClock:
    """The service's clock, moved by the test (intake, ticker and answers all read it)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def client(settings: Settings, aiohttp_client: Any, clock: ManualClock) -> Any:
    return await aiohttp_client(create_app(settings, clock=clock))


async def _volunteers(client: Any, agency: AgencyFixture, n: int = 3) -> dict[int, str]:
    return await volunteers_near(client, agency, CENTRE, n, step_m=50)


async def _post(client: Any, agency: AgencyFixture, doc: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(f"/v1/cad/{agency.agency_id}/incidents", json=doc, headers=agency.auth)
    assert resp.status == 202, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _not_alertable(db: asyncpg.Connection, incident_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT details FROM response_log WHERE incident_id = $1 AND event = 'not_alertable'"
        " ORDER BY id",
        UUID(incident_id),
    )
    return [r["details"]["reason"] for r in rows]


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


async def test_incident_received_two_years_ago_is_stored_and_never_alerts(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, clock: ManualClock
) -> None:
    await _volunteers(client, agency)
    old = clock.now() - timedelta(days=730)
    created = await _post(client, agency, incident("old-1", received_at=_stamp(old)))
    assert created["status"] == "created"
    assert created["alerts_queued"] == 0
    assert await _not_alertable(db, created["incident_id"]) == ["too_old"]

    # A later snapshot of the same incident cannot lift the block.
    clock.at += timedelta(seconds=5)
    later = await _post(
        client,
        agency,
        incident("old-1", received_at=_stamp(old), updated_at=_stamp(clock.now())),
    )
    assert later["status"] == "updated"
    assert later["alerts_queued"] == 0
    assert await db.fetchval("SELECT count(*) FROM alerts") == 0
    row = await db.fetchrow(
        "SELECT alert_blocked, alerting_started_at FROM incidents WHERE id = $1",
        UUID(created["incident_id"]),
    )
    assert row["alert_blocked"] == "too_old"
    assert row["alerting_started_at"] is None


async def test_the_age_limit_is_the_agencys(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, clock: ManualClock
) -> None:
    await _volunteers(client, agency)
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"max_incident_age_s": 600},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["max_incident_age_s"] == 600
    stale = await _post(
        client, agency, incident("a", received_at=_stamp(clock.now() - timedelta(minutes=11)))
    )
    fresh = await _post(
        client, agency, incident("b", received_at=_stamp(clock.now() - timedelta(minutes=9)))
    )
    assert (stale["alerts_queued"], fresh["alerts_queued"]) == (0, 3)
    assert await _not_alertable(db, stale["incident_id"]) == ["too_old"]
    assert await _not_alertable(db, fresh["incident_id"]) == []


async def test_a_received_time_beyond_the_clock_skew_never_alerts(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, clock: ManualClock
) -> None:
    await _volunteers(client, agency)
    ahead = await _post(
        client, agency, incident("f1", received_at=_stamp(clock.now() + timedelta(minutes=10)))
    )
    within = await _post(
        client, agency, incident("f2", received_at=_stamp(clock.now() + timedelta(minutes=2)))
    )
    assert (ahead["alerts_queued"], within["alerts_queued"]) == (0, 3)
    assert await _not_alertable(db, ahead["incident_id"]) == ["in_future"]
    # The incident's own time catching up later does not make it alertable.
    clock.at += timedelta(minutes=11)
    again = await _post(
        client,
        agency,
        incident(
            "f1",
            received_at=_stamp(clock.now() - timedelta(minutes=1)),
            updated_at=_stamp(clock.now()),
        ),
    )
    assert again["alerts_queued"] == 0


async def test_an_alerting_incident_keeps_working_past_the_age_limit(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, clock: ManualClock
) -> None:
    tokens = await _volunteers(client, agency)
    received = clock.now() - timedelta(minutes=1)
    created = await _post(client, agency, incident("live", received_at=_stamp(received)))
    assert created["alerts_queued"] == 3
    alert = await db.fetchrow("SELECT id, volunteer_id FROM alerts ORDER BY distance_m LIMIT 1")
    resp = await client.post(
        f"/v1/alerts/{alert['id']}/accept",
        headers={"Authorization": f"Bearer {tokens[alert['volunteer_id']]}"},
    )
    assert resp.status == 200

    clock.at += timedelta(minutes=45)
    cancelled = await _post(
        client,
        agency,
        incident(
            "live", received_at=_stamp(received), updated_at=_stamp(clock.now()), status="cancelled"
        ),
    )
    assert cancelled["status"] == "cancelled"
    state = await db.fetchval("SELECT state FROM alerts WHERE id = $1", alert["id"])
    assert state == "released", "the update reached the volunteer who was on the way"
    assert await _not_alertable(db, created["incident_id"]) == []


async def test_an_imprecise_location_alerts_nobody_until_a_precise_one_arrives(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, clock: ManualClock
) -> None:
    await _volunteers(client, agency)
    received = _stamp(clock.now())
    vague = {"lat": CENTRE[0], "lon": CENTRE[1], "uncertainty_m": 5000}
    first = await _post(client, agency, incident("loc", received_at=received, location=vague))
    assert first["alerts_queued"] == 0
    assert await _not_alertable(db, first["incident_id"]) == ["location_imprecise"]

    clock.at += timedelta(seconds=20)
    precise = {"lat": CENTRE[0], "lon": CENTRE[1], "uncertainty_m": 30}
    second = await _post(
        client,
        agency,
        incident("loc", received_at=received, updated_at=_stamp(clock.now()), location=precise),
    )
    assert second["status"] == "updated"
    assert second["alerts_queued"] == 3
    uncertainty = await db.fetchval(
        "SELECT location_uncertainty_m FROM incidents WHERE id = $1", UUID(first["incident_id"])
    )
    assert uncertainty == 30


def _ring(centre: tuple[float, float], radius_m: float) -> str:
    points = [offset(*centre, radius_m * math.cos(a), radius_m * math.sin(a)) for a in range(7)]
    points.append(points[0])
    return " ".join(f"{lat:.5f},{lon:.5f}" for lat, lon in points)


def _cap(area: str, sent: datetime, identifier: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>cad@example.org</sender>
  <sent>{_stamp(sent)}</sent><status>Actual</status><msgType>Alert</msgType>
  <scope>Private</scope>
  <info><category>Health</category><event>Cardiac arrest</event><urgency>Immediate</urgency>
    <severity>Extreme</severity><certainty>Observed</certainty>
    <eventCode><valueName>cad</valueName><value>CA</value></eventCode>
    <area><areaDesc>Dam</areaDesc>{area}</area>
  </info>
</alert>""".encode()


async def test_a_cap_alert_whose_area_is_a_30_km_polygon_alerts_nobody(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, clock: ManualClock
) -> None:
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"call_type_rules": {"codes": ["CA"]}},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200
    await _volunteers(client, agency)
    headers = {**agency.auth, "Content-Type": "application/cap+xml"}
    url = f"/v1/cad/{agency.agency_id}/cap"
    wide = f"<polygon>{_ring(CENTRE, 15_000)}</polygon>"
    resp = await client.post(url, data=_cap(wide, clock.now(), "P1"), headers=headers)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["alerts_queued"] == 0
    assert await _not_alertable(db, body["incident_id"]) == ["location_imprecise"]

    narrow = f"<polygon>{_ring(CENTRE, 60)}</polygon>"
    resp = await client.post(url, data=_cap(narrow, clock.now(), "P2"), headers=headers)
    assert (await resp.json())["alerts_queued"] == 3


@pytest.fixture
async def old_feed() -> AsyncIterator[str]:
    """A CAD feed listing one cardiac arrest received on 2024-04-26 (a real feed did this)."""

    async def handle(request: web.Request) -> web.Response:
        lat, lon = offset(*CENTRE, 20, 0)
        item = {"id": "S1", "type": "09E01", "at": "2024-04-26T10:00:00Z", "la": lat, "lo": lon}
        return web.json_response([item])

    app = web.Application()
    app.router.add_get("/feed", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/feed"))
    finally:
        await server.close()


async def test_a_feed_item_received_two_years_ago_alerts_nobody(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, old_feed: str
) -> None:
    await _volunteers(client, agency)
    mapping = {
        "fields": {"id": "id", "call_type_code": "type", "received_at": "at", "lat": "la"}
        | {"lon": "lo"}
    }
    await feeds.create(db, agency_id=agency.agency_id, name="old", url=old_feed, mapping=mapping)
    # Due by the service's clock, which the test holds still.
    await db.execute("UPDATE cad_feeds SET next_poll_at = now() - interval '1 hour'")

    async def stored() -> Any:
        return await db.fetchval("SELECT id FROM incidents")

    incident_id = await wait_until(stored, timeout_s=10, every_s=0.05, what="the feed's incident")

    async def judged() -> list[str]:
        return await _not_alertable(db, str(incident_id))

    await wait_until(judged, timeout_s=10, every_s=0.05, what="the incident judged")
    assert await _not_alertable(db, str(incident_id)) == ["too_old"]
    assert await db.fetchval("SELECT count(*) FROM alerts") == 0


@pytest.mark.parametrize(
    ("received_offset_s", "expected"),
    [
        (-1801, NotAlertable.TOO_OLD),
        (-1800, None),
        (0, None),
        (300, None),
        (301, NotAlertable.IN_FUTURE),
    ],
)
def test_timing_block_edges(received_offset_s: float, expected: NotAlertable | None) -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    received = now + timedelta(seconds=received_offset_s)
    assert timing_block(received, now, max_age_s=1800, max_skew_s=300) is expected


def test_location_without_a_stated_uncertainty_counts_as_precise() -> None:
    assert not location_imprecise(None, 250)
    assert not location_imprecise(250, 250)
    assert location_imprecise(250.5, 250)
