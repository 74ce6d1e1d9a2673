"""The fallback chain end to end: the real ``dispatch serve`` process, the real SDKs, wire fakes.

One server process and one database serve the whole module; each test is its
own agency with its own volunteers, so tests do not see each other's alerts.
Everything the fakes received is checked against the vendors' published
contracts at the end of the module (when ``../shared/specs`` is present).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.dispatch.delivery_stack import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    Scenario,
    count,
    new_scenario,
    provider_env,
    service_account,
)
from tests.dispatch.helpers import wait_until
from tests.dispatch.serve_process import ServeProcess, served_database
from tests.fakes.fcm_server import FakeFcm, FcmReply
from tests.fakes.twilio_server import FakeTwilio
from tests.notify._contracts import (
    FCM_SPEC,
    TWILIO_SPEC,
    assert_valid_fcm_message,
    assert_valid_twilio_form,
)

pytestmark = pytest.mark.slow

MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
CALLS = "/2010-04-01/Accounts/{AccountSid}/Calls.json"


@dataclass
class Stack:
    dsn: str
    server: ServeProcess
    fcm: FakeFcm
    twilio: FakeTwilio


@pytest.fixture(scope="module")
def stack(
    admin_dsn: str, template_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fcm = FakeFcm(public_key_pem=public).start()
    twilio = FakeTwilio(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        send_callbacks=True,
    ).start()
    folder = tmp_path_factory.mktemp("delivery")
    sa_file = service_account(folder / "sa.json", key, fcm.token_uri)
    env = provider_env(fcm, twilio, sa_file)
    try:
        with served_database(admin_dsn, template_name, env, folder / "serve.log") as served:
            dsn, server = served
            yield Stack(dsn, server, fcm, twilio)
    finally:
        fcm.stop()
        twilio.stop()
    assert "worker_drain_timeout" not in server.output()
    _check_contracts(fcm, twilio)


def _check_contracts(fcm: FakeFcm, twilio: FakeTwilio) -> None:
    """Every request the fakes received conforms to the vendors' published contracts."""
    if FCM_SPEC.exists():
        for sent in fcm.sends:
            assert_valid_fcm_message(sent.message)
    if TWILIO_SPEC.exists():
        for posted in twilio.posts("/Messages.json"):
            assert_valid_twilio_form(MESSAGES, posted.form, posted.path)
        for posted in twilio.posts("/Calls.json"):
            assert_valid_twilio_form(CALLS, posted.form, posted.path)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _scenario(
    stack: Stack,
    session: aiohttp.ClientSession,
    volunteers: list[tuple[str | None, str | None]],
    *,
    ack_s: int,
    answer_s: int,
) -> Scenario:
    return await new_scenario(
        stack.server.base, session, stack.dsn, ack_s=ack_s, answer_s=answer_s, volunteers=volunteers
    )


async def _post_twilio(
    session: aiohttp.ClientSession,
    stack: Stack,
    path: str,
    params: dict[str, str],
    *,
    forged: bool = False,
) -> aiohttp.ClientResponse:
    url = stack.server.base + path
    signature = stack.twilio.sign(url, params)
    if forged:
        signature = stack.twilio.sign(url, {**params, "Body": "something else"})
    async with session.post(url, data=params, headers={"X-Twilio-Signature": signature}) as resp:
        await resp.read()
        return resp


async def _text_in(
    session: aiohttp.ClientSession, stack: Stack, phone: str, body: str, sid: str
) -> aiohttp.ClientResponse:
    """A text from ``phone`` to the service's number, signed as Twilio signs it."""
    params = {"From": phone, "To": FROM_NUMBER, "Body": body, "MessageSid": sid}
    return await _post_twilio(session, stack, "/v1/twilio/sms-inbound", params)


