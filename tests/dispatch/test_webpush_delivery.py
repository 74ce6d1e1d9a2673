"""Web Push and the live stream in the delivery chain, through the service's HTTP API.

The push service is the wire fake (tests/fakes/webpush.py): it accepts a push only
when our VAPID JWT verifies against the key the subscription was made with and the
body decrypts with the subscription's private key, which only the "browser" holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import asyncpg
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from dispatch.config import Settings
from dispatch.web.app import create_app
from tests.dispatch.accounts_helpers import MovableClock
from tests.dispatch.conftest import AgencyFixture, app_client
from tests.dispatch.helpers import CENTRE, bearer, incident, sms_through, volunteer_at
from tests.fakes.twilio_server import FakeTwilio
from tests.fakes.webpush import BrowserSubscription, FakeWebPush, PushReply

pytestmark = pytest.mark.storage

PHONE = "+15550104242"
PUSH_KEYS = {"alert_id", "incident_id", "role", "expires_at", "call_type"}


@pytest.fixture
def wp_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, webpush_allow_http_loopback=True, live_heartbeat_s=0.2)


@pytest.fixture
async def wp_client(
    wp_settings: Settings, aiohttp_client: Any, clock: MovableClock
) -> TestClient[web.Request, web.Application]:
    """Log provider only (no vendor account), Web Push and live on; a clock the test moves."""
    return await app_client(aiohttp_client, wp_settings, clock)


@pytest.fixture
async def sms_client(
    wp_settings: Settings, twilio: FakeTwilio, aiohttp_client: Any
) -> TestClient[web.Request, web.Application]:
    return await app_client(aiohttp_client, sms_through(wp_settings, twilio))


async def _volunteer(client: Any, agency: AgencyFixture, phone: str | None = None) -> Any:
    phoned = {"phone_e164": phone} if phone else {}
    _, token = await volunteer_at(client, agency, CENTRE, "Ann", **phoned)
    return bearer(token)


async def _subscribe(client: Any, push: FakeWebPush, auth: dict[str, str]) -> BrowserSubscription:
    """What the app does: fetch the key, subscribe in the browser, register the subscription."""
    resp = await client.get("/v1/webpush/key")
    assert resp.status == 200
    sub = push.subscribe((await resp.json())["public_key"])
    body = {"kind": "web_push", "expirationTime": None, **sub.json()}
    resp = await client.put("/v1/me/devices", json=body, headers=auth)
    assert resp.status == 200, await resp.text()
    return sub


async def _post_incident(client: Any, agency: AgencyFixture, name: str, **more: Any) -> str:
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident(name, **more), headers=agency.auth
    )
    assert resp.status == 202, await resp.text()
    incident_id: str = (await resp.json())["incident_id"]
    return incident_id


async def _timeline(client: Any, agency: AgencyFixture, incident_id: str) -> list[Any]:
    resp = await client.get(f"/v1/incidents/{incident_id}/timeline", headers=agency.auth)
    assert resp.status == 200
    events: list[Any] = (await resp.json())["events"]
    return events


async def _wait_for(
    client: Any, agency: AgencyFixture, incident_id: str, event: str, channel: str
) -> list[Any]:
    async with asyncio.timeout(10):
        while True:
            events = await _timeline(client, agency, incident_id)
            if any(e["event"] == event and e["details"].get("channel") == channel for e in events):
                return events
            await asyncio.sleep(0.05)


async def _next_event(stream: ClientResponse, *, timeout_s: float = 5.0) -> tuple[str, Any]:
    """The next SSE event (name, parsed data); comments (heartbeats) are skipped."""
    name, data = "message", ""
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line.startswith(":") or line.startswith("retry:") or line.startswith("id:"):
                continue
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif line == "" and data:
                return name, json.loads(data)


async def test_the_key_is_served_and_subscriptions_are_checked_strictly(
    wp_client: Any, agency: AgencyFixture, push: FakeWebPush, db: asyncpg.Connection
) -> None:
    resp = await wp_client.get("/v1/webpush/key")
    key = (await resp.json())["public_key"]
    assert len(key) == 87
    stored = await db.fetchrow("SELECT public_key, sealed, private_key FROM webpush_vapid_key")
    assert stored["public_key"] == key
    assert key.encode() not in bytes(stored["private_key"])
    auth = await _volunteer(wp_client, agency)
    good = push.subscribe(key).json()
    bad_point = "BA" + "A" * 85  # the right length, not on the curve
    for body, pointer in [
        ({**good, "endpoint": "ftp://push.example.org/x"}, "/endpoint"),
        ({**good, "endpoint": "http://push.example.org/x"}, "/endpoint"),
        ({**good, "keys": {**good["keys"], "p256dh": "short"}}, "/keys/p256dh"),
        ({**good, "keys": {**good["keys"], "p256dh": bad_point}}, "/keys/p256dh"),
        ({**good, "keys": {**good["keys"], "auth": "AAAA"}}, "/keys/auth"),
        ({**good, "keys": {"p256dh": good["keys"]["p256dh"]}}, "/keys/auth"),
        ({**good, "extra": 1}, "/extra"),
    ]:
        resp = await wp_client.put(
            "/v1/me/devices", json={"kind": "web_push", **body}, headers=auth
        )
        assert resp.status == 422, (pointer, await resp.text())
        assert (await resp.json())["pointer"] == pointer
    assert await db.fetchval("SELECT count(*) FROM webpush_subscriptions") == 0
    resp = await wp_client.put("/v1/me/devices", json={"kind": "web_push", **good})
    assert resp.status == 401
    resp = await wp_client.put("/v1/me/devices", json={"kind": "web_push", **good}, headers=auth)
    assert resp.status == 200
    assert (await resp.json())["kind"] == "web_push"
    row = await db.fetchrow("SELECT endpoint, active, vapid_public_key FROM webpush_subscriptions")
    assert (row["endpoint"], row["active"], row["vapid_public_key"]) == (
        good["endpoint"],
        True,
        key,
    )


async def test_a_subscription_gets_the_alert_encrypted_for_it(
    wp_client: Any, agency: AgencyFixture, push: FakeWebPush, db: asyncpg.Connection
) -> None:
    auth = await _volunteer(wp_client, agency)
    sub = await _subscribe(wp_client, push, auth)
    incident_id = await _post_incident(wp_client, agency, "wp-1")
    events = await _wait_for(wp_client, agency, incident_id, "alert_sent", "web_push")
    (got,) = push.received_by(sub)
    alert_id = str(await db.fetchval("SELECT id FROM alerts"))
    assert got.payload["data"]["alert_id"] == alert_id
    assert got.payload["data"]["incident_id"] == incident_id
    assert set(got.payload["data"]) >= PUSH_KEYS
    assert got.payload["title"].startswith("Cardiac arrest")
    assert got.headers["Urgency"] == "high"
    assert 0 < int(got.headers["TTL"]) <= 600  # the alert's remaining life
    sent = next(e for e in events if e["event"] == "alert_sent")
    assert sent["details"]["provider_message_id"].startswith(push.url)
    # The service worker acknowledges: the log step after the push window is not needed.
    resp = await wp_client.post(
        f"/v1/alerts/{alert_id}/ack", json={"channel": "web_push"}, headers=auth
    )
    assert (await resp.json())["state"] == "delivered"
    events = await _timeline(wp_client, agency, incident_id)
    delivered = [e for e in events if e["event"] == "alert_delivered"]
    assert [e["details"]["channel"] for e in delivered] == ["web_push"]


async def test_a_gone_subscription_is_deactivated_and_the_chain_moves_to_sms(
    sms_client: Any,
    agency: AgencyFixture,
    push: FakeWebPush,
    twilio: FakeTwilio,
    db: asyncpg.Connection,
) -> None:
    auth = await _volunteer(sms_client, agency, PHONE)
    sub = await _subscribe(sms_client, push, auth)
    push.replies[sub.sub_id] = PushReply(410)
    incident_id = await _post_incident(sms_client, agency, "wp-410")
    events = await _wait_for(sms_client, agency, incident_id, "alert_sent", "sms")
    names = [(e["event"], e["details"].get("channel") or e["details"].get("next")) for e in events]
    assert ("alert_send_failed", "web_push") in names
    assert ("fallback_brought_forward", "sms") in names
    gone = next(e for e in events if e["event"] == "web_push_deactivated")
    assert gone["details"]["reason"] == "unregistered"
    assert await db.fetchval("SELECT active FROM webpush_subscriptions") is False
    assert len(push.received_by(sub)) == 1
    assert len(twilio.sent_to(PHONE)) == 1


async def test_the_live_stream_gets_the_alert_first_and_its_ack_stops_the_push(
    wp_client: Any,
    agency: AgencyFixture,
    push: FakeWebPush,
    clock: MovableClock,
    db: asyncpg.Connection,
) -> None:
    auth = await _volunteer(wp_client, agency)
    sub = await _subscribe(wp_client, push, auth)
    stream = await wp_client.get("/v1/me/stream", headers=auth)
    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert (await _next_event(stream))[0] == "ready"
    incident_id = await _post_incident(wp_client, agency, "live-1")
    name, event = await _next_event(stream)
    alert_id = str(await db.fetchval("SELECT id FROM alerts"))
    assert name == event["type"] == "alert"
    assert event["data"]["alert_id"] == alert_id
    assert set(event["data"]) >= PUSH_KEYS
    resp = await wp_client.post(
        f"/v1/alerts/{alert_id}/ack", json={"channel": "live"}, headers=auth
    )
    assert resp.status == 200
    # The ack may beat the worker's own record of the send; both end up on the timeline.
    events = await _wait_for(wp_client, agency, incident_id, "alert_sent", "live")
    assert ("alert_delivered", "live") in [
        (e["event"], e["details"].get("channel")) for e in events
    ]
    clock.advance(seconds=16)  # past the agency's 15 s push window
    events = await _wait_for(wp_client, agency, incident_id, "alert_step_skipped", "web_push")
    assert push.received_by(sub) == []
    # A CAD cancel: the stand-down comes down the stream too.
    await _post_incident(wp_client, agency, "live-1", version=2, status="cancelled")
    name, notice = await _next_event(stream)
    assert (name, notice["data"]["alert_id"]) == ("stand_down", alert_id)
    assert notice["data"]["state"] == "stood_down"  # it had not been accepted
    await _wait_for(wp_client, agency, incident_id, "stand_down_sent", "live")
    stream.close()


async def test_without_an_ack_on_the_stream_the_push_follows_after_the_window(
    wp_client: Any, agency: AgencyFixture, push: FakeWebPush, clock: MovableClock
) -> None:
    auth = await _volunteer(wp_client, agency)
    sub = await _subscribe(wp_client, push, auth)
    stream = await wp_client.get("/v1/me/stream", headers=auth)
    assert (await _next_event(stream))[0] == "ready"
    incident_id = await _post_incident(wp_client, agency, "live-2")
    name, event = await _next_event(stream)
    assert name == "alert"
    await _wait_for(wp_client, agency, incident_id, "alert_sent", "live")
    await asyncio.sleep(0.3)
    assert push.received_by(sub) == []  # the push waits for the window
    clock.advance(seconds=16)
    await _wait_for(wp_client, agency, incident_id, "alert_sent", "web_push")
    (got,) = push.received_by(sub)
    assert got.payload["data"] == event["data"]  # one payload, whichever way it came
    stream.close()


async def test_signing_a_session_out_stops_its_subscription_and_export_lists_it(
    wp_client: Any, agency: AgencyFixture, push: FakeWebPush, db: asyncpg.Connection
) -> None:
    from datetime import UTC, datetime, timedelta

    from dispatch.store import accounts as account_store
    from dispatch.store import volunteers as volunteer_store

    volunteer_id, _ = await volunteer_store.create_volunteer(
        db, agency_id=agency.agency_id, display_name="Ann", phone_e164="+15550109999"
    )
    sessions = [
        await account_store.create_session(
            db,
            agency_id=agency.agency_id,
            volunteer_id=volunteer_id,
            device_label=label,
            now=datetime.now(UTC),
            access_ttl=timedelta(minutes=15),
            refresh_ttl=timedelta(days=1),
        )
        for label in ("browser", "phone")
    ]
    browser, phone = ({"Authorization": f"Bearer {s.access_token}"} for s in sessions)
    sub = await _subscribe(wp_client, push, browser)
    export = await (await wp_client.get("/v1/me/export", headers=phone)).json()
    (listed,) = export["web_push_subscriptions"]
    assert (listed["endpoint"], listed["active"]) == (sub.endpoint, True)
    assert "p256dh" not in listed
    assert "auth_secret" not in listed
    resp = await wp_client.delete(f"/v1/me/sessions/{sessions[0].session_id}", headers=phone)
    assert resp.status == 204
    row = await db.fetchrow("SELECT active, deactivated_reason FROM webpush_subscriptions")
    assert (row["active"], row["deactivated_reason"]) == (False, "session_revoked")
    # Registering it again (signed in anew) brings it back.
    await _subscribe_again(wp_client, sub, phone)
    assert await db.fetchval("SELECT active FROM webpush_subscriptions") is True


async def _subscribe_again(client: Any, sub: BrowserSubscription, auth: dict[str, str]) -> None:
    resp = await client.put("/v1/me/devices", json={"kind": "web_push", **sub.json()}, headers=auth)
    assert resp.status == 200


async def test_a_busy_push_service_is_tried_again_like_fcm(
    wp_client: Any, agency: AgencyFixture, push: FakeWebPush
) -> None:
    auth = await _volunteer(wp_client, agency)
    sub = await _subscribe(wp_client, push, auth)
    push.replies[sub.sub_id] = [PushReply(503, retry_after="1"), PushReply(201)]
    incident_id = await _post_incident(wp_client, agency, "wp-503")
    events = await _wait_for(wp_client, agency, incident_id, "alert_sent", "web_push")
    retry = next(e for e in events if e["event"] == "alert_send_retry")
    assert (retry["details"]["channel"], retry["details"]["error_code"]) == (
        "web_push",
        "server_error",
    )
    assert len(push.received_by(sub)) == 2


async def test_with_web_push_off_there_is_no_key_and_no_subscribing(
    wp_settings: Settings, aiohttp_client: Any, agency: AgencyFixture, push: FakeWebPush
) -> None:
    client = await aiohttp_client(
        create_app(dataclasses.replace(wp_settings, webpush_enabled=False))
    )
    resp = await client.get("/v1/webpush/key")
    assert resp.status == 404
    auth = await _volunteer(client, agency)
    body = {"kind": "web_push", **push.subscribe("B" + "A" * 86).json()}
    resp = await client.put("/v1/me/devices", json=body, headers=auth)
    assert resp.status == 404
    assert (await resp.json())["type"].endswith("web-push-disabled")


async def test_a_subscription_made_for_another_key_is_not_used(
    wp_client: Any, agency: AgencyFixture, push: FakeWebPush, db: asyncpg.Connection
) -> None:
    """After the installation's key was replaced, old subscriptions are left out, not sent
    pushes the push service would refuse."""
    auth = await _volunteer(wp_client, agency)
    sub = await _subscribe(wp_client, push, auth)
    await db.execute("UPDATE webpush_subscriptions SET vapid_public_key = 'replaced'")
    incident_id = await _post_incident(wp_client, agency, "wp-old-key")
    await _wait_for(wp_client, agency, incident_id, "alert_sent", "log")
    assert push.received_by(sub) == []


async def test_the_stored_key_is_sealed_once_a_passphrase_is_set(
    database_url: str, db: asyncpg.Connection
) -> None:
    from datetime import UTC, datetime

    from dispatch.service.webpush import load_or_create_key
    from notify.errors import ConfigurationError
    from notify.webpush import public_key_b64

    now = datetime.now(UTC)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        first = public_key_b64(await load_or_create_key(pool, passphrase=None, now=now))
        assert await db.fetchval("SELECT sealed FROM webpush_vapid_key") is False
        again = await load_or_create_key(pool, passphrase="s3cret", now=now)
        assert public_key_b64(again) == first
        assert await db.fetchval("SELECT sealed FROM webpush_vapid_key") is True
        with pytest.raises(ConfigurationError):
            await load_or_create_key(pool, passphrase=None, now=now)
        with pytest.raises(ConfigurationError):
            await load_or_create_key(pool, passphrase="wrong", now=now)
        same = await load_or_create_key(pool, passphrase="s3cret", now=now)
        assert public_key_b64(same) == first
        assert await db.fetchval("SELECT count(*) FROM webpush_vapid_key") == 1
    finally:
        await pool.close()
