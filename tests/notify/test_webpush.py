"""The Web Push provider against the wire fake, and the fake against forgeries."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from notify.errors import ConfigurationError, ErrorCode
from notify.fcm import FcmNotifier
from notify.payload import push_data
from notify.ports import DeliveryOutcome
from notify.webpush import (
    InvalidSubscription,
    WebPushNotifier,
    b64url,
    dump_private_key,
    encrypt,
    generate_vapid_key,
    load_private_key,
    parse_subscription,
    payload_for,
    public_key_b64,
    subscription_address,
    topic_for,
)
from tests.fakes.webpush import BrowserSubscription, FakeWebPush, PushReply
from tests.notify.conftest import NOW, closed_port, fixed_clock, make_alert

SUBJECT = "mailto:ops@example.org"


@pytest.fixture(scope="module")
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return generate_vapid_key()


@pytest.fixture
async def webpush(vapid_key: ec.EllipticCurvePrivateKey) -> AsyncIterator[WebPushNotifier]:
    notifier = WebPushNotifier(
        vapid_key=vapid_key, subject=SUBJECT, http_timeout_s=2.0, clock=fixed_clock
    )
    yield notifier
    await notifier.aclose()


def _address(sub: BrowserSubscription) -> str:
    parsed = parse_subscription(sub.endpoint, sub.p256dh, sub.auth_b64, allow_http_loopback=True)
    return subscription_address(parsed)


async def test_a_subscription_gets_the_alert_with_the_same_data_keys_as_fcm(
    push: FakeWebPush, webpush: WebPushNotifier, service_account_file: Path
) -> None:
    sub = push.subscribe(webpush.public_key)
    alert = make_alert(address=_address(sub))

    result = await webpush.send(alert, timeout_s=2.0)

    assert result.outcome is DeliveryOutcome.ACCEPTED, result
    assert result.provider_message_id is not None
    (got,) = push.received_by(sub)
    fcm = FcmNotifier(service_account_file=service_account_file, clock=fixed_clock)
    try:
        fcm_data = fcm.build_message(alert, 180).data
    finally:
        await fcm.aclose()
    assert got.payload["data"] == fcm_data == push_data(alert)
    assert got.payload["title"] == alert.title
    assert got.payload["body"] == alert.body
    assert got.headers["Urgency"] == "high"
    assert got.headers["TTL"] == "180"  # the alert's remaining life
    assert got.headers["Topic"] == "al-7f3a9c2e4b1d"
    assert topic_for("0b7e6c1a-1f2d-4c3b-9a8e-7d6c5b4a3f21") == "0b7e6c1a1f2d4c3b9a8e7d6c5b4a3f21"
    assert got.claims["aud"] == push.url
    assert got.claims["sub"] == SUBJECT


@pytest.mark.parametrize(
    ("status", "outcome", "code"),
    [
        (404, DeliveryOutcome.PERMANENT, ErrorCode.UNREGISTERED),
        (410, DeliveryOutcome.PERMANENT, ErrorCode.UNREGISTERED),
        (429, DeliveryOutcome.RETRYABLE, ErrorCode.RATE_LIMITED),
        (503, DeliveryOutcome.RETRYABLE, ErrorCode.SERVER_ERROR),
        (400, DeliveryOutcome.PERMANENT, ErrorCode.PROVIDER_ERROR),
    ],
)
async def test_push_service_answers_map_like_fcm(
    push: FakeWebPush,
    webpush: WebPushNotifier,
    status: int,
    outcome: DeliveryOutcome,
    code: ErrorCode,
) -> None:
    sub = push.subscribe(webpush.public_key)
    push.replies[sub.sub_id] = PushReply(status, retry_after="7" if status == 429 else None)

    result = await webpush.send(make_alert(address=_address(sub)), timeout_s=2.0)

    assert (result.outcome, result.error_code) == (outcome, code)
    assert result.retry_after_s == (7.0 if status == 429 else None)
    assert len(push.received_by(sub)) == 1  # it passed every check before the scripted answer


async def test_a_provider_with_another_vapid_key_is_refused(
    push: FakeWebPush, webpush: WebPushNotifier
) -> None:
    sub = push.subscribe(webpush.public_key)
    impostor = WebPushNotifier(vapid_key=generate_vapid_key(), subject=SUBJECT, clock=fixed_clock)
    try:
        result = await impostor.send(make_alert(address=_address(sub)), timeout_s=2.0)
    finally:
        await impostor.aclose()
    assert (result.outcome, result.error_code) == (DeliveryOutcome.PERMANENT, ErrorCode.AUTH_ERROR)
    assert push.received == []
    assert "not the key" in push.rejections[-1].reason


async def _raw_post(url: str, headers: dict[str, str], body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, headers=headers, data=body) as resp,
    ):
        return resp.status


def _headers(auth: str) -> dict[str, str]:
    return {"Authorization": auth, "TTL": "60", "Content-Encoding": "aes128gcm"}


async def test_the_fake_cannot_be_fooled(
    push: FakeWebPush, vapid_key: ec.EllipticCurvePrivateKey
) -> None:
    """Forged signature, wrong audience, expired token, body for other keys: all refused."""
    public = public_key_b64(vapid_key)
    sub = push.subscribe(public)
    other = push.subscribe(public)
    good = parse_subscription(sub.endpoint, sub.p256dh, sub.auth_b64, allow_http_loopback=True)
    wrong_keys = parse_subscription(
        other.endpoint, other.p256dh, other.auth_b64, allow_http_loopback=True
    )
    body = encrypt(b'{"data":{}}', good)
    now = int(time.time())

    def signed(key: ec.EllipticCurvePrivateKey, **claims: object) -> str:
        base = {"aud": push.url, "exp": now + 3600, "sub": SUBJECT} | claims
        token = Vapid02(key).sign(base)["Authorization"]
        return str(token)

    # Signed by another key but claiming ours (k=): the signature cannot verify.
    forged = signed(generate_vapid_key()).split(", k=")[0] + f", k={public}"
    # Our key, one bit of the signature flipped.
    token = signed(vapid_key)
    t_part = token.split("t=")[1].split(",")[0]
    flipped = t_part[:-2] + ("A" if t_part[-2] != "A" else "B") + t_part[-1]
    tampered = token.replace(t_part, flipped)
    cases = {
        "forged": (forged, body, 403, "signature does not verify"),
        "tampered": (tampered, body, 403, "signature does not verify"),
        "aud": (signed(vapid_key, aud="https://push.example.net"), body, 403, "aud"),
        "expired": (signed(vapid_key, exp=now - 5), body, 403, "exp"),
        "far exp": (signed(vapid_key, exp=now + 25 * 3600), body, 403, "24 hours"),
        "wrong keys": (signed(vapid_key), encrypt(b"{}", wrong_keys), 400, "decrypt"),
    }
    for name, (auth, payload, status, reason) in cases.items():
        got = await _raw_post(sub.endpoint, _headers(auth), payload)
        assert got == status, name
        assert reason in push.rejections[-1].reason, name
    assert push.received == []
    # The control: the same request, honestly signed and encrypted, is accepted.
    assert await _raw_post(sub.endpoint, _headers(signed(vapid_key)), body) == 201
    assert len(push.received) == 1


async def test_expired_alert_and_bad_address_send_nothing(
    push: FakeWebPush, webpush: WebPushNotifier
) -> None:
    sub = push.subscribe(webpush.public_key)
    expired = make_alert(address=_address(sub), expires_at=NOW - timedelta(seconds=1))
    assert (await webpush.send(expired, timeout_s=2.0)).error_code == ErrorCode.EXPIRED
    broken = make_alert(address=json.dumps({"endpoint": sub.endpoint, "keys": {}}))
    result = await webpush.send(broken, timeout_s=2.0)
    assert result.error_code == ErrorCode.INVALID_MESSAGE
    assert sub.endpoint not in (result.detail or "")
    assert push.received == []


async def test_network_failure_is_retryable(webpush: WebPushNotifier) -> None:
    point = ec.generate_private_key(ec.SECP256R1()).public_key()
    from cryptography.hazmat.primitives import serialization

    raw = point.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    sub = parse_subscription(
        f"http://127.0.0.1:{closed_port()}/push/x",
        b64url(raw),
        b64url(b"0123456789abcdef"),
        allow_http_loopback=True,
    )
    result = await webpush.send(make_alert(address=subscription_address(sub)), timeout_s=2.0)
    assert (result.outcome, result.error_code) == (
        DeliveryOutcome.RETRYABLE,
        ErrorCode.NETWORK_ERROR,
    )


def test_a_long_alert_is_cut_to_fit_one_push_record() -> None:
    alert = make_alert(body="x" * 5000, data={"aed_access": "y" * 5000, "lat": "1"})
    raw = payload_for(alert)
    doc = json.loads(raw)
    assert len(raw) <= 3993
    assert doc["data"]["alert_id"] == alert.alert_id
    assert doc["data"]["lat"] == "1"


@pytest.mark.parametrize(
    ("endpoint", "p256dh", "auth", "field"),
    [
        ("http://push.example.org/x", None, None, "endpoint"),
        ("https://user:pw@push.example.org/x", None, None, "endpoint"),
        ("https:///nohost", None, None, "endpoint"),
        ("https://push.example.org:99999/x", None, None, "endpoint"),
        ("http://127.0.0.1:1/x", None, None, "endpoint"),  # loopback only when allowed
        ("https://push.example.org/x", "AAAA", None, "keys/p256dh"),
        ("https://push.example.org/x", "BA" + "A" * 85, None, "keys/p256dh"),  # not on curve
        ("https://push.example.org/x", "!!", None, "keys/p256dh"),
        ("https://push.example.org/x", None, "c2hvcnQ", "keys/auth"),
        ("https://push.example.org/x", None, 16, "keys/auth"),
    ],
)
def test_subscriptions_are_checked_strictly(
    endpoint: str, p256dh: str | None, auth: object, field: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    from cryptography.hazmat.primitives import serialization

    good_point = b64url(
        key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    with pytest.raises(InvalidSubscription) as caught:
        parse_subscription(
            endpoint,
            good_point if p256dh is None else p256dh,
            b64url(b"0123456789abcdef") if auth is None else auth,
        )
    assert caught.value.field == field


def test_stored_key_round_trips_and_is_sealed_by_the_passphrase() -> None:
    key = generate_vapid_key()
    sealed = dump_private_key(key, b"correct horse")
    assert public_key_b64(load_private_key(sealed, b"correct horse")) == public_key_b64(key)
    with pytest.raises(ConfigurationError):
        load_private_key(sealed, None)
    with pytest.raises(ConfigurationError):
        load_private_key(sealed, b"wrong")
    plain = dump_private_key(key, None)
    assert public_key_b64(load_private_key(plain, None)) == public_key_b64(key)
