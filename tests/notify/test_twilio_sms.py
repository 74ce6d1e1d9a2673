"""TwilioSmsNotifier against a wire-level Twilio REST fake, driven by the real twilio SDK."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from notify._twilio_http import DeadlineTwilioHttpClient
from notify.errors import AMBIGUOUS_CODES, ConfigurationError, ErrorCode
from notify.ports import Channel, DeliveryOutcome
from notify.twilio_sms import TwilioSmsNotifier, build_sms_body, sms_marker
from tests.fakes.twilio_server import FakeTwilio, TwilioReply
from tests.notify._contracts import assert_valid_twilio_form
from tests.notify.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    MESSAGING_SERVICE_SID,
    NOW,
    assert_accepted,
    assert_send_times_out,
    closed_port,
    fixed_clock,
    make_alert,
)

MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
CALLBACK = "https://dispatch.example.org/v1/twilio/sms-status"
TO = "+15551230001"


async def _notifier(base_url: str, **options: Any) -> TwilioSmsNotifier:
    """A notifier for the test account through the messaging service; ``options`` override."""
    settings: dict[str, Any] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "messaging_service_sid": MESSAGING_SERVICE_SID,
        "base_url": base_url,
        "clock": fixed_clock,
    }
    return await TwilioSmsNotifier.create(**(settings | options))


@pytest.fixture
async def sms(twilio_fake: FakeTwilio) -> AsyncIterator[TwilioSmsNotifier]:
    notifier = await _notifier(twilio_fake.url, status_callback_url=CALLBACK, request_timeout_s=2.0)
    async with notifier:
        yield notifier


async def test_send_creates_message_with_validity_and_callback(
    sms: TwilioSmsNotifier, twilio_fake: FakeTwilio
) -> None:
    alert = make_alert(address=TO)
    result = await sms.send(alert, timeout_s=5)

    assert_accepted(result, Channel.SMS, "SM")
    (sent,) = twilio_fake.posts("/Messages.json")
    assert sent.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {auth}"
    assert sent.one("To") == TO
    assert sent.one("MessagingServiceSid") == MESSAGING_SERVICE_SID
    assert "From" not in sent.form
    assert sent.one("ValidityPeriod") == "180"
    assert sent.one("StatusCallback") == CALLBACK
    body = sent.one("Body")
    assert body.startswith("Cardiac arrest nearby: Hauptstrasse 5")
    assert body.endswith(sms_marker(alert.alert_id))
    assert_valid_twilio_form(MESSAGES_PATH, sent.form, sent.path)


async def test_from_number_and_validity_clamped(twilio_fake: FakeTwilio) -> None:
    async with await _notifier(
        twilio_fake.url, messaging_service_sid=None, from_number="+15550009999"
    ) as notifier:
        result = await notifier.send(
            make_alert(address=TO, expires_at=NOW + timedelta(days=2)), timeout_s=5
        )
    assert result.outcome is DeliveryOutcome.ACCEPTED
    (sent,) = twilio_fake.posts("/Messages.json")
    assert sent.one("From") == "+15550009999"
    assert sent.one("ValidityPeriod") == "36000"
    assert "StatusCallback" not in sent.form
    assert_valid_twilio_form(MESSAGES_PATH, sent.form, sent.path)


def test_body_is_capped_and_keeps_marker() -> None:
    alert = make_alert(body="x" * 5000)
    body = build_sms_body(alert)
    assert len(body) <= 1600
    assert body.endswith(sms_marker(alert.alert_id))


async def test_expired_alert_is_not_sent(sms: TwilioSmsNotifier, twilio_fake: FakeTwilio) -> None:
    result = await sms.send(make_alert(address=TO, expires_at=NOW), timeout_s=5)
    assert (result.outcome, result.error_code) == (DeliveryOutcome.PERMANENT, ErrorCode.EXPIRED)
    assert twilio_fake.requests == []


ERROR_TABLE = [
    pytest.param(TwilioReply(429, 20429, "Too Many Requests", retry_after="2"),
                 DeliveryOutcome.RETRYABLE, ErrorCode.RATE_LIMITED, 2.0, id="20429"),
    pytest.param(TwilioReply(429, None, "Too Many Requests"),
                 DeliveryOutcome.RETRYABLE, ErrorCode.RATE_LIMITED, None, id="bare-429"),
    pytest.param(TwilioReply(400, 21610, "Attempt to send to unsubscribed recipient"),
                 DeliveryOutcome.PERMANENT, ErrorCode.SMS_OPT_OUT, None, id="21610-opt-out"),
    pytest.param(TwilioReply(400, 21211, "The 'To' number +15551230001 is not valid."),
                 DeliveryOutcome.PERMANENT, ErrorCode.INVALID_NUMBER, None, id="21211"),
    pytest.param(TwilioReply(400, 30005, "Unknown destination handset"),
                 DeliveryOutcome.PERMANENT, ErrorCode.INVALID_NUMBER, None, id="30005"),
    pytest.param(TwilioReply(400, 30006, "Landline or unreachable carrier"),
                 DeliveryOutcome.PERMANENT, ErrorCode.LANDLINE, None, id="30006-landline"),
    pytest.param(TwilioReply(400, 21606, "From number not SMS capable"),
                 DeliveryOutcome.PERMANENT, ErrorCode.CONFIG_ERROR, None, id="21606"),
    pytest.param(TwilioReply(400, 21611, "Queue full"),
                 DeliveryOutcome.RETRYABLE, ErrorCode.QUEUE_FULL, None, id="21611"),
    pytest.param(TwilioReply(400, 99999, "Something new"),
                 DeliveryOutcome.PERMANENT, ErrorCode.PROVIDER_ERROR, None, id="unknown-4xx"),
    pytest.param(TwilioReply(503, None, "Service Unavailable", retry_after="4"),
                 DeliveryOutcome.RETRYABLE, ErrorCode.SERVER_ERROR, 4.0, id="503"),
    pytest.param(TwilioReply(500, 20500, "Internal Server Error"),
                 DeliveryOutcome.RETRYABLE, ErrorCode.SERVER_ERROR, None, id="500"),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "outcome", "code", "retry_after"), ERROR_TABLE)
async def test_error_table(
    sms: TwilioSmsNotifier,
    twilio_fake: FakeTwilio,
    reply: TwilioReply,
    outcome: DeliveryOutcome,
    code: ErrorCode,
    retry_after: float | None,
) -> None:
    twilio_fake.replies[TO] = reply
    result = await sms.send(make_alert(address=TO), timeout_s=5)

    assert (result.outcome, result.error_code, result.retry_after_s) == (outcome, code, retry_after)
    assert result.detail is not None
    assert "+1555" not in result.detail  # phone numbers never reach the response log
    assert len(twilio_fake.posts("/Messages.json")) == 1  # no SDK retries


async def test_wrong_credentials_are_permanent_auth_error(twilio_fake: FakeTwilio) -> None:
    async with await _notifier(twilio_fake.url, auth_token="wrong") as notifier:
        result = await notifier.send(make_alert(address=TO), timeout_s=5)
    assert (result.outcome, result.error_code) == (DeliveryOutcome.PERMANENT, ErrorCode.AUTH_ERROR)


async def test_concurrent_sends_keep_their_own_retry_after(
    sms: TwilioSmsNotifier, twilio_fake: FakeTwilio
) -> None:
    twilio_fake.replies["+15550000001"] = TwilioReply(429, 20429, "slow down", retry_after="1")
    twilio_fake.replies["+15550000002"] = TwilioReply(429, 20429, "slow down", retry_after="9")
    first, second, third = await asyncio.gather(
        sms.send(make_alert(address="+15550000001"), timeout_s=5),
        sms.send(make_alert(address="+15550000002"), timeout_s=5),
        sms.send(make_alert(address="+15550000003"), timeout_s=5),
    )
    assert (first.retry_after_s, second.retry_after_s, third.retry_after_s) == (1.0, 9.0, None)


async def test_stalled_twilio_hits_our_deadline(
    sms: TwilioSmsNotifier, twilio_fake: FakeTwilio
) -> None:
    twilio_fake.replies[TO] = TwilioReply(delay_s=5)
    await assert_send_times_out(sms, TO, timeout_s=0.4)


async def test_client_request_timeout_applies_without_outer_deadline(
    twilio_fake: FakeTwilio,
) -> None:
    twilio_fake.replies[TO] = TwilioReply(delay_s=5)
    async with await _notifier(twilio_fake.url, request_timeout_s=0.3) as notifier:
        await assert_send_times_out(notifier, TO, timeout_s=30)


async def test_connection_refused_is_retryable() -> None:
    async with await _notifier(f"http://127.0.0.1:{closed_port()}") as notifier:
        result = await notifier.send(make_alert(address=TO), timeout_s=5)
    assert (result.outcome, result.error_code) == (
        DeliveryOutcome.RETRYABLE,
        ErrorCode.NETWORK_ERROR,
    )


async def test_find_existing_after_ambiguous_5xx_prevents_duplicate(
    sms: TwilioSmsNotifier, twilio_fake: FakeTwilio
) -> None:
    alert = make_alert(address=TO)
    twilio_fake.add_message(TO, build_sms_body(make_alert(alert_id="al-other")))
    twilio_fake.replies[TO] = TwilioReply(500, 20500, "oops", create_anyway=True)

    result = await sms.send(alert, timeout_s=5)
    assert result.error_code in AMBIGUOUS_CODES

    existing = await sms.find_existing(alert, timeout_s=5)
    assert existing is not None
    assert existing.outcome is DeliveryOutcome.ACCEPTED
    assert existing.provider_message_id == twilio_fake.messages[0]["sid"]
    (lookup,) = [r for r in twilio_fake.requests if r.method == "GET"]
    assert lookup.query["To"] == TO
    assert len(twilio_fake.posts("/Messages.json")) == 1


async def test_a_follow_up_text_is_not_mistaken_for_the_alert(
    sms: TwilioSmsNotifier, twilio_fake: FakeTwilio
) -> None:
    """A stand-down about the same alert carries its own marker: each lookup finds only its own."""
    alert = make_alert(address=TO)
    notice = make_alert(address=TO, title="Stand down", data={"type": "stand_down"})
    twilio_fake.add_message(TO, build_sms_body(alert))
    assert build_sms_body(notice).endswith(sms_marker(notice.alert_id, "stand_down"))
    assert sms_marker(alert.alert_id) not in build_sms_body(notice)

    assert await sms.find_existing(notice, timeout_s=5) is None
    found = await sms.find_existing(alert, timeout_s=5)
    assert found is not None
    assert found.outcome is DeliveryOutcome.ACCEPTED
    twilio_fake.add_message(TO, build_sms_body(notice))
    found = await sms.find_existing(notice, timeout_s=5)
    assert found is not None
    assert found.provider_message_id == twilio_fake.messages[0]["sid"]


async def test_find_existing_returns_none_when_nothing_was_created(
    sms: TwilioSmsNotifier, twilio_fake: FakeTwilio
) -> None:
    alert = make_alert(address=TO)
    twilio_fake.add_message(TO, build_sms_body(alert), status="failed")
    twilio_fake.add_message("+15559999999", build_sms_body(alert))
    assert await sms.find_existing(alert, timeout_s=5) is None


async def test_find_existing_reports_lookup_failure(
    sms: TwilioSmsNotifier, twilio_fake: FakeTwilio
) -> None:
    async with await _notifier(twilio_fake.url, auth_token="wrong") as broken:
        result = await broken.find_existing(make_alert(address=TO), timeout_s=5)
    assert result is not None
    assert result.outcome is not DeliveryOutcome.ACCEPTED


@pytest.mark.parametrize(
    "senders",
    [
        {},
        {"messaging_service_sid": MESSAGING_SERVICE_SID, "from_number": "+15550009999"},
        {"messaging_service_sid": "MGshort"},
    ],
)
async def test_bad_sender_configuration(senders: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        await TwilioSmsNotifier.create(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, **senders)


async def test_shared_http_client_is_not_closed_by_notifier(twilio_fake: FakeTwilio) -> None:
    http = DeadlineTwilioHttpClient(timeout_s=2, base_url=twilio_fake.url)
    notifier = TwilioSmsNotifier(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        http_client=http,
        from_number="+15550009999",
        clock=fixed_clock,
    )
    await notifier.aclose()
    assert not http.session.closed
    result = await notifier.send(make_alert(address=TO), timeout_s=5)
    assert result.outcome is DeliveryOutcome.ACCEPTED
    await http.close()
    assert http.session.closed
