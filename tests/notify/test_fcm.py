"""FcmNotifier against a wire-level FCM v1 fake, driven by the real firebase-admin SDK."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from notify.errors import DEACTIVATE_DEVICE_CODES, ConfigurationError, ErrorCode
from notify.fcm import FcmNotifier
from notify.ports import Channel, DeliveryOutcome
from tests.fakes.fcm_server import FakeFcm, FcmReply, TokenEndpointReply
from tests.notify._contracts import assert_valid_fcm_message
from tests.notify.conftest import (
    NOW,
    PROJECT_ID,
    assert_accepted,
    assert_send_times_out,
    closed_port,
    fixed_clock,
    make_alert,
)


@contextlib.asynccontextmanager
async def _notifier(
    service_account_file: Path, base_url: str, **options: Any
) -> AsyncIterator[FcmNotifier]:
    """A notifier of its own (not the shared fixture's), on the fixed clock, closed after."""
    notifier = FcmNotifier(
        service_account_file=service_account_file, base_url=base_url, clock=fixed_clock, **options
    )
    try:
        yield notifier
    finally:
        await notifier.aclose()


async def test_send_posts_v1_message_with_android_apns_and_data(
    fcm: FcmNotifier, fcm_fake: FakeFcm
) -> None:
    result = await fcm.send(make_alert(), timeout_s=5)

    assert_accepted(result, Channel.PUSH, f"projects/{PROJECT_ID}/messages/")
    assert result.error_code is None
    assert result.latency_ms > 0
    (sent,) = fcm_fake.sends
    assert sent.path == f"/v1/projects/{PROJECT_ID}/messages:send"
    assert sent.headers["Authorization"].startswith("Bearer ya29.fake-")
    assert fcm.fcm_url == f"{fcm_fake.url}/v1/projects/{PROJECT_ID}/messages:send"
    message = sent.message
    assert message["token"] == "device-ok"
    assert "notification" not in message
    assert message["android"] == {
        "priority": "high",
        "ttl": "180s",
        "collapse_key": "alert-al-7f3a9c2e4b1d",
    }
    headers = message["apns"]["headers"]
    assert headers == {
        "apns-priority": "10",
        "apns-push-type": "alert",
        "apns-expiration": str(int((NOW + timedelta(seconds=180)).timestamp())),
        "apns-collapse-id": "alert-al-7f3a9c2e4b1d",
    }
    aps = message["apns"]["payload"]["aps"]
    assert aps["alert"] == {"title": "Cardiac arrest nearby", "body": make_alert().body}
    assert aps["sound"] == "default"
    assert aps["interruption-level"] == "time-sensitive"
    assert aps["thread-id"] == "incident-inc-42"
    assert message["data"] == {
        "lat": "47.37",
        "lon": "8.54",
        "alert_id": "al-7f3a9c2e4b1d",
        "incident_id": "inc-42",
        "role": "cpr",
        "expires_at": "2026-05-04T12:03:00Z",
    }
    assert_valid_fcm_message(message)


async def test_critical_alert_uses_critical_sound_and_level(
    fcm: FcmNotifier, fcm_fake: FakeFcm
) -> None:
    alert = make_alert(
        critical=True, collapse_key="wave-2", expires_at=NOW + timedelta(seconds=61.9)
    )
    result = await fcm.send(alert, timeout_s=5)

    assert result.outcome is DeliveryOutcome.ACCEPTED
    message = fcm_fake.sends[0].message
    aps = message["apns"]["payload"]["aps"]
    assert aps["sound"] == {"critical": 1, "name": "default", "volume": 1.0}
    assert aps["interruption-level"] == "critical"
    assert message["android"]["ttl"] == "61s"
    assert message["android"]["collapse_key"] == "wave-2"
    assert message["apns"]["headers"]["apns-collapse-id"] == "wave-2"
    assert_valid_fcm_message(message)


async def test_fid_addressing(service_account_file: Path, fcm_fake: FakeFcm) -> None:
    async with _notifier(service_account_file, fcm_fake.url, address_field="fid") as notifier:
        result = await notifier.send(make_alert(address="fid-123"), timeout_s=5)
    assert result.outcome is DeliveryOutcome.ACCEPTED
    message = fcm_fake.sends[0].message
    assert message["fid"] == "fid-123"
    assert "token" not in message
    assert_valid_fcm_message(message)


BAD_TOKEN = "The registration token is not a valid FCM registration token"

ERROR_TABLE = [
    pytest.param(
        FcmReply(404, "UNREGISTERED", "Requested entity was not found."),
        DeliveryOutcome.PERMANENT,
        ErrorCode.UNREGISTERED,
        None,
        id="unregistered",
    ),
    pytest.param(
        FcmReply(403, "SENDER_ID_MISMATCH", "SenderId mismatch"),
        DeliveryOutcome.PERMANENT,
        ErrorCode.SENDER_ID_MISMATCH,
        None,
        id="sender-id-mismatch",
    ),
    pytest.param(
        FcmReply(400, "INVALID_ARGUMENT", BAD_TOKEN),
        DeliveryOutcome.PERMANENT,
        ErrorCode.INVALID_TOKEN,
        None,
        id="invalid-token",
    ),
    pytest.param(
        FcmReply(400, "INVALID_ARGUMENT", "Invalid value", field_violation="message.token"),
        DeliveryOutcome.PERMANENT,
        ErrorCode.INVALID_TOKEN,
        None,
        id="invalid-token-field",
    ),
    pytest.param(
        FcmReply(400, "INVALID_ARGUMENT", "Invalid TTL", field_violation="message.android.ttl"),
        DeliveryOutcome.PERMANENT,
        ErrorCode.INVALID_ARGUMENT,
        None,
        id="invalid-payload",
    ),
    pytest.param(
        FcmReply(429, "QUOTA_EXCEEDED", "Quota exceeded", retry_after="7"),
        DeliveryOutcome.RETRYABLE,
        ErrorCode.QUOTA_EXCEEDED,
        7.0,
        id="quota-exceeded",
    ),
    pytest.param(
        FcmReply(429, None, "Too many requests"),
        DeliveryOutcome.RETRYABLE,
        ErrorCode.RATE_LIMITED,
        None,
        id="bare-429",
    ),
    pytest.param(
        FcmReply(503, "UNAVAILABLE", "Unavailable", retry_after="3"),
        DeliveryOutcome.RETRYABLE,
        ErrorCode.UNAVAILABLE,
        3.0,
        id="unavailable",
    ),
    pytest.param(
        FcmReply(500, "INTERNAL", "Internal error"),
        DeliveryOutcome.RETRYABLE,
        ErrorCode.SERVER_ERROR,
        None,
        id="internal",
    ),
    pytest.param(
        FcmReply(502, None, "Bad gateway"),
        DeliveryOutcome.RETRYABLE,
        ErrorCode.SERVER_ERROR,
        None,
        id="bare-502",
    ),
    pytest.param(
        FcmReply(401, "THIRD_PARTY_AUTH_ERROR", "APNs auth failed"),
        DeliveryOutcome.PERMANENT,
        ErrorCode.THIRD_PARTY_AUTH,
        None,
        id="third-party-auth",
    ),
    pytest.param(
        FcmReply(403, None, "Permission denied on project"),
        DeliveryOutcome.PERMANENT,
        ErrorCode.AUTH_ERROR,
        None,
        id="permission-denied",
    ),
]


@pytest.mark.parametrize(("reply", "outcome", "code", "retry_after"), ERROR_TABLE)
async def test_error_table(
    fcm: FcmNotifier,
    fcm_fake: FakeFcm,
    reply: FcmReply,
    outcome: DeliveryOutcome,
    code: ErrorCode,
    retry_after: float | None,
) -> None:
    fcm_fake.replies["device-bad"] = reply
    result = await fcm.send(make_alert(address="device-bad"), timeout_s=5)

    assert (result.outcome, result.error_code, result.retry_after_s) == (outcome, code, retry_after)
    assert result.provider_message_id is None
    assert result.detail
    assert "device-bad" not in result.detail or code is ErrorCode.INVALID_TOKEN
    if reply.status != 401:
        # SDK retries are off: exactly one request, whatever the status.
        assert len(fcm_fake.sends) == 1
    if code in (ErrorCode.UNREGISTERED, ErrorCode.SENDER_ID_MISMATCH, ErrorCode.INVALID_TOKEN):
        assert code in DEACTIVATE_DEVICE_CODES


async def test_send_many_keeps_order_and_shares_one_token(
    fcm: FcmNotifier, fcm_fake: FakeFcm
) -> None:
    fcm_fake.replies["dead"] = FcmReply(404, "UNREGISTERED", "gone")
    alerts = [
        make_alert(address="a1"),
        make_alert(address="dead"),
        make_alert(address="expired", expires_at=NOW - timedelta(seconds=1)),
        make_alert(address="a2"),
    ]
    results = await fcm.send_many(alerts, timeout_s=5)

    assert [r.outcome for r in results] == [
        DeliveryOutcome.ACCEPTED,
        DeliveryOutcome.PERMANENT,
        DeliveryOutcome.PERMANENT,
        DeliveryOutcome.ACCEPTED,
    ]
    assert [r.error_code for r in results] == [None, "unregistered", "expired", None]
    assert sorted(s.message["token"] for s in fcm_fake.sends) == ["a1", "a2", "dead"]
    assert fcm_fake.token_requests == 1


async def test_expired_alert_is_not_sent(fcm: FcmNotifier, fcm_fake: FakeFcm) -> None:
    result = await fcm.send(make_alert(expires_at=NOW), timeout_s=5)
    assert (result.outcome, result.error_code) == (DeliveryOutcome.PERMANENT, ErrorCode.EXPIRED)
    assert fcm_fake.sends == []


async def test_stalled_fcm_hits_our_deadline(fcm: FcmNotifier, fcm_fake: FakeFcm) -> None:
    await fcm.warm_up()
    fcm_fake.replies["slow"] = FcmReply(delay_s=5)
    await assert_send_times_out(fcm, "slow", timeout_s=0.4)


@pytest.mark.parametrize("transport", ["sdk", "aiohttp"])
async def test_stalled_fcm_hits_the_http_timeout(
    service_account_file: Path, fcm_fake: FakeFcm, transport: Literal["sdk", "aiohttp"]
) -> None:
    async with _notifier(
        service_account_file, fcm_fake.url, http_timeout_s=0.3, transport=transport
    ) as notifier:
        await notifier.warm_up()
        fcm_fake.replies["slow"] = FcmReply(delay_s=5)
        await assert_send_times_out(notifier, "slow", timeout_s=5)
    assert len(fcm_fake.sends) == 1


@pytest.mark.parametrize("transport", ["sdk", "aiohttp"])
async def test_connection_refused_is_retryable(
    service_account_file: Path, fcm_fake: FakeFcm, transport: Literal["sdk", "aiohttp"]
) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    async with _notifier(service_account_file, base_url, transport=transport) as notifier:
        result = await notifier.send(make_alert(), timeout_s=5)
    assert result.outcome is DeliveryOutcome.RETRYABLE
    assert result.error_code in (ErrorCode.UNAVAILABLE, ErrorCode.NETWORK_ERROR)


async def test_refused_credentials_are_permanent_auth_error(
    fcm: FcmNotifier, fcm_fake: FakeFcm
) -> None:
    fcm_fake.token_reply = TokenEndpointReply(status=400, error="invalid_grant")
    result = await fcm.send(make_alert(), timeout_s=5)

    assert (result.outcome, result.error_code) == (DeliveryOutcome.PERMANENT, ErrorCode.AUTH_ERROR)
    assert fcm_fake.sends == []


async def test_warm_up_fetches_token_once(fcm: FcmNotifier, fcm_fake: FakeFcm) -> None:
    await fcm.warm_up()
    assert fcm_fake.token_requests == 1
    await fcm.send(make_alert(), timeout_s=5)
    await fcm.send(make_alert(), timeout_s=5)
    assert fcm_fake.token_requests == 1


def test_missing_service_account_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        FcmNotifier(service_account_file=tmp_path / "missing.json")


async def test_aclose_is_idempotent(service_account_file: Path, fcm_fake: FakeFcm) -> None:
    notifier = FcmNotifier(service_account_file=service_account_file, base_url=fcm_fake.url)
    await notifier.aclose()
    await notifier.aclose()
