"""One agency's volunteers never change another's: shared push tokens and shared phone numbers.

Twilio is the wire fake; inbound texts are signed as Twilio signs them, for the URL
the service believes it is reached on.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dispatch.config import Settings
from dispatch.service.providers import public_base_url
from dispatch.store import agencies as agency_store
from dispatch.web.app import create_app
from notify.twilio_webhooks import SMS_INBOUND_PATH
from tests.dispatch.conftest import TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, AgencyFixture
from tests.dispatch.helpers import CENTRE, bearer, incident, new_volunteer, sms_through, wait_until
from tests.fakes.twilio_server import FakeTwilio

PHONE = "+15550107777"


@pytest.fixture
def twilio_settings(settings: Settings, twilio: FakeTwilio) -> Settings:
    return sms_through(settings, twilio)


@pytest.fixture
async def sms_client(
    twilio_settings: Settings, aiohttp_client: Any
) -> TestClient[web.Request, web.Application]:
    client: TestClient[web.Request, web.Application] = await aiohttp_client(
        create_app(twilio_settings)
    )
    return client


@pytest.fixture
async def other_agency(db: asyncpg.Connection) -> AgencyFixture:
    agency_id, key = await agency_store.create_agency(db, name="Other agency")
    _, supervisor = await agency_store.create_supervisor(db, agency_id=agency_id, name="Sup")
    return AgencyFixture(agency_id, key, supervisor)


async def _volunteer(client: Any, agency: AgencyFixture, phone: str | None = None) -> Any:
    phoned = {"phone_e164": phone} if phone else {}
    volunteer_id, token = await new_volunteer(
        client, agency, "Ann", certified_until="2099-01-01T00:00:00Z", **phoned
    )
    return volunteer_id, bearer(token)


async def _events(client: Any, agency: AgencyFixture, volunteer_id: int) -> list[str]:
    resp = await client.get(
        f"/v1/agencies/{agency.agency_id}/volunteers/{volunteer_id}/events",
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200, await resp.text()
    return [e["event"] for e in (await resp.json())["events"]]


# --- push devices ---------------------------------------------------------------------------


async def _register_device(client: Any, token: str, platform: str, auth: dict[str, str]) -> Any:
    return await client.put(
        "/v1/me/devices", json={"fcm_token": token, "platform": platform}, headers=auth
    )


async def test_a_device_of_another_agencys_volunteer_is_refused_and_stays(
    client: Any, agency: AgencyFixture, other_agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """409 problem naming the token; the first volunteer keeps the device and its push."""
    ann_id, ann = await _volunteer(client, agency)
    _, bob = await _volunteer(client, other_agency)
    token = "shared-fcm-token-" + "x" * 40
    resp = await _register_device(client, token, "android", ann)
    assert resp.status == 200
    before = await db.fetchrow("SELECT * FROM devices")
    resp = await _register_device(client, token, "ios", bob)
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["pointer"] == "/fcm_token"
    assert problem["type"] == "/problems/device-registered-elsewhere"
    after = await db.fetchrow("SELECT * FROM devices")
    assert dict(after) == dict(before)
    assert after["volunteer_id"] == ann_id
    assert await db.fetchval("SELECT count(*) FROM volunteer_events") == 0


async def test_a_device_moves_within_the_agency_with_an_event_for_both(
    client: Any, agency: AgencyFixture, other_agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    ann_id, ann = await _volunteer(client, agency)
    bob_id, bob = await _volunteer(client, agency)
    token = "handed-on-phone-" + "y" * 40
    first = await _register_device(client, token, "android", ann)
    again = await _register_device(client, token, "android", ann)
    assert again.status == 200
    assert await _events(client, agency, ann_id) == [], "re-registering one's own device is no move"
    moved = await _register_device(client, token, "android", bob)
    assert moved.status == 200
    assert (await moved.json())["device_id"] == (await first.json())["device_id"]
    assert await db.fetchval("SELECT volunteer_id FROM devices") == bob_id
    assert await _events(client, agency, ann_id) == ["device_moved_away"]
    assert await _events(client, agency, bob_id) == ["device_moved_in"]
    details = await db.fetchval(
        "SELECT details FROM volunteer_events WHERE volunteer_id = $1", ann_id
    )
    assert details["to_volunteer_id"] == bob_id
    assert token not in str(details), "the token itself is never recorded"
    # Another agency's supervisor cannot read these timelines.
    resp = await client.get(
        f"/v1/agencies/{other_agency.agency_id}/volunteers/{ann_id}/events",
        headers=other_agency.supervisor_auth,
    )
    assert resp.status == 404


async def test_volunteer_events_listing_pages_and_names_bad_parameters(
    client: Any, agency: AgencyFixture
) -> None:
    ann_id, ann = await _volunteer(client, agency)
    _, bob = await _volunteer(client, agency)
    # bob registers it, then it goes to ann, back to bob, and to ann again: three moves,
    # three of them on ann's timeline.
    for n in range(3):
        who = bob if n % 2 == 0 else ann
        resp = await client.put(
            "/v1/me/devices", json={"fcm_token": "z" * 40, "platform": "web"}, headers=who
        )
        assert resp.status == 200
    await client.put("/v1/me/devices", json={"fcm_token": "z" * 40, "platform": "web"}, headers=ann)
    url = f"/v1/agencies/{agency.agency_id}/volunteers/{ann_id}/events"
    resp = await client.get(url, params={"limit": "1"}, headers=agency.supervisor_auth)
    page = (await resp.json())["events"]
    assert len(page) == 1
    resp = await client.get(
        url, params={"limit": "10", "before": str(page[0]["seq"])}, headers=agency.supervisor_auth
    )
    rest = (await resp.json())["events"]
    assert all(e["seq"] < page[0]["seq"] for e in rest)
    assert [e["event"] for e in rest] == ["device_moved_away", "device_moved_in"]
    for params, name in [({"limit": "0"}, "limit"), ({"before": "x"}, "before")]:
        resp = await client.get(url, params=params, headers=agency.supervisor_auth)
        assert resp.status == 400
        assert (await resp.json())["invalid-params"][0]["name"] == name


# --- one phone number in two agencies -------------------------------------------------------


async def _texted_alert(
    client: Any,
    db: asyncpg.Connection,
    twilio: FakeTwilio,
    agency: AgencyFixture,
    volunteer: Any,
    source_id: str,
) -> UUID:
    """Post an incident; wait until its alert was texted to PHONE. Returns the alert id."""
    volunteer_id, auth = volunteer
    resp = await client.put(
        "/v1/me/location", json={"lat": CENTRE[0], "lon": CENTRE[1]}, headers=auth
    )
    assert resp.status == 204
    sent_before = len(twilio.sent_to(PHONE))
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident(source_id), headers=agency.auth
    )
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["alerts_queued"] == 1
    alert_id: UUID = await db.fetchval(
        "SELECT id FROM alerts WHERE volunteer_id = $1 ORDER BY created_at DESC LIMIT 1",
        volunteer_id,
    )

    async def texted() -> bool:
        logged = await db.fetchval(
            "SELECT count(*) FROM response_log WHERE alert_id = $1 AND event = 'alert_sent'",
            alert_id,
        )
        return bool(len(twilio.sent_to(PHONE)) > sent_before and logged)

    await wait_until(texted, timeout_s=10, what="the alert texted and logged")
    return alert_id


async def _text_in(client: Any, settings: Settings, body: str, sid: str) -> str:
    params = {"From": PHONE, "To": "+15550000000", "Body": body, "MessageSid": sid}
    url = public_base_url(settings) + SMS_INBOUND_PATH
    signature = FakeTwilio(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN).sign(url, params)
    resp = await client.post(
        SMS_INBOUND_PATH, data=params, headers={"X-Twilio-Signature": signature}
    )
    assert resp.status == 200, await resp.text()
    text: str = await resp.text()
    return text


async def _timeline_events(
    client: Any, agency: AgencyFixture, db: Any, alert_id: UUID
) -> list[str]:
    incident_id = await db.fetchval("SELECT incident_id FROM alerts WHERE id = $1", alert_id)
    resp = await client.get(f"/v1/incidents/{incident_id}/timeline", headers=agency.auth)
    assert resp.status == 200
    return [e["event"] for e in (await resp.json())["events"]]


async def test_a_yes_from_a_shared_number_answers_only_the_open_alert(
    sms_client: Any,
    twilio_settings: Settings,
    twilio: FakeTwilio,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    db: asyncpg.Connection,
) -> None:
    """The newer alert (other agency) is already declined: YES accepts the open one only."""
    ann = await _volunteer(sms_client, agency, PHONE)
    bob = await _volunteer(sms_client, other_agency, PHONE)
    open_alert = await _texted_alert(sms_client, db, twilio, agency, ann, "open-1")
    closed_alert = await _texted_alert(sms_client, db, twilio, other_agency, bob, "closed-1")
    resp = await sms_client.post(f"/v1/alerts/{closed_alert}/decline", headers=bob[1])
    assert resp.status == 200, await resp.text()
    closed_before = await _timeline_events(sms_client, other_agency, db, closed_alert)

    reply = await _text_in(sms_client, twilio_settings, "yes", "SM" + "1" * 32)

    assert "Please go now" in reply
    assert await db.fetchval("SELECT state FROM alerts WHERE id = $1", open_alert) == "accepted"
    assert await db.fetchval("SELECT state FROM alerts WHERE id = $1", closed_alert) == "declined"
    assert "sms_reply" in await _timeline_events(sms_client, agency, db, open_alert)
    assert await _timeline_events(sms_client, other_agency, db, closed_alert) == closed_before


async def test_an_answer_with_no_open_alert_changes_nothing(
    sms_client: Any,
    twilio_settings: Settings,
    twilio: FakeTwilio,
    agency: AgencyFixture,
    db: asyncpg.Connection,
) -> None:
    ann = await _volunteer(sms_client, agency, PHONE)
    alert = await _texted_alert(sms_client, db, twilio, agency, ann, "done-1")
    resp = await sms_client.post(f"/v1/alerts/{alert}/decline", headers=ann[1])
    assert resp.status == 200
    before = await _timeline_events(sms_client, agency, db, alert)
    await _text_in(sms_client, twilio_settings, "YES", "SM" + "2" * 32)
    assert await db.fetchval("SELECT state FROM alerts WHERE id = $1", alert) == "declined"
    assert await _timeline_events(sms_client, agency, db, alert) == before


async def test_stop_from_a_shared_number_is_recorded_for_each_volunteer_holding_it(
    sms_client: Any,
    twilio_settings: Settings,
    twilio: FakeTwilio,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    db: asyncpg.Connection,
) -> None:
    """The provider blocks the number for the whole account: every holder is opted out,
    each on their own timeline and in their own incident's; START undoes it the same way."""
    ann = await _volunteer(sms_client, agency, PHONE)
    bob = await _volunteer(sms_client, other_agency, PHONE)
    ann_alert = await _texted_alert(sms_client, db, twilio, agency, ann, "stop-a")
    bob_alert = await _texted_alert(sms_client, db, twilio, other_agency, bob, "stop-b")

    assert await _text_in(sms_client, twilio_settings, "STOP", "SM" + "3" * 32) == (
        '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    )
    flags = await db.fetch("SELECT volunteer_id, sms_opt_out FROM volunteer_channels")
    assert {r["volunteer_id"]: r["sms_opt_out"] for r in flags} == {ann[0]: True, bob[0]: True}
    assert await _events(sms_client, agency, ann[0]) == ["sms_opt_out"]
    assert await _events(sms_client, other_agency, bob[0]) == ["sms_opt_out"]
    assert "sms_opt_out" in await _timeline_events(sms_client, agency, db, ann_alert)
    assert "sms_opt_out" in await _timeline_events(sms_client, other_agency, db, bob_alert)
    for alert in (ann_alert, bob_alert):
        assert await db.fetchval("SELECT state FROM alerts WHERE id = $1", alert) == "sent"

    await _text_in(sms_client, twilio_settings, "START", "SM" + "4" * 32)
    assert await _events(sms_client, agency, ann[0]) == ["sms_opt_in", "sms_opt_out"]
    assert await _events(sms_client, other_agency, bob[0]) == ["sms_opt_in", "sms_opt_out"]
    assert not await db.fetchval("SELECT bool_or(sms_opt_out) FROM volunteer_channels")
