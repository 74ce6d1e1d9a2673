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
one window left. A row leased again after such a lapsed lease (``reclaimed``) is
an ambiguous send: an SMS is looked up at Twilio before it is sent again (as after
a 5xx), and a push goes again under the same collapse identifiers (the alert id), so
the phone replaces the first notification rather than showing a second; the alert
id travels in every push so the app drops a duplicate, and the timeline records
``alert_resent_after_crash``. Voice calls cannot be looked up: one may ring twice.

One claimed batch is sent concurrently (push messages in chunks, one
``send_many`` call each) and finished in one transaction. Up to ``pipeline``
batches are out at once, so a batch waiting on a slow provider answer, or on its
bookkeeping, does not hold back alerts committed meanwhile. The worker claims
from a pool of its own (``dispatch.web.app``): a burst of intake cannot take the
connections the alerts it writes need.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
import structlog

from dispatch.db.pool import DATABASE_ERRORS, is_unavailable
from dispatch.domain import delivery_chain as chain
from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.domain.clock import Clock
from dispatch.domain.delivery_chain import Step
from dispatch.metrics import Metrics
from dispatch.service.delivery import Providers, SharedPacer
from dispatch.store import alerts as alert_store
from dispatch.store import delivery as delivery_store
from dispatch.store import devices as device_store
from dispatch.store import response_log
from dispatch.store.alerts import ClaimedDelivery, DeviceAddress
from dispatch.store.delivery import NewStep
from dispatch.store.response_log import LogEvent
from notify.fcm import alert_collapse_id
from notify.ports import AlertMessage, Channel, DeliveryOutcome, DeliveryResult, Notifier
from notify.retry import UniformRng, next_attempt_delay

log = structlog.get_logger(__name__)

_CHANNELS: Final = {
    Step.PUSH: Channel.PUSH,
    Step.SMS: Channel.SMS,
    Step.VOICE: Channel.VOICE,
    Step.LOG: Channel.LOG,
}
_PACED: Final = "paced"
_PUSH_CHUNK: Final = 50


def _stand_down_message(delivery: ClaimedDelivery, address: str) -> AlertMessage:
    alert = delivery.alert
    released = alert.state is AlertState.RELEASED
    return AlertMessage(
        alert_id=str(alert.alert_id),
        incident_id=str(alert.incident_id),
        volunteer_id=alert.volunteer_id,
        role=delivery.role,
        address=address,
        title="Stand down: you are no longer needed",
        body=(
            "The incident is over. Thank you for going."
            if released
            else "Enough responders are on the way. Thank you."
        ),
        expires_at=delivery.expires_at,
        language=delivery.language,
        data={"type": "stand_down", "state": alert.state.value},
    )


def _test_message(delivery: ClaimedDelivery, address: str, *, critical: bool) -> AlertMessage:
    """A volunteer's self-test: rings like an alert, says it is a test, sends nobody anywhere."""
    alert = delivery.alert
    return AlertMessage(
        alert_id=str(alert.alert_id),
        incident_id=str(alert.incident_id),
        volunteer_id=alert.volunteer_id,
        role=delivery.role,
        address=address,
        title="TEST alert: no action needed",
        body="This is the test you asked for. If it rang through, real alerts will too.",
        expires_at=delivery.expires_at,
        language=delivery.language,
        data={"type": "test", "test": "true"},
        critical=critical,
    )


