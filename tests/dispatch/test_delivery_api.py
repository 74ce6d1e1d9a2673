"""Device registration, channel preferences, receipts and delivery settings over HTTP."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, drained, incident


async def _volunteer(
    client: Any, agency: AgencyFixture, phone: str | None = None
) -> dict[str, str]:
    body: dict[str, Any] = {"display_name": "Ann"}
    if phone:
        body["phone_e164"] = phone
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers", json=body, headers=agency.supervisor_auth
    )
    assert resp.status == 201
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


async def test_device_registration_validates_and_moves_tokens(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """A bad body is a problem naming the field; a token re-registered follows the new owner."""
    ann = await _volunteer(client, agency)
    bob = await _volunteer(client, agency)
    for body, pointer in [
        ({"fcm_token": "short", "platform": "android"}, "/fcm_token"),
        ({"fcm_token": "x" * 40, "platform": "symbian"}, "/platform"),
        ({"fcm_token": "x" * 40, "platform": "ios", "extra": 1}, "/extra"),
    ]:
        resp = await client.put("/v1/me/devices", json=body, headers=ann)
        assert resp.status == 422
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["pointer"] == pointer
    resp = await client.put("/v1/me/devices", json={"fcm_token": "t" * 40, "platform": "ios"})
    assert resp.status == 401
    first = await client.put(
        "/v1/me/devices", json={"fcm_token": "t" * 40, "platform": "ios"}, headers=ann
    )
    assert first.status == 200
    await db.execute("UPDATE devices SET active = false")
    second = await client.put(
        "/v1/me/devices", json={"fcm_token": "t" * 40, "platform": "android"}, headers=bob
    )
    assert (await second.json())["device_id"] == (await first.json())["device_id"]
    row = await db.fetchrow("SELECT volunteer_id, active, platform FROM devices")
    assert row["active"] is True
    assert row["platform"] == "android"
    assert await db.fetchval("SELECT count(*) FROM devices") == 1


async def test_channel_preferences(client: Any, agency: AgencyFixture) -> None:
    ann = await _volunteer(client, agency)
    resp = await client.put(
        "/v1/me/channels", json={"preferred": "sms", "refused": ["voice"]}, headers=ann
    )
    assert resp.status == 200
    assert await resp.json() == {
        "preferred": "sms",
        "refused": ["voice"],
        "sms_opt_out": False,
        "phone_invalid": False,
    }
    for body, pointer in [
        ({"preferred": "pigeon"}, "/preferred"),
        ({"refused": ["push", "sms", "voice"]}, "/refused"),
        ({"preferred": "sms", "refused": ["sms"]}, "/preferred"),
    ]:
        resp = await client.put("/v1/me/channels", json=body, headers=ann)
        assert resp.status == 422
        assert (await resp.json())["pointer"] == pointer


async def test_ack_moves_the_alert_to_delivered_once(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """ack → delivered, logged once; a repeat changes nothing; someone else's alert is 404."""
    ann = await _volunteer(client, agency)
    bob = await _volunteer(client, agency)
    resp = await client.put(
        "/v1/me/location", json={"lat": CENTRE[0], "lon": CENTRE[1]}, headers=ann
    )
    assert resp.status == 204
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("ack-api"), headers=agency.auth
    )
    assert resp.status == 202
    await drained(db)
    alert_id = await db.fetchval("SELECT id FROM alerts")
    resp = await client.post(f"/v1/alerts/{alert_id}/ack", headers=bob)
    assert resp.status == 404
    resp = await client.post(f"/v1/alerts/{alert_id}/ack", headers=ann)
    assert resp.status == 200
    assert await resp.json() == {"alert_id": str(alert_id), "state": "delivered", "changed": True}
    resp = await client.post(f"/v1/alerts/{alert_id}/ack", headers=ann)
    assert (await resp.json())["changed"] is False
    assert (
        await db.fetchval("SELECT count(*) FROM response_log WHERE event = 'alert_delivered'") == 1
    )


async def test_delivery_settings_need_the_agencys_supervisor(
    client: Any, agency: AgencyFixture
) -> None:
    url = f"/v1/agencies/{agency.agency_id}/delivery-settings"
    resp = await client.put(url, json={"push_ack_timeout_s": 5}, headers=agency.auth)
    assert resp.status == 401
    resp = await client.put(url, json={"push_ack_timeout_s": 0}, headers=agency.supervisor_auth)
    assert resp.status == 422
    resp = await client.put(
        url, json={"push_ack_timeout_s": 5, "critical_alerts": True}, headers=agency.supervisor_auth
    )
    assert resp.status == 200
    assert await resp.json() == {
        "push_ack_timeout_s": 5,
        "next_channel_after_s": 45,
        "critical_alerts": True,
    }


async def test_twilio_webhooks_are_refused_when_twilio_is_not_configured(client: Any) -> None:
    """Without an auth token nothing can be verified, so nothing is accepted."""
    resp = await client.post("/v1/twilio/sms-inbound", data={"From": "+15550001111", "Body": "YES"})
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
