"""Fixtures for the notify suite: throwaway credentials, wire-level fakes in their own threads."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from notify.errors import AMBIGUOUS_CODES, ErrorCode
from notify.fcm import FcmNotifier
from notify.ports import AlertMessage, Channel, DeliveryOutcome, DeliveryResult, Notifier
from tests.fakes.fcm_server import FakeFcm, TokenEndpointReply
from tests.fakes.twilio_server import FakeTwilio

PROJECT_ID = "cpr-test-project"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token"
MESSAGING_SERVICE_SID = "MG" + "fedcba9876543210" * 2
NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def make_alert(**overrides: Any) -> AlertMessage:
    values: dict[str, Any] = {
        "alert_id": "al-7f3a9c2e4b1d",
        "incident_id": "inc-42",
        "volunteer_id": 7,
        "role": "cpr",
        "address": "device-ok",
        "title": "Cardiac arrest nearby",
        "body": "Hauptstrasse 5, 2nd floor. AED at the pharmacy.",
        "expires_at": NOW + timedelta(seconds=180),
        "data": {"lat": "47.37", "lon": "8.54"},
    }
    values.update(overrides)
    return AlertMessage(**values)


def assert_accepted(result: DeliveryResult, channel: Channel, id_prefix: str) -> None:
    """The provider took the send on ``channel``, naming it with an id that starts ``id_prefix``."""
    assert result.channel is channel
    assert result.outcome is DeliveryOutcome.ACCEPTED, result
    assert result.provider_message_id is not None
    assert result.provider_message_id.startswith(id_prefix)


async def assert_send_times_out(notifier: Notifier, address: str, *, timeout_s: float) -> None:
    """A send to a provider that does not answer ends, soon, as a retryable timeout: a code
    that says the message may have gone anyway."""
    started = time.perf_counter()
    result = await notifier.send(make_alert(address=address), timeout_s=timeout_s)
    elapsed = time.perf_counter() - started
    assert (result.outcome, result.error_code) == (DeliveryOutcome.RETRYABLE, ErrorCode.TIMEOUT)
    assert result.error_code in AMBIGUOUS_CODES
    assert elapsed < 1.5


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def fake_fcm(rsa_key: rsa.RSAPrivateKey) -> Iterator[FakeFcm]:
    public = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fake = FakeFcm(public_key_pem=public).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def service_account_file(
    tmp_path_factory: pytest.TempPathFactory, rsa_key: rsa.RSAPrivateKey, fake_fcm: FakeFcm
) -> Path:
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path_factory.mktemp("creds") / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT_ID,
                "private_key_id": "test-key-1",
                "private_key": pem,
                "client_email": f"notify@{PROJECT_ID}.iam.gserviceaccount.com",
                "client_id": "1234567890",
                "token_uri": fake_fcm.token_uri,
            }
        )
    )
    return path


@pytest.fixture
def fcm_fake(fake_fcm: FakeFcm) -> Iterator[FakeFcm]:
    """The session fake with a clean script and journal for this test."""
    fake_fcm.replies.clear()
    fake_fcm.sends.clear()
    fake_fcm.token_requests = 0
    fake_fcm.token_reply = TokenEndpointReply()
    yield fake_fcm
    fake_fcm.replies.clear()
    fake_fcm.token_reply = TokenEndpointReply()


@pytest.fixture(params=["sdk", "aiohttp"])
async def fcm(
    request: pytest.FixtureRequest, service_account_file: Path, fcm_fake: FakeFcm
) -> AsyncIterator[FcmNotifier]:
    """Both transports: the SDK's send_each_async, and SDK encoding posted over aiohttp."""
    notifier = FcmNotifier(
        service_account_file=service_account_file,
        base_url=fcm_fake.url,
        http_timeout_s=2.0,
        clock=fixed_clock,
        transport=request.param,
    )
    yield notifier
    await notifier.aclose()


@pytest.fixture(scope="session")
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def twilio_fake(fake_twilio: FakeTwilio) -> Iterator[FakeTwilio]:
    fake_twilio.replies.clear()
    fake_twilio.requests.clear()
    fake_twilio.messages.clear()
    yield fake_twilio
    fake_twilio.replies.clear()