def _message(delivery: ClaimedDelivery, step: Step, address: str, *, ios: bool) -> AlertMessage:
    if delivery.channel == chain.STAND_DOWN:
        return _stand_down_message(delivery, address)
    if delivery.role == "test":
        return _test_message(delivery, address, critical=ios and delivery.critical_alerts)
    alert = delivery.alert
    where = f" at {delivery.address_text}" if delivery.address_text else ""
    how = {
        Step.SMS: "Reply YES to go or NO to decline.",
        Step.VOICE: "",
    }.get(step, "Can you go? Answer in the app.")
    data = {"call_type": delivery.call_type_code}
    if delivery.patient is not None:
        data |= {
            "patient_lat": f"{delivery.patient[0]:.6f}",
            "patient_lon": f"{delivery.patient[1]:.6f}",
        }
    if delivery.aed is not None and delivery.role == "aed":
        where += f". First fetch the AED at {delivery.aed.name}"
        data |= {
            "aed_name": delivery.aed.name,
            "aed_lat": f"{delivery.aed.lat:.6f}",
            "aed_lon": f"{delivery.aed.lon:.6f}",
            "aed_access": delivery.aed.access or "",
        }
    return AlertMessage(
        alert_id=str(alert.alert_id),
        incident_id=str(alert.incident_id),
        volunteer_id=alert.volunteer_id,
        role=delivery.role,
        address=address,
        title="Cardiac arrest nearby: CPR needed",
        body=f"Suspected cardiac arrest {round(delivery.distance_m)} m from you{where}. {how}",
        expires_at=delivery.expires_at,
        language=delivery.language,
        data=data,
        critical=ios and delivery.critical_alerts,
    )


@dataclass(frozen=True, slots=True)
class _Decision:
    outcome: str
    """``sent``, ``failed``, ``skipped`` (the row is done) or ``retry``."""
    error: str | None = None
    ref: str | None = None
    retry_at: datetime | None = None


def _step_value(step: Step | None) -> str | None:
    return None if step is None else step.value


