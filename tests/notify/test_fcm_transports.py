"""The aiohttp transport sends exactly what the SDK sends, and recovers from a revoked token."""

from __future__ import annotations

from pathlib import Path

from notify.errors import ErrorCode
from notify.fcm import FcmNotifier
from notify.ports import DeliveryOutcome
from tests.fakes.fcm_server import FakeFcm
from tests.notify._contracts import assert_valid_fcm_message
from tests.notify.conftest import fixed_clock, make_alert


async def test_both_transports_send_identical_requests(
    service_account_file: Path, fcm_fake: FakeFcm
) -> None:
    bodies = []
    headers = []
    for transport in ("sdk", "aiohttp"):
        fcm_fake.sends.clear()
        notifier = FcmNotifier(
            service_account_file=service_account_file,
            base_url=fcm_fake.url,
            clock=fixed_clock,
            transport=transport,  # type: ignore[arg-type]
        )
        try:
            result = await notifier.send(make_alert(critical=True), timeout_s=5)
        finally:
            await notifier.aclose()
        assert result.outcome is DeliveryOutcome.ACCEPTED
        (sent,) = fcm_fake.sends
        bodies.append(sent.body)
        headers.append({k.lower() for k in sent.headers})
        assert_valid_fcm_message(sent.message)
    assert bodies[0] == bodies[1]
    wanted = {"authorization", "x-goog-api-format-version", "x-firebase-client", "content-type"}
    assert wanted <= headers[0] & headers[1]


async def test_revoked_access_token_is_retryable_and_refreshed(
    service_account_file: Path, fcm_fake: FakeFcm
) -> None:
    notifier = FcmNotifier(
        service_account_file=service_account_file,
        base_url=fcm_fake.url,
        clock=fixed_clock,
        transport="aiohttp",
    )
    try:
        await notifier.warm_up()
        fcm_fake.issued.clear()  # the fake forgets every token it gave out
        first = await notifier.send(make_alert(), timeout_s=5)
        assert first.outcome is DeliveryOutcome.RETRYABLE
        assert first.error_code == ErrorCode.AUTH_UNAVAILABLE
        second = await notifier.send(make_alert(), timeout_s=5)
        assert second.outcome is DeliveryOutcome.ACCEPTED
    finally:
        await notifier.aclose()
