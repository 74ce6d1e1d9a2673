"""The outbox worker: lease due chain steps, send them, record results, schedule what follows.

Every outbox row is one step of one alert's fallback chain (push → SMS → voice,
see ``dispatch.domain.delivery_chain``). Intake writes a chain-start row; the
worker turns it into the first step and writes the later steps with their
deadlines as ``available_at``. Polling for due rows is the ticker: a restart,
or another process, picks up every pending step where it was.

Exactly-once towards the volunteer rests on three things: rows are written in
the intake transaction (nothing to send is lost), a row is leased to one worker
at a time (``FOR UPDATE SKIP LOCKED`` plus a lease that outlives the send
timeout), and completion is conditional on the row not being done already. A
crash after the provider accepted but before the result was committed is the
one window left (a database restart in between is not: the result is recorded
once the database is back, and nothing is claimed meanwhile; see
``outbox_records.Bookkeeper``). A row leased again after such a lapsed lease
(``reclaimed``) is an ambiguous send: an SMS is looked up at Twilio before it is
sent again (as after a 5xx), and a push goes again under the same collapse
identifiers (the alert id), so the phone replaces the first notification rather
than showing a second; the alert id travels in every push so the app drops a
duplicate, and the timeline records ``alert_resent_after_crash``. Voice calls
cannot be looked up: one may ring twice.

One claimed batch is sent concurrently (push messages in chunks, one
``send_many`` call each) and finished in one transaction. Up to ``pipeline``
batches are out at once, so a batch waiting on a slow provider answer, or on its
bookkeeping, does not hold back alerts committed meanwhile. The worker claims
from a pool of its own (``dispatch.web.app``): a burst of intake cannot take the
connections the alerts it writes need.

This module is the loop and the sending. What goes out is decided in
``dispatch.domain.delivery_decisions``, what it says is written by
``dispatch.service.alert_messages``, and what a finished batch records is in
``dispatch.workers.outbox_records``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Final, TypeVar

import asyncpg
import structlog

from dispatch.db.pool import DATABASE_ERRORS, is_unavailable
from dispatch.domain import delivery_decisions as decisions
from dispatch.domain.clock import Clock
from dispatch.domain.delivery_chain import Step
from dispatch.domain.delivery_decisions import DueStep
from dispatch.metrics import Metrics
from dispatch.service.alert_messages import compose
from dispatch.service.live import LiveNotifier
from dispatch.service.providers import Providers, SharedPacer
from dispatch.store import alerts as alert_store
from dispatch.store.alerts import ClaimedDelivery, DeviceAddress, WebPushAddress
from dispatch.workers.outbox_records import Attempt, Bookkeeper
from notify.ports import (
    AlertMessage,
    BatchNotifier,
    Channel,
    DeliveryOutcome,
    DeliveryResult,
    Notifier,
)
from notify.retry import UniformRng, next_attempt_delay
from notify.webpush import Subscription, subscription_address

log = structlog.get_logger(__name__)

_CHANNELS: Final = {
    Step.PUSH: Channel.PUSH,
    Step.WEB_PUSH: Channel.WEB_PUSH,
    Step.LIVE: Channel.LIVE,
    Step.SMS: Channel.SMS,
    Step.VOICE: Channel.VOICE,
    Step.LOG: Channel.LOG,
}
_PUSH_CHUNK: Final = 50

_PushJob = tuple[Attempt, DeviceAddress, AlertMessage]
_WebPushJob = tuple[Attempt, WebPushAddress, AlertMessage]
_Target = TypeVar("_Target", DeviceAddress, WebPushAddress)


class OutboxWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        providers: Providers | Notifier,
        clock: Clock,
        metrics: Metrics,
        *,
        poll_s: float,
        batch: int,
        send_timeout_s: float,
        lease_s: float,
        retry_base_s: float = 1.0,
        retry_cap_s: float = 30.0,
        sms_rate_per_s: float = 1.0,
        voice_rate_per_s: float = 1.0,
        sms_sender: str | None = None,
        voice_sender: str | None = None,
        max_in_flight: int = 100,
        pipeline: int = 1,
        rng: UniformRng | None = None,
    ) -> None:
        self._pool = pool
        self._providers = (
            providers if isinstance(providers, Providers) else Providers(log=providers)
        )
        self._clock = clock
        self._metrics = metrics
        self._poll_s = poll_s
        self._batch = batch
        self._pipeline = max(1, pipeline)
        self._send_timeout_s = send_timeout_s
        # The lease must outlive the send timeout, or a slow send could be taken twice.
        # Settings refuses such a pair at start; a caller building the worker itself is
        # told too, rather than given a longer lease than it asked for.
        if lease_s < 2 * send_timeout_s:
            raise ValueError("lease_s must be at least twice send_timeout_s")
        self._lease = timedelta(seconds=lease_s)
        self._backoff = partial(
            next_attempt_delay,
            base_s=retry_base_s,
            cap_s=retry_cap_s,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not security
        )
        # A named sender (number or messaging service) is paced across every process
        # sharing the database; an unnamed one (tests, the log provider) in this process.
        self._sms_pacer = SharedPacer(
            pool if sms_sender else None, f"sms:{sms_sender}", sms_rate_per_s
        )
        self._voice_pacer = SharedPacer(
            pool if voice_sender else None, f"voice:{voice_sender}", voice_rate_per_s
        )
        # Waiting for a pacing slot must end well inside the lease.
        self._max_pace_wait_s = max(0.0, self._lease.total_seconds() / 2 - send_timeout_s)
        # The in-flight cap holds per provider: push goes out in chunks, one batch send each,
        # with no more chunks out at once than keep the cap.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._push_chunk = max(1, min(_PUSH_CHUNK, max_in_flight))
        self._push_chunks = asyncio.Semaphore(max(1, max_in_flight // self._push_chunk))
        self._finishing = asyncio.Semaphore(self._pipeline)
        self.wakeup = asyncio.Event()
        self._book = Bookkeeper(pool, clock, self._backoff)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; batches already leased are finished first (drain).

        Claiming does not wait for the previous batch to be sent and recorded: up to
        ``pipeline`` batches are being sent at once, so alerts committed while one batch
        is out are leased and sent at once. A batch gives its slot back when its sends
        are answered, not when its bookkeeping is committed: in a burst the small first
        claims would otherwise hold every slot through their finishing transactions
        while later incidents' alerts wait (up to ``pipeline`` batches are finishing at
        once, a bound of their own).
        """
        slots = asyncio.Semaphore(self._pipeline)
        batches: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            batches.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox_batch_failed", error=repr(task.exception()))

        try:
            while not stop.is_set():
                if self._book.waiting:
                    # Nothing new is claimed while a sent batch waits to be recorded: its
                    # rows' lease may lapse meanwhile, and a claim would send them again.
                    await asyncio.sleep(self._poll_s)
                    continue
                await slots.acquire()
                # Cleared before claiming: a commit during the claim leaves it set, so the
                # rows it made are claimed next round rather than at the next poll.
                self.wakeup.clear()
                now = self._clock.now()
                claimed = await self._claim(now)
                if claimed:
                    task = asyncio.create_task(self._deliver(claimed, now, slots.release))
                    batches.add(task)
                    task.add_done_callback(done)
                    continue
                slots.release()
                try:
                    async with asyncio.timeout(self._poll_s):
                        await self.wakeup.wait()
                except TimeoutError:
                    pass
        finally:
            # Leased rows are ours until their lease runs out: finish them rather than
            # leave them for another worker to retry after the lease.
            await asyncio.gather(*batches, return_exceptions=True)

    async def _claim(self, now: datetime) -> list[ClaimedDelivery]:
        """Due rows leased to us; none when the database cannot be reached (logged)."""
        try:
            # One statement, so its own transaction: no BEGIN and COMMIT round trips.
            async with self._pool.acquire() as conn:
                return await alert_store.claim_due(
                    conn, now=now, limit=self._batch, lease=self._lease
                )
        except DATABASE_ERRORS as exc:
            if is_unavailable(exc):
                log.warning("outbox_cycle_failed", error=type(exc).__name__)
            else:
                log.exception("outbox_cycle_failed")
            return []

    async def _deliver(
        self, claimed: Sequence[ClaimedDelivery], now: datetime, sent: Callable[[], None]
    ) -> None:
        """Send a claimed batch, call ``sent``, then record it."""
        try:
            # Read once per batch: the set is built from every provider slot.
            configured = self._providers.configured
            attempts = [self._prepare(d, now, configured) for d in claimed]
            await self._send_all(attempts)
        finally:
            sent()
        for a in attempts:
            if a.result is not None:
                self._metrics.notifications.labels(
                    a.result.channel.value, a.result.outcome.value
                ).inc()
        async with self._finishing:
            await self._book.record(attempts)

    def _prepare(
        self, delivery: ClaimedDelivery, now: datetime, configured: frozenset[Step]
    ) -> Attempt:
        plan = decisions.plan_step(
            _due(delivery, self._providers.live), configured=configured, now=now
        )
        attempt = Attempt(
            delivery,
            step=plan.step,
            later=plan.later,
            notice=plan.notice,
            skip_reason=plan.skip_reason,
        )
        if plan.failure is not None:
            attempt.result = DeliveryResult(
                channel=_CHANNELS[plan.step] if plan.step is not None else Channel.LOG,
                outcome=DeliveryOutcome.PERMANENT,
                latency_ms=0.0,
                error_code=plan.failure,
                detail=plan.failure_detail,
            )
        return attempt

    # --- sending --------------------------------------------------------------------------

    async def _send_all(self, attempts: Sequence[Attempt]) -> None:
        todo = [a for a in attempts if a.result is None and a.skip_reason is None]
        push = [a for a in todo if a.step is Step.PUSH]
        web_push = [a for a in todo if a.step is Step.WEB_PUSH]
        others = [a for a in todo if a.step not in (Step.PUSH, Step.WEB_PUSH)]
        await asyncio.gather(
            self._send_push(push),
            self._send_web_push(web_push),
            *(self._send_one(a) for a in others),
        )
        await self._notices_to_live([a for a in attempts if a.notice and a.skip_reason is None])

    async def _notices_to_live(self, attempts: Sequence[Attempt]) -> None:
        """Stand-down notices also go down an open live stream, whichever step carries them
        (once: not again when the notice's own step is retried)."""
        live = self._providers.live
        if live is None:
            return
        for attempt in attempts:
            d = attempt.delivery
            if d.attempts > 1 or not live.hub.has_stream(d.alert.volunteer_id):
                continue
            message = compose(d, Step.LIVE, f"volunteer:{d.alert.volunteer_id}", ios=False)
            attempt.live_notice = await live.send(message, timeout_s=self._send_timeout_s)

    async def _send_web_push(self, attempts: Sequence[Attempt]) -> None:
        web_push = self._providers.web_push
        if not attempts or web_push is None:
            return
        jobs: list[_WebPushJob] = [
            (
                a,
                sub,
                compose(
                    a.delivery,
                    Step.WEB_PUSH,
                    subscription_address(Subscription(sub.endpoint, sub.p256dh, sub.auth)),
                    ios=False,
                ),
            )
            for a in attempts
            for sub in a.delivery.web_push
        ]
        await self._send_in_chunks(
            web_push, Channel.WEB_PUSH, jobs, attempts, lambda a: a.per_subscription
        )

    async def _send_push(self, attempts: Sequence[Attempt]) -> None:
        fcm = self._providers.push
        if not attempts or fcm is None:
            return
        jobs: list[_PushJob] = [
            (
                a,
                device,
                compose(a.delivery, Step.PUSH, device.fcm_token, ios=device.platform == "ios"),
            )
            for a in attempts
            for device in a.delivery.devices
        ]
        await self._send_in_chunks(fcm, Channel.PUSH, jobs, attempts, lambda a: a.per_device)

    async def _send_in_chunks(
        self,
        notifier: BatchNotifier,
        channel: Channel,
        jobs: list[tuple[Attempt, _Target, AlertMessage]],
        attempts: Sequence[Attempt],
        per_target: Callable[[Attempt], list[tuple[_Target, DeliveryResult]]],
    ) -> None:
        """One batch call per chunk of ``jobs``; an attempt's result is its best target's."""
        size = self._push_chunk

        async def chunk(part: list[tuple[Attempt, _Target, AlertMessage]]) -> None:
            async with self._push_chunks:
                results = await self._bounded(
                    notifier.send_many([m for _, _, m in part], timeout_s=self._send_timeout_s),
                    [channel] * len(part),
                )
            for (attempt, target, _), result in zip(part, results, strict=True):
                per_target(attempt).append((target, result))

        await asyncio.gather(*(chunk(jobs[i : i + size]) for i in range(0, len(jobs), size)))
        for attempt in attempts:
            attempt.result = _best_of([r for _, r in per_target(attempt)])
            attempt.resent = attempt.delivery.reclaimed

    async def _bounded(
        self, call: Awaitable[list[DeliveryResult]], channels: list[Channel]
    ) -> list[DeliveryResult]:
        """Our own deadline around a provider call that is supposed to keep its own."""
        try:
            async with asyncio.timeout(self._send_timeout_s + 1):
                return await call
        except TimeoutError:
            return [
                DeliveryResult(
                    channel=c,
                    outcome=DeliveryOutcome.RETRYABLE,
                    latency_ms=self._send_timeout_s * 1000,
                    error_code="timeout",
                )
                for c in channels
            ]

    async def _send_one(self, attempt: Attempt) -> None:
        d = attempt.delivery
        step = attempt.step
        assert step is not None
        notifier = self._providers.notifier(step)
        assert notifier is not None
        address = (
            f"volunteer:{d.alert.volunteer_id}"
            if step in (Step.LOG, Step.LIVE)
            else d.phone_e164 or ""
        )
        message = compose(d, step, address, ios=False)
        # A reclaimed row may have been created at Twilio before the crash: look before sending.
        verify = step is Step.SMS and (d.verify_before_send or d.reclaimed)
        if verify and await self._found_at_provider(attempt, message):
            return
        if step in (Step.SMS, Step.VOICE) and not await self._paced(attempt, step):
            return
        async with self._in_flight:
            (attempt.result,) = await self._bounded(
                _one(notifier.send(message, timeout_s=self._send_timeout_s)), [_CHANNELS[step]]
            )
        attempt.resent = d.reclaimed and step is not Step.SMS
        attempt.verify_next = decisions.may_be_at_provider(step, attempt.result.error_code)

    async def _found_at_provider(self, attempt: Attempt, message: AlertMessage) -> bool:
        """Whether a lookup settled this text (found it, or failed): then nothing is sent."""
        sms = self._providers.sms
        if sms is None:
            return False
        found = await sms.find_existing(message, timeout_s=self._send_timeout_s)
        if found is None:
            return False
        attempt.result = found
        attempt.found_existing = found.outcome is DeliveryOutcome.ACCEPTED
        attempt.verify_next = not attempt.found_existing
        return True

    async def _paced(self, attempt: Attempt, step: Step) -> bool:
        """Wait for the sender's next slot; False (a retry is set) when it is too far off."""
        pacer = self._sms_pacer if step is Step.SMS else self._voice_pacer
        wait = await pacer.reserve(self._max_pace_wait_s)
        if wait is None:
            attempt.result = DeliveryResult(
                channel=_CHANNELS[step],
                outcome=DeliveryOutcome.RETRYABLE,
                latency_ms=0.0,
                error_code=decisions.PACED,
                retry_after_s=self._max_pace_wait_s or 1.0,
            )
            return False
        if wait > 0:
            await asyncio.sleep(wait)
        return True


def _due(delivery: ClaimedDelivery, live: LiveNotifier | None) -> DueStep:
    return DueStep(
        channel=delivery.channel,
        state=delivery.alert.state,
        expires_at=delivery.expires_at,
        reach=decisions.reach_of(
            has_device=bool(delivery.devices),
            phone_e164=delivery.phone_e164,
            sms_opt_out=delivery.sms_opt_out,
            phone_invalid=delivery.phone_invalid,
            preferred=delivery.preferred,
            refused=delivery.refused,
            has_web_push=bool(delivery.web_push),
            has_live=live is not None and live.hub.has_stream(delivery.alert.volunteer_id),
        ),
        ack_timeout_s=delivery.ack_timeout_s,
        next_channel_after_s=delivery.next_channel_after_s,
    )


async def _one(call: Awaitable[DeliveryResult]) -> list[DeliveryResult]:
    return [await call]


def _best_of(results: Sequence[DeliveryResult]) -> DeliveryResult:
    best, wait = decisions.best_of(results)
    return best if wait == best.retry_after_s else replace(best, retry_after_s=wait)