@dataclass(slots=True)
class _Attempt:
    """One claimed row on its way through a cycle."""

    delivery: ClaimedDelivery
    step: Step | None = None
    later: list[chain.PlannedStep] = field(default_factory=list)
    result: DeliveryResult | None = None
    skip_reason: str | None = None
    per_device: list[tuple[DeviceAddress, DeliveryResult]] = field(default_factory=list)
    verify_next: bool = False
    found_existing: bool = False
    """An SMS lookup found the text already at the provider; nothing was sent."""
    resent: bool = False
    """Sent again although an earlier, unrecorded attempt may have reached the provider."""
    notice: bool = False
    """A stand-down notice rather than a step of the alert's chain."""


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
        sender: str | None = None,
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
        self._lease = timedelta(seconds=max(lease_s, send_timeout_s * 2))
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        # Named by its number, a sender is paced across every process sharing the database.
        shared = pool if sender is not None else None
        self._sms_pacer = SharedPacer(shared, f"sms:{sender}", sms_rate_per_s)
        self._voice_pacer = SharedPacer(shared, f"voice:{sender}", voice_rate_per_s)
        # Waiting for a pacing slot must end well inside the lease.
        self._max_pace_wait_s = max(0.0, self._lease.total_seconds() / 2 - send_timeout_s)
        # The in-flight cap holds per provider. Push goes out in chunks (one send_each_async
        # call each) so that no more than the cap wait inside httpx's connection pool, whose
        # bookkeeping grows with the square of the requests queued in it.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._push_chunk = max(1, min(_PUSH_CHUNK, max_in_flight))
        self._push_chunks = asyncio.Semaphore(max(1, max_in_flight // self._push_chunk))
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.wakeup = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; batches already leased are finished first (drain).

        Claiming does not wait for the previous batch to be sent and recorded: up to
        ``pipeline`` batches are in flight, so alerts committed while one batch is out
        are leased and sent at once instead of queueing behind its bookkeeping.
        """
        slots = asyncio.Semaphore(self._pipeline)
        batches: set[asyncio.Task[None]] = set()

        def done(task: asyncio.Task[None]) -> None:
            batches.discard(task)
            slots.release()
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox_batch_failed", error=repr(task.exception()))

        try:
            while not stop.is_set():
                await slots.acquire()
                # Cleared before claiming: a commit during the claim leaves it set, so the
                # rows it made are claimed next round rather than at the next poll.
                self.wakeup.clear()
                now = self._clock.now()
                try:
                    claimed = await self._claim(now)
                except DATABASE_ERRORS as exc:
                    if is_unavailable(exc):
                        log.warning("outbox_cycle_failed", error=type(exc).__name__)
                    else:
                        log.exception("outbox_cycle_failed")
                    claimed = []
                if claimed:
                    task = asyncio.create_task(self._deliver(claimed, now))
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
        async with self._pool.acquire() as conn, conn.transaction():
            return await alert_store.claim_due(conn, now=now, limit=self._batch, lease=self._lease)

    async def _deliver(self, claimed: Sequence[ClaimedDelivery], now: datetime) -> None:
        attempts = [self._prepare(d, now) for d in claimed]
        await self._send_all(attempts)
        try:
            await self._finish(attempts)
        except DATABASE_ERRORS:
            # The rows stay leased and are sent again after the lease: at least once.
            log.exception("outbox_finish_failed", rows=len(attempts))

    # --- deciding -------------------------------------------------------------------------

    def _prepare(self, delivery: ClaimedDelivery, now: datetime) -> _Attempt:
        attempt = _Attempt(delivery)
        state = delivery.alert.state
        if not chain.still_needed(delivery.channel, state, expires_at=delivery.expires_at, now=now):
            attempt.skip_reason = "expired" if delivery.expires_at <= now else state.value
            return attempt
        if delivery.channel == chain.STAND_DOWN:
            notice = chain.stand_down_step(
                self._reach(delivery), configured=self._providers.configured
            )
            if notice is None:
                attempt.result = self._failure(None, "no_channel", "no way to reach the volunteer")
                return attempt
            attempt.step = notice
            attempt.notice = True
        elif delivery.channel == chain.START:
            steps = chain.plan(
                chain.Reach(
                    has_device=bool(delivery.devices),
                    has_phone=delivery.phone_e164 is not None,
                    sms_allowed=not (delivery.sms_opt_out or delivery.phone_invalid),
                    voice_allowed=not delivery.phone_invalid,
                    preferred=delivery.preferred,
                    refused=delivery.refused,
                ),
                configured=self._providers.configured,
                now=now,
                ack_timeout_s=delivery.ack_timeout_s,
                answer_timeout_s=delivery.answer_timeout_s,
            )
            if not steps:
                attempt.result = self._failure(None, "no_channel", "no way to reach the volunteer")
                return attempt
            attempt.step, attempt.later = steps[0].step, steps[1:]
        else:
            attempt.step = Step(delivery.channel)
        unavailable = self._unavailable(attempt.step, delivery)
        if unavailable is not None:
            attempt.result = self._failure(attempt.step, unavailable, "not reachable this way")
        return attempt

    @staticmethod
    def _reach(delivery: ClaimedDelivery) -> chain.Reach:
        return chain.Reach(
            has_device=bool(delivery.devices),
            has_phone=delivery.phone_e164 is not None,
            sms_allowed=not (delivery.sms_opt_out or delivery.phone_invalid),
            voice_allowed=not delivery.phone_invalid,
            preferred=delivery.preferred,
            refused=delivery.refused,
        )

    def _unavailable(self, step: Step, d: ClaimedDelivery) -> str | None:
        """Why a step planned earlier cannot go out now (a STOP or dead token since), if so."""
        if step not in self._providers.configured:
            return "not_configured"
        if step is Step.PUSH and not d.devices:
            return "no_device"
        if step in (Step.SMS, Step.VOICE) and (d.phone_e164 is None or d.phone_invalid):
            return "no_phone"
        if step is Step.SMS and d.sms_opt_out:
            return "sms_opt_out"
        if step.value in d.refused:
            return "refused"
        return None

    def _failure(self, step: Step | None, code: str, detail: str) -> DeliveryResult:
        return DeliveryResult(
            channel=_CHANNELS[step] if step is not None else Channel.LOG,
            outcome=DeliveryOutcome.PERMANENT,
            latency_ms=0.0,
            error_code=code,
            detail=detail,
        )

    # --- sending --------------------------------------------------------------------------

    async def _send_all(self, attempts: Sequence[_Attempt]) -> None:
        todo = [a for a in attempts if a.result is None and a.skip_reason is None]
        push = [a for a in todo if a.step is Step.PUSH]
        others = [a for a in todo if a.step is not Step.PUSH]
        await asyncio.gather(self._send_push(push), *(self._send_one(a) for a in others))

    async def _send_push(self, attempts: Sequence[_Attempt]) -> None:
        fcm = self._providers.push
        if not attempts or fcm is None:
            return
        jobs: list[tuple[_Attempt, DeviceAddress, AlertMessage]] = [
            (
                a,
                device,
                _message(a.delivery, Step.PUSH, device.fcm_token, ios=device.platform == "ios"),
            )
            for a in attempts
            for device in a.delivery.devices
        ]
        size = self._push_chunk

        async def chunk(part: list[tuple[_Attempt, DeviceAddress, AlertMessage]]) -> None:
            async with self._push_chunks:
                results = await self._bounded(
                    fcm.send_many([m for _, _, m in part], timeout_s=self._send_timeout_s),
                    [Channel.PUSH] * len(part),
                )
            for (attempt, device, _), result in zip(part, results, strict=True):
                attempt.per_device.append((device, result))

        await asyncio.gather(*(chunk(jobs[i : i + size]) for i in range(0, len(jobs), size)))
        for attempt in attempts:
            attempt.result = _combine(attempt.per_device)
            attempt.resent = attempt.delivery.reclaimed

    async def _bounded(self, call: Any, channels: list[Channel]) -> list[DeliveryResult]:
        """Our own deadline around a provider call that is supposed to keep its own."""
        try:
            async with asyncio.timeout(self._send_timeout_s + 1):
                results: list[DeliveryResult] = await call
                return results
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

    async def _send_one(self, attempt: _Attempt) -> None:
        d = attempt.delivery
        step = attempt.step
        assert step is not None
        notifier: Notifier | None
        if step is Step.LOG:
            notifier = self._providers.log
            address = f"volunteer:{d.alert.volunteer_id}"
        else:
            notifier = self._providers.sms if step is Step.SMS else self._providers.voice
            address = d.phone_e164 or ""
        assert notifier is not None
        message = _message(d, step, address, ios=False)
        channel = _CHANNELS[step]
        # A reclaimed row may have been created at Twilio before the crash: look before sending.
        verify = d.verify_before_send or d.reclaimed
        if step is Step.SMS and verify and self._providers.sms is not None:
            found = await self._providers.sms.find_existing(message, timeout_s=self._send_timeout_s)
            if found is not None:
                attempt.result = found
                attempt.found_existing = found.outcome is DeliveryOutcome.ACCEPTED
                attempt.verify_next = not attempt.found_existing
                return
        if step in (Step.SMS, Step.VOICE):
            pacer = self._sms_pacer if step is Step.SMS else self._voice_pacer
            wait = await pacer.reserve(self._max_pace_wait_s)
            if wait is None:
                attempt.result = DeliveryResult(
                    channel=channel,
                    outcome=DeliveryOutcome.RETRYABLE,
                    latency_ms=0.0,
                    error_code=_PACED,
                    retry_after_s=self._max_pace_wait_s or 1.0,
                )
                return
            if wait > 0:
                await asyncio.sleep(wait)
        async with self._in_flight:
            (attempt.result,) = await self._bounded(
                _one(notifier.send(message, timeout_s=self._send_timeout_s)), [channel]
            )
        attempt.resent = d.reclaimed and step is not Step.SMS
        if step is Step.SMS and attempt.result.error_code in chain.AMBIGUOUS:
            attempt.verify_next = True

    # --- recording ------------------------------------------------------------------------

    async def _finish(self, attempts: Sequence[_Attempt]) -> None:
        now = self._clock.now()
        for a in attempts:
            if a.result is not None:
                self._metrics.notifications.labels(
                    a.result.channel.value, a.result.outcome.value
                ).inc()
        decisions = [self._decide(a, now) for a in attempts]
        async with self._pool.acquire() as conn, conn.transaction():
            ids = sorted({a.delivery.alert.alert_id for a in attempts})
            await delivery_store.lock_incidents_of(conn, ids)
            rows = await conn.fetch(
                "SELECT id, state FROM alerts WHERE id = ANY($1::uuid[])"
                " ORDER BY id FOR NO KEY UPDATE",
                ids,
            )
            states = {r["id"]: AlertState(r["state"]) for r in rows}
            # Rows finished by another worker after our lease ran out are not ours to record.
            owned = await delivery_store.finish_steps(
                conn,
                [
                    (a.delivery.outbox_id, d.outcome, d.error, _step_value(a.step), d.ref)
                    for a, d in zip(attempts, decisions, strict=True)
                    if d.retry_at is None
                ],
                now=now,
            ) | await delivery_store.retry_steps(
                conn,
                [
                    (
                        a.delivery.outbox_id,
                        d.retry_at,
                        d.error or "error",
                        _step_value(a.step),
                        a.verify_next,
                    )
                    for a, d in zip(attempts, decisions, strict=True)
                    if d.retry_at is not None
                ],
            )
            recorder = _Recorder(conn, now, states)
            for attempt, decision in zip(attempts, decisions, strict=True):
                if attempt.delivery.outbox_id in owned:
                    await self._record(recorder, attempt, decision)
            await recorder.flush()

    def _decide(self, attempt: _Attempt, now: datetime) -> _Decision:
        result = attempt.result
        if result is None:
            return _Decision("skipped")
        if result.outcome is DeliveryOutcome.ACCEPTED:
            return _Decision("sent", ref=result.provider_message_id)
        if result.outcome is DeliveryOutcome.RETRYABLE:
            delay = self._retry_delay(attempt.delivery, result, now)
            if delay is not None:
                at = now + timedelta(seconds=delay)
                return _Decision("retry", error=result.error_code, retry_at=at)
        # Permanent, or out of time for retries: this step is over.
        return _Decision("failed", error=result.error_code)

    async def _record(self, rec: _Recorder, attempt: _Attempt, decision: _Decision) -> None:
        d = attempt.delivery
        result = attempt.result
        step = attempt.step
        if result is None:
            if d.channel != chain.START:
                rec.event(d, "alert_step_skipped", channel=d.channel, reason=attempt.skip_reason)
            return
        if attempt.resent:
            rec.event(
                d,
                "alert_resent_after_crash",
                channel=step.value if step is not None else None,
                attempt=d.attempts,
                notice=attempt.notice,
                collapse_id=alert_collapse_id(str(d.alert.alert_id)) if step is Step.PUSH else None,
            )
        if attempt.notice:
            # A stand-down notice has no chain and moves no state: it is sent, or not.
            if decision.retry_at is None:
                outcome = "sent" if decision.outcome == "sent" else "failed"
                rec.event(
                    d,
                    f"stand_down_{outcome}",
                    channel=step.value if step is not None else None,
                    error_code=result.error_code,
                )
            return
        details: dict[str, Any] = {
            "channel": step.value if step is not None else None,
            "outcome": result.outcome.value,
            "attempt": d.attempts,
            "latency_ms": round(result.latency_ms, 1),
            "provider_message_id": result.provider_message_id,
            "error_code": result.error_code,
        }
        if attempt.found_existing:
            details["found_existing"] = True
        rec.plan_rest(d, attempt.later)
        await self._deactivate(rec, attempt)
        if decision.outcome == "sent":
            rec.transition(d, AlertEvent.SENT)
            rec.event(d, "alert_sent", **details)
        elif decision.retry_at is not None:
            if result.error_code != _PACED:
                details["retry_at"] = decision.retry_at.isoformat()
                rec.event(d, "alert_send_retry", **details)
        else:
            # The next step starts now.
            rec.event(d, "alert_send_failed", **details)
            await self._act_on_failure(rec, d, step, result.error_code)

    async def _deactivate(self, rec: _Recorder, attempt: _Attempt) -> None:
        dead = [
            (device, result.error_code or "")
            for device, result in attempt.per_device
            if result.error_code in chain.DEACTIVATE_DEVICE
        ]
        for device, reason in dead:
            changed = await device_store.deactivate_devices(
                rec.conn, [device.device_id], reason=reason, now=rec.now
            )
            if changed:
                rec.event(
                    attempt.delivery,
                    "device_deactivated",
                    device_id=device.device_id,
                    platform=device.platform,
                    reason=reason,
                )

    async def _act_on_failure(
        self, rec: _Recorder, d: ClaimedDelivery, step: Step | None, code: str | None
    ) -> None:
        if code == chain.SMS_OPT_OUT:
            await device_store.flag_volunteers(
                rec.conn, [d.alert.volunteer_id], flag="sms_opt_out", now=rec.now
            )
        elif code == chain.INVALID_NUMBER and step in (Step.SMS, Step.VOICE):
            await device_store.flag_volunteers(
                rec.conn, [d.alert.volunteer_id], flag="phone_invalid", now=rec.now
            )
        await rec.flush()
        moved = await delivery_store.bring_forward(rec.conn, d.alert.alert_id, now=rec.now)
        if moved is not None:
            rec.event(d, "fallback_brought_forward", next=moved, cause=code)
            return
        pending = await delivery_store.pending_steps(
            rec.conn, d.alert.alert_id, excluding=d.outbox_id
        )
        if pending == 0 and not await delivery_store.any_sent(rec.conn, d.alert.alert_id):
            rec.transition(d, AlertEvent.FAIL)

    def _retry_delay(
        self, d: ClaimedDelivery, result: DeliveryResult, now: datetime
    ) -> float | None:
        remaining = (d.expires_at - now).total_seconds()
        if result.error_code == _PACED:
            wait = result.retry_after_s or 1.0
            return wait if wait < remaining else None
        return next_attempt_delay(
            max(1, d.attempts),
            base_s=self._retry_base_s,
            cap_s=self._retry_cap_s,
            retry_after_s=result.retry_after_s,
            remaining_s=remaining,
            rng=self._rng,
        )


async def _one(call: Any) -> list[DeliveryResult]:
    return [await call]


def _combine(per_device: Sequence[tuple[DeviceAddress, DeliveryResult]]) -> DeliveryResult:
    """One push result for an alert sent to several devices: the best of them."""
    results = [r for _, r in per_device]
    for outcome in (DeliveryOutcome.ACCEPTED, DeliveryOutcome.RETRYABLE):
        found = [r for r in results if r.outcome is outcome]
        if found:
            if outcome is DeliveryOutcome.RETRYABLE:
                # Honour the longest Retry-After any device's answer carried.
                waits = [r.retry_after_s for r in found if r.retry_after_s is not None]
                if waits and found[0].retry_after_s != max(waits):
                    return DeliveryResult(
                        channel=found[0].channel,
                        outcome=outcome,
                        latency_ms=found[0].latency_ms,
                        error_code=found[0].error_code,
                        detail=found[0].detail,
                        retry_after_s=max(waits),
                    )
            return found[0]
    return results[0]


class _Recorder:
    """The writes of one finished batch, in one transaction, batched where it pays."""

    def __init__(self, conn: Any, now: datetime, states: dict[Any, AlertState]) -> None:
        self.conn = conn
        self.now = now
        self._states = states
        self._original = dict(states)
        self._events: list[LogEvent] = []
        self._steps: list[NewStep] = []

    def plan_rest(self, d: ClaimedDelivery, later: Sequence[chain.PlannedStep]) -> None:
        self._steps.extend(
            NewStep(d.alert.agency_id, d.alert.alert_id, s.step.value, s.at) for s in later
        )

    def transition(self, d: ClaimedDelivery, event: AlertEvent) -> None:
        alert_id = d.alert.alert_id
        current = self._states.get(alert_id)
        if current is None:
            return
        try:
            self._states[alert_id] = apply(current, event)
        except IllegalTransition:
            return

    def event(self, d: ClaimedDelivery, name: str, **details: Any) -> None:
        a = d.alert
        self._events.append(
            LogEvent(
                a.agency_id, a.incident_id, name, self.now, a.alert_id, a.volunteer_id, details
            )
        )

    async def flush(self) -> None:
        if self._steps:
            await delivery_store.insert_steps(self.conn, self._steps, now=self.now)
            self._steps = []
        changed = [
            (alert_id, state.value)
            for alert_id, state in self._states.items()
            if state != self._original.get(alert_id)
        ]
        if changed:
            await self.conn.execute(
                """
                UPDATE alerts a SET state = x.state, updated_at = $3
                FROM unnest($1::uuid[], $2::text[]) AS x(id, state) WHERE a.id = x.id
                """,
                [c[0] for c in changed],
                [c[1] for c in changed],
                self.now,
            )
            self._original = dict(self._states)
        if self._events:
            await response_log.append(self.conn, self._events)
            self._events = []
