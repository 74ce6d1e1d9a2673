"""Benchmark the Web Push provider against the wire fake (not a test).

Printed, after the calibration line:

1. the CPU cost of one push on our side: payload, aes128gcm encryption for one
   subscription (a fresh ephemeral ECDH key each time, as RFC 8291 wants) and the VAPID
   header (signed once per push service and hour, so cached here as in service);
2. ``send_many`` of N alerts to N subscriptions of the fake, against the floor: the same
   number of ready-made requests (already signed and encrypted) posted with aiohttp to
   the same fake, in the same run. The fake verifies and decrypts every request in both
   cases; the ratio is what our provider adds on top of the wire.

The fake runs in a thread of this process, so both legs share one interpreter: compare
the ratio, not the absolute rates, across machines.

    .venv/bin/python bench/webpush.py [--messages 500]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import print_calibration
from notify.ports import AlertMessage
from notify.webpush import (
    WebPushNotifier,
    encrypt,
    generate_vapid_key,
    parse_subscription,
    payload_for,
    subscription_address,
)
from tests.fakes.webpush import FakeWebPush


def _alert(address: str, n: int) -> AlertMessage:
    return AlertMessage(
        alert_id=f"00000000-0000-4000-8000-{n:012d}",
        incident_id="inc-bench",
        volunteer_id=n,
        role="cpr",
        address=address,
        title="Cardiac arrest nearby: CPR needed",
        body="Suspected cardiac arrest 240 m from you at Damstraat 1. Can you go?",
        expires_at=datetime.now(UTC) + timedelta(minutes=10),
        data={"call_type": "09-E-01", "patient_lat": "52.373100", "patient_lon": "4.892600"},
    )


async def main(messages: int) -> None:
    fake = FakeWebPush().start()
    key = generate_vapid_key()
    notifier = WebPushNotifier(vapid_key=key, subject="mailto:bench@example.org")
    try:
        subs = [fake.subscribe(notifier.public_key) for _ in range(messages)]
        parsed = [
            parse_subscription(s.endpoint, s.p256dh, s.auth_b64, allow_http_loopback=True)
            for s in subs
        ]
        alerts = [_alert(subscription_address(p), i) for i, p in enumerate(parsed)]

        started = time.perf_counter()
        bodies = [encrypt(payload_for(a), p) for a, p in zip(alerts, parsed, strict=True)]
        headers = [notifier.authorization(p.endpoint) for p in parsed]
        cpu_us = (time.perf_counter() - started) / messages * 1e6
        print(f"our side per push (payload + aes128gcm + VAPID): {cpu_us:.0f} us")

        # The floor: the same requests, ready-made, posted to the same fake.
        async with aiohttp.ClientSession() as session:

            async def post(url: str, body: bytes, auth: str) -> int:
                async with session.post(
                    url,
                    data=body,
                    headers={"Authorization": auth, "TTL": "600", "Content-Encoding": "aes128gcm"},
                ) as resp:
                    return resp.status

            started = time.perf_counter()
            statuses = await asyncio.gather(
                *(post(p.endpoint, b, h) for p, b, h in zip(parsed, bodies, headers, strict=True))
            )
            bare_s = time.perf_counter() - started
        assert set(statuses) == {201}, set(statuses)

        started = time.perf_counter()
        results = await notifier.send_many(alerts, timeout_s=60)
        ours_s = time.perf_counter() - started
        assert all(r.outcome.value == "accepted" for r in results)
        print(
            f"{messages} pushes: provider {messages / ours_s:.0f}/s, "
            f"ready-made requests {messages / bare_s:.0f}/s, "
            f"ratio (provider time / floor) {ours_s / bare_s:.2f}"
        )
    finally:
        await notifier.aclose()
        fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    print_calibration()
    asyncio.run(main(args.messages))
