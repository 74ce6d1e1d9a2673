"""The notice worker: lease due notices, write their words, send them, record the result.

It uses the main pool, never the alerts' delivery pool: a notice must not take a
connection an alert needs.

Notices (codes, credential reminders and reviews, aftercare) share nothing with the
alerts' outbox but the providers: a burst of reminders never delays an alert's claim.
A code is sent once or not at all (no retry after its ten minutes); other notices are
retried with backoff until their own expiry. A push to a device the provider says is
gone deactivates it, and the notice is tried again at once (by text, if no device is
left).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import asyncpg
import structlog

from dispatch.db.types import Conn
from dispatch.domain.clock import Clock
from dispatch.domain.delivery_chain import DEACTIVATE_DEVICE, Step
from dispatch.domain.notice_texts import NoticeKind
from dispatch.service import notices as notice_service
from dispatch.service.providers import Providers
from dispatch.store import devices as device_store
from dispatch.store import notices as notice_store
from dispatch.store import volunteer_events as event_store
from dispatch.store.notices import ClaimedNotice
from dispatch.store.volunteer_events import VolunteerEvent
from dispatch.workers.loop import run_rounds
from notify.ports import DeliveryOutcome, DeliveryResult, Notifier

log = structlog.get_logger(__name__)

_BATCH: Final = 50
_LEASE: Final = timedelta(seconds=60)
_MAX_BACKOFF_S: Final = 300.0


@dataclass(slots=True)
class _Sent:
    notice: ClaimedNotice
    step: Step | None = None
    result: DeliveryResult | None = None
    skipped: bool = False
    dead_devices: tuple[int, ...] = ()


class NoticeWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        providers: Providers,
        clock: Clock,
        *,
        tick_s: float,
        send_timeout_s: float,
    ) -> None:
        self._pool = pool
        self._providers = providers
        self._clock = clock
        self._tick_s = tick_s
        self._send_timeout_s = send_timeout_s
        self.wakeup = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        async def round_() -> bool:
            return await self.run_once() >= _BATCH

        await run_rounds(stop, round_, tick_s=self._tick_s, name="notices", wakeup=self.wakeup)

    async def run_once(self) -> int:
        now = self._clock.now()
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await notice_store.claim_due(conn, now=now, limit=_BATCH, lease=_LEASE)
        if not claimed:
            return 0
        # The words first, on one connection (a few small reads), then the sends at once.
        async with self._pool.acquire() as conn:
            texts = [
                await notice_service.words(conn, n, now) if n.expires_at > now else None
                for n in claimed
            ]
        sent = await asyncio.gather(
            *(self._send(n, t) for n, t in zip(claimed, texts, strict=True))
        )
        async with self._pool.acquire() as conn, conn.transaction():
            for item in sent:
                await self._record(conn, item, self._clock.now())
        return len(claimed)

    async def _send(self, notice: ClaimedNotice, text: tuple[str, str] | None) -> _Sent:
        item = _Sent(notice)
        if text is None:
            # Expired, or no longer relevant (a reminder after a renewal).
            item.skipped = True
            return item
        item.step = notice_service.channel_for(notice, self._providers.configured)
        if item.step is None:
            return item
        if item.step is Step.PUSH and self._providers.push is not None:
            messages = [notice_service.message(notice, d.fcm_token, *text) for d in notice.devices]
            results = await self._providers.push.send_many(messages, timeout_s=self._send_timeout_s)
            accepted = [r for r in results if r.outcome is DeliveryOutcome.ACCEPTED]
            item.result = (accepted or results)[0]
            item.dead_devices = tuple(
                d.device_id
                for d, r in zip(notice.devices, results, strict=True)
                if r.error_code in DEACTIVATE_DEVICE
            )
            return item
        notifier: Notifier | None = (
            self._providers.sms if item.step is Step.SMS else self._providers.log
        )
        assert notifier is not None
        address = notice.phone_e164 or f"volunteer:{notice.volunteer_id}"
        item.result = await notifier.send(
            notice_service.message(notice, address, *text), timeout_s=self._send_timeout_s
        )
        return item

    async def _record(self, conn: Conn, item: _Sent, now: datetime) -> None:
        notice = item.notice
        wipe = notice.kind == NoticeKind.CODE.value
        result = item.result
        channel = item.step.value if item.step is not None else None
        if item.dead_devices and result is not None:
            await device_store.deactivate_devices(
                conn, list(item.dead_devices), reason=result.error_code or "", now=now
            )
            if result.outcome is not DeliveryOutcome.ACCEPTED:
                await notice_store.retry(conn, notice.notice_id, at=now, error=result.error_code)
                return
        if item.skipped:
            await notice_store.finish(
                conn,
                notice.notice_id,
                outcome="skipped",
                channel=None,
                error=None,
                now=now,
                wipe=wipe,
            )
            return
        if result is None:
            await notice_store.finish(
                conn,
                notice.notice_id,
                outcome="failed",
                channel=None,
                error="no_channel",
                now=now,
                wipe=wipe,
            )
            return
        if result.outcome is DeliveryOutcome.RETRYABLE and not wipe:
            delay = min(_MAX_BACKOFF_S, float(2 ** min(notice.attempts, 12)))
            if result.retry_after_s:
                delay = max(delay, result.retry_after_s)
            at = now + timedelta(seconds=delay)
            if at < notice.expires_at:
                await notice_store.retry(conn, notice.notice_id, at=at, error=result.error_code)
                return
        outcome = "sent" if result.outcome is DeliveryOutcome.ACCEPTED else "failed"
        done = await notice_store.finish(
            conn,
            notice.notice_id,
            outcome=outcome,
            channel=channel,
            error=result.error_code,
            now=now,
            wipe=wipe,
        )
        if not done or notice.volunteer_id is None:
            return
        events = [
            VolunteerEvent(
                notice.agency_id,
                notice.volunteer_id,
                f"notice_{outcome}",
                now,
                {"kind": notice.kind, "channel": channel},
            )
        ]
        if notice.kind == NoticeKind.CREDENTIAL_EXPIRED.value:
            events.append(
                VolunteerEvent(
                    notice.agency_id,
                    notice.volunteer_id,
                    "credential_expired",
                    now,
                    {"credential_id": notice.data.get("credential_id")},
                )
            )
        await event_store.append(conn, events)