async def _db_rows(dsn: str, agency_id: Any) -> dict[str, list[str]]:
    """Every row this agency owns, as text (tables all carry agency_id)."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.columns"
                " WHERE column_name = 'agency_id' AND table_schema = 'public'"
            )
        ]
        out = {}
        for table in sorted(tables):
            rows = await conn.fetch(
                f"SELECT t::text AS row FROM {table} t WHERE agency_id = $1 ORDER BY 1", agency_id
            )
            out[table] = [r["row"] for r in rows]
        return out
    finally:
        await conn.close()


async def test_expired_push_token_falls_back_to_sms_and_deactivates_the_device(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    """UNREGISTERED from FCM: the device is switched off and the SMS goes at once; YES accepts."""
    token, phone = "tok-expired-0001", "+15550100001"
    stack.fcm.replies[token] = FcmReply(404, "UNREGISTERED", "Requested entity was not found.")
    scenario = await _scenario(stack, session, [(token, phone)], ack_s=10, answer_s=60)
    incident_id, posted = await scenario.post_incident("expired-1")

    events = await scenario.wait_for(incident_id, lambda e: count(e, "alert_sent", "sms") == 1)
    (sms,) = stack.twilio.sent_to(phone)
    assert sms.at - posted < 10, "the text must not wait for the ack window after a dead token"
    assert "Reply YES" in sms.one("Body")
    names = [e["event"] for e in events]
    assert count(events, "alert_send_failed", "push") == 1
    assert "device_deactivated" in names
    assert names.index("alert_send_failed") < names.index("alert_sent")
    failed = next(e for e in events if e["event"] == "alert_send_failed")
    assert failed["details"]["error_code"] == "unregistered"
    conn = await asyncpg.connect(stack.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT active, deactivated_reason FROM devices WHERE fcm_token = $1", token
        )
        state = await conn.fetchval(
            "SELECT state FROM alerts WHERE incident_id = $1::uuid", incident_id
        )
    finally:
        await conn.close()
    assert row is not None
    assert row["active"] is False
    assert row["deactivated_reason"] == "unregistered"
    assert state in ("sent", "delivered")
    assert len(stack.fcm.sends_to(token)) == 1

    # The volunteer texts back "yes": the alert is accepted.
    resp = await _text_in(session, stack, phone, " yes ", "SM" + "5" * 32)
    assert resp.status == 200
    events = await scenario.wait_for(incident_id, lambda e: count(e, "alert_accepted") == 1)
    assert "sms_reply" in [e["event"] for e in events]


async def test_no_answer_escalates_push_then_sms_then_a_call_and_the_keypad_answers(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    """No ack within N → SMS; no answer within M → voice; pressing 1 accepts."""
    token, phone = "tok-silent-0002", "+15550100002"
    scenario = await _scenario(stack, session, [(token, phone)], ack_s=1, answer_s=1)
    incident_id, _ = await scenario.post_incident("silent-1")

    events = await scenario.wait_for(incident_id, lambda e: count(e, "alert_sent", "voice") == 1)
    (push,) = stack.fcm.sends_to(token)
    (sms,) = stack.twilio.sent_to(phone)
    (call,) = stack.twilio.sent_to(phone, "/Calls.json")
    assert push.at < sms.at < call.at
    assert sms.at - push.at >= 0.9, "the SMS waits for the ack window"
    assert call.at - sms.at >= 0.9, "the call waits for the answer window"
    twiml = call.one("Twiml")
    assert "<Gather" in twiml
    assert twiml.count("<Say") >= 2
    alert_id = next(e["alert_id"] for e in events if e["event"] == "alert_queued")
    # The fake's signed "delivered" callback for the text reached us and was recorded.
    events = await scenario.wait_for(
        incident_id, lambda e: any(x["event"] == "sms_status" for x in e)
    )

    resp = await _post_twilio(
        session,
        stack,
        f"/v1/twilio/voice-gather/{alert_id}",
        {"CallSid": "CA" + "1" * 32, "Digits": "1", "AccountSid": stack.twilio.account_sid},
    )
    assert resp.status == 200
    assert resp.content_type == "text/xml"
    events = await scenario.wait_for(incident_id, lambda e: count(e, "alert_accepted") == 1)
    assert "voice_gather" in [e["event"] for e in events]


async def test_stop_reply_ends_texts_to_that_number(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    """STOP from a number: the next alert skips SMS and calls; START switches texts back on."""
    phone = "+15550100003"
    scenario = await _scenario(stack, session, [(None, phone)], ack_s=1, answer_s=1)
    resp = await _text_in(session, stack, phone, "STOP", "SM" + "3" * 32)
    assert resp.status == 200
    incident_id, _ = await scenario.post_incident("stop-1")

    events = await scenario.wait_for(incident_id, lambda e: count(e, "alert_sent", "voice") == 1)
    assert stack.twilio.sent_to(phone) == []
    assert count(events, "alert_sent", "sms") == 0

    resp = await _text_in(session, stack, phone, "START", "SM" + "4" * 32)
    assert resp.status == 200
    conn = await asyncpg.connect(stack.dsn)
    try:
        opted_out = await conn.fetchval(
            "SELECT sms_opt_out FROM volunteer_channels WHERE volunteer_id = $1",
            scenario.volunteers[0].volunteer_id,
        )
    finally:
        await conn.close()
    assert opted_out is False
    events = await scenario.timeline(incident_id)
    assert "sms_opt_in" in [e["event"] for e in events]


async def test_503_storm_is_retried_with_backoff_and_delivered_in_time(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    """Four 503 UNAVAILABLE answers, then success: retried with growing waits, sent in time."""
    token = "tok-storm-0004"
    storm = [FcmReply(503, "UNAVAILABLE", "The service is currently unavailable.")] * 4
    stack.fcm.replies[token] = [*storm, FcmReply()]
    scenario = await _scenario(stack, session, [(token, None)], ack_s=30, answer_s=60)
    incident_id, posted = await scenario.post_incident("storm-1")

    events = await scenario.wait_for(incident_id, lambda e: count(e, "alert_sent", "push") == 1)
    sends = stack.fcm.sends_to(token)
    assert len(sends) == 5
    retries = [e for e in events if e["event"] == "alert_send_retry"]
    assert [r["details"]["attempt"] for r in retries] == [1, 2, 3, 4]
    assert all(r["details"]["error_code"] == "unavailable" for r in retries)
    sent = next(e for e in events if e["event"] == "alert_sent")
    queued = next(e for e in events if e["event"] == "alert_queued")
    assert sent["at"] > queued["at"]
    assert sends[-1].at - posted < 30, "delivered well inside the alert's life"


async def test_429_retry_after_is_honoured(stack: Stack, session: aiohttp.ClientSession) -> None:
    """429 QUOTA_EXCEEDED with Retry-After: 2 → the next attempt comes at least 2 s later."""
    token = "tok-quota-0005"
    stack.fcm.replies[token] = [
        FcmReply(429, "QUOTA_EXCEEDED", "Quota exceeded", retry_after="2"),
        FcmReply(),
    ]
    scenario = await _scenario(stack, session, [(token, None)], ack_s=30, answer_s=60)
    incident_id, _ = await scenario.post_incident("quota-1")

    await scenario.wait_for(incident_id, lambda e: count(e, "alert_sent", "push") == 1)
    first, second = stack.fcm.sends_to(token)
    assert second.at - first.at >= 2.0


async def test_a_hanging_push_does_not_hold_back_the_next_incidents_alert(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    """FCM hangs on one alert: another incident's alert, queued meanwhile, still goes at once."""
    slow, quick = "tok-hang-0008", "tok-quick-0008"
    stack.fcm.replies[slow] = FcmReply(delay_s=2.5)
    first = await _scenario(stack, session, [(slow, None)], ack_s=30, answer_s=60)
    second = await _scenario(stack, session, [(quick, None)], ack_s=30, answer_s=60)
    first_incident, _ = await first.post_incident("hang-1")

    async def hanging() -> list[Any]:
        return stack.fcm.sends_to(slow)

    await wait_until(hanging, timeout_s=5, every_s=0.01, what="the slow push under way")
    second_incident, posted = await second.post_incident("quick-1")

    await second.wait_for(second_incident, lambda e: count(e, "alert_sent", "push") == 1)
    (sent,) = stack.fcm.sends_to(quick)
    assert sent.at - posted < 1.0, "queued behind the hanging request"
    events = await first.timeline(first_incident)
    assert count(events, "alert_sent", "push") == 0, "the slow one was still out"
    await first.wait_for(first_incident, lambda e: count(e, "alert_sent", "push") == 1)


