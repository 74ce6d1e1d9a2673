"""At most one alert on the phone, whatever crashes: SIGKILL between the provider and our record.

The real ``dispatch serve`` process sends a push and an SMS to wire fakes that take the
message and then hold their answer; the test kills the process (SIGKILL) while both
answers are outstanding, so the outbox rows stay leased and unrecorded. After the lease
runs out a second process finds them: the SMS is looked up at Twilio and not sent again,
the push goes again under the same collapse identifiers (so the phone replaces the first
notification), and the timeline says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.dispatch.delivery_stack import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    count,
    new_scenario,
    provider_env,
    service_account,
    start_server,
)
from tests.dispatch.helpers import wait_until
from tests.fakes.fcm_server import FakeFcm, FcmReply
from tests.fakes.twilio_server import FakeTwilio, TwilioReply
from tests.notify._contracts import FCM_SPEC, assert_valid_fcm_message

pytestmark = pytest.mark.slow

# The lease must run out before the second life can take the rows; the send timeout must
# outlast the moment between both fakes having the message and the kill.
SEND_TIMEOUT_S = 3
LEASE_S = 6


@pytest.fixture
def fakes() -> Iterator[tuple[FakeFcm, FakeTwilio, rsa.RSAPrivateKey]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fcm = FakeFcm(public_key_pem=public).start()
    twilio = FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    try:
        yield fcm, twilio, key
    finally:
        fcm.stop()
        twilio.stop()


async def _outbox(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT alert_id, done_at, attempts FROM outbox ORDER BY id")
    finally:
        await conn.close()


async def test_sigkill_after_the_provider_took_the_alert_sends_nothing_twice(
    fakes: tuple[FakeFcm, FakeTwilio, rsa.RSAPrivateKey], database_url: str, tmp_path: Path
) -> None:
    fcm, twilio, key = fakes
    token, phone = "tok-crash-0001", "+15550190001"
    # First answer to each is held (the provider has the message; we never hear back).
    fcm.replies[token] = [FcmReply(delay_s=60), FcmReply()]
    twilio.replies[phone] = TwilioReply(hold_s=60)
    sa_file = service_account(tmp_path / "sa.json", key, fcm.token_uri)
    env = {
        "DATABASE_URL": database_url,
        **provider_env(fcm, twilio, sa_file),
        "DISPATCH_NOTIFIER_SEND_TIMEOUT_S": str(SEND_TIMEOUT_S),
        "DISPATCH_NOTIFIER_LEASE_S": str(LEASE_S),
    }

    first = await start_server(env, tmp_path / "serve1.log")
    try:
        async with aiohttp.ClientSession() as session:
            # One volunteer with a phone only (SMS first), one with a device only (push).
            scenario = await new_scenario(
                first.base,
                session,
                database_url,
                ack_s=120,
                answer_s=120,
                volunteers=[(None, phone), (token, None)],
            )
            incident_id, _ = await scenario.post_incident("crash-wire-1")

            async def both_sent() -> bool:
                return bool(fcm.sends_to(token) and twilio.sent_to(phone))

            await wait_until(both_sent, timeout_s=SEND_TIMEOUT_S, every_s=0.005)
    finally:
        await first.kill()
    assert first.proc.returncode == -9

    # Both providers have the message; our records do not.
    rows = await _outbox(database_url)
    assert len(rows) == 2
    assert all(r["done_at"] is None and r["attempts"] == 1 for r in rows)
    assert len(twilio.messages) == 1

    second = await start_server(env, tmp_path / "serve2.log")
    try:
        async with aiohttp.ClientSession() as session:
            scenario.base, scenario.session = second.base, session
            events = await scenario.wait_for(
                incident_id,
                lambda e: (
                    count(e, "alert_sent", "push") == 1 and count(e, "alert_sent", "sms") == 1
                ),
                timeout_s=LEASE_S + 15,
            )
            # Give a wrong resend time to show itself before counting.
            await asyncio.sleep(1.0)
            events = await scenario.timeline(incident_id)
    finally:
        assert await second.terminate() == 0
    assert "Traceback" not in second.output()

    alerts = {e["volunteer_id"]: e["alert_id"] for e in events if e["event"] == "alert_queued"}
    sms_volunteer, push_volunteer = (v.volunteer_id for v in scenario.volunteers)

    # The SMS was found at Twilio by its marker: one text on the wire, recorded as sent.
    assert len(twilio.sent_to(phone)) == 1
    lookups = [r for r in twilio.requests if r.method == "GET" and r.query.get("To") == phone]
    assert len(lookups) == 1
    (sms_sent,) = [
        e for e in events if e["event"] == "alert_sent" and e["details"]["channel"] == "sms"
    ]
    assert sms_sent["alert_id"] == alerts[sms_volunteer]
    assert sms_sent["details"]["found_existing"] is True
    assert sms_sent["details"]["provider_message_id"] == twilio.messages[0]["sid"]

    # The push went again, with the same collapse identifiers and the alert id in its data.
    first_push, second_push = fcm.sends_to(token)
    push_alert = alerts[push_volunteer]
    for push in (first_push, second_push):
        message = push.message
        assert message["android"]["collapse_key"] == f"alert-{push_alert}"
        assert message["apns"]["headers"]["apns-collapse-id"] == f"alert-{push_alert}"
        assert message["data"]["alert_id"] == push_alert
        if FCM_SPEC.exists():
            assert_valid_fcm_message(message)
    (resent,) = [e for e in events if e["event"] == "alert_resent_after_crash"]
    assert resent["alert_id"] == push_alert
    assert resent["details"]["channel"] == "push"
    assert resent["details"]["collapse_id"] == f"alert-{push_alert}"
    assert resent["details"]["attempt"] == 2
    names = [e["event"] for e in events if e["alert_id"] == push_alert]
    assert names.index("alert_resent_after_crash") < names.index("alert_sent")
    assert count(events, "alert_sent") == 2

    # The two rows the kill left behind are done, each on its second lease; what follows
    # them (the call after an unanswered text) is a new row.
    rows = (await _outbox(database_url))[:2]
    assert all(r["done_at"] is not None for r in rows)
    assert [r["attempts"] for r in rows] == [2, 2]