async def test_answered_or_stood_down_alerts_send_nothing_further(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    """After an answer or a stand-down, the pending SMS and call steps are skipped."""
    answered = ("tok-answer-0006", "+15550100006")
    stood_down = ("tok-stood-0007", "+15550100007")
    scenario = await _scenario(stack, session, [answered, stood_down], ack_s=1, answer_s=1)
    incident_id, _ = await scenario.post_incident("answered-1")
    events = await scenario.wait_for(incident_id, lambda e: count(e, "alert_sent", "push") == 2)
    alerts = {e["volunteer_id"]: e["alert_id"] for e in events if e["event"] == "alert_queued"}
    first, second = scenario.volunteers
    async with session.post(
        f"{stack.server.base}/v1/alerts/{alerts[first.volunteer_id]}/accept", headers=first.auth
    ) as resp:
        assert resp.status == 200, await resp.text()
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(
            "UPDATE alerts SET state = 'stood_down' WHERE id = $1::uuid",
            alerts[second.volunteer_id],
        )
    finally:
        await conn.close()

    events = await scenario.wait_for(
        incident_id, lambda e: count(e, "alert_step_skipped") == 4, timeout_s=8
    )
    for phone in (answered[1], stood_down[1]):
        assert stack.twilio.sent_to(phone) == []
        assert stack.twilio.sent_to(phone, "/Calls.json") == []
    assert count(events, "alert_sent") == 2


async def test_ack_marks_delivered_and_cancels_the_text(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    """The device's ack moves the alert to delivered; the SMS step is then skipped."""
    token, phone = "tok-ack-0008", "+15550100008"
    scenario = await _scenario(stack, session, [(token, phone)], ack_s=2, answer_s=30)
    incident_id, _ = await scenario.post_incident("ack-1")
    events = await scenario.wait_for(incident_id, lambda e: count(e, "alert_sent", "push") == 1)
    alert_id = next(e["alert_id"] for e in events if e["event"] == "alert_queued")
    volunteer = scenario.volunteers[0]
    async with session.post(
        f"{stack.server.base}/v1/alerts/{alert_id}/ack", headers=volunteer.auth
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["state"] == "delivered"
    events = await scenario.wait_for(incident_id, lambda e: count(e, "alert_step_skipped") == 1)
    assert stack.twilio.sent_to(phone) == []
    assert count(events, "alert_delivered") == 1


async def test_forged_twilio_callbacks_are_refused_and_change_nothing(
    stack: Stack, session: aiohttp.ClientSession
) -> None:
    """A bad X-Twilio-Signature: 403 problem+json, and not one row changes."""
    phone = "+15550100009"
    scenario = await _scenario(stack, session, [(None, phone)], ack_s=1, answer_s=60)
    incident_id, _ = await scenario.post_incident("forged-1")
    events = await scenario.wait_for(
        incident_id,
        lambda e: count(e, "alert_sent", "sms") == 1 and count(e, "sms_status") == 2,
    )
    alert_id = next(e["alert_id"] for e in events if e["event"] == "alert_queued")
    before = await _db_rows(stack.dsn, scenario.agency_id)

    for path, params in [
        ("/v1/twilio/sms-inbound", {"From": phone, "Body": "YES"}),
        ("/v1/twilio/sms-inbound", {"From": phone, "Body": "STOP"}),
        ("/v1/twilio/sms-status", {"MessageSid": "SM" + "9" * 32, "MessageStatus": "failed"}),
        (f"/v1/twilio/voice-gather/{alert_id}", {"Digits": "1"}),
    ]:
        resp = await _post_twilio(session, stack, path, params, forged=True)
        assert resp.status == 403, path
        assert resp.content_type == "application/problem+json"
    async with session.post(
        f"{stack.server.base}/v1/twilio/sms-inbound", data={"From": phone, "Body": "YES"}
    ) as resp:
        assert resp.status == 403, "an unsigned request is refused too"

    assert await _db_rows(stack.dsn, scenario.agency_id) == before
    assert not any("accepted" in row for row in before["alerts"])
