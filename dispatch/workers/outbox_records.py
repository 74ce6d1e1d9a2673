"""The bookkeeping of one sent batch: outbox rows, alert states, devices, the timeline.

All of a batch's writes happen in one transaction; rows another worker finished after
our lease ran out are left alone. ``Bookkeeper`` opens that transaction, and opens it
again until the database takes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import asyncpg
import structlog

from dispatch.db.pool import DATABASE_ERRORS, is_unavailable
from dispatch.db.types import Conn
from dispatch.domain import delivery_chain as chain
from dispatch.domain import delivery_decisions as decisions
from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.domain.clock import Clock
from dispatch.domain.delivery_chain import Step
from dispatch.domain.delivery_decisions import Backoff, StepDecision
from dispatch.store import delivery as delivery_store
from dispatch.store import devices as device_store
from dispatch.store import outbox as outbox_store
from dispatch.store import webpush as webpush_store
from dispatch.store.alerts import ClaimedDelivery, DeviceAddress, WebPushAddress
from dispatch.store.delivery import NewStep
from dispatch.store.response_log import LogEvent
from notify.fcm import alert_collapse_id
from notify.ports import DeliveryOutcome, DeliveryResult


@dataclass(slots=True)
class Attempt:
    """One claimed row on its way through a cycle."""

    delivery: ClaimedDelivery
    step: Step | None = None
    later: Sequence[chain.PlannedStep] = ()
    result: DeliveryResult | None = None
    skip_reason: str | None = None
    per_device: list[tuple[DeviceAddress, DeliveryResult]] = field(default_factory=list)
    per_subscription: list[tuple[WebPushAddress, DeliveryResult]] = field(default_factory=list)
    live_notice: DeliveryResult | None = None
    """A stand-down notice's copy down the volunteer's open live stream."""
    verify_next: bool = False
    found_existing: bool = False
    """An SMS lookup found the text already at the provider; nothing was sent."""
    resent: bool = False
    """Sent again although an earlier, unrecorded attempt may have reached the provider."""
    notice: bool = False
    """A stand-down notice rather than a step of the alert's chain."""


log = structlog.get_logger(__name__)

# Recording a sent batch again while the database is away: first pause, and the longest.
_RETRY_S: Final = (0.2, 2.0)


class Bookkeeper:
    """Records sent batches through the worker's pool, outlasting a database restart.

    Given up, a batch's rows would be sent again once their lease lapsed: a second alert
    to the same volunteer after every database restart that caught a batch in flight.
    Recording again is safe (only rows not done yet are recorded). While a batch waits
    (``waiting``), the worker claims nothing: a claim could lease its rows again once
    their lease lapsed. Shutdown bounds the trying (the grace period, then cancellation).
    """

    def __init__(self, pool: asyncpg.Pool, clock: Clock, backoff: Backoff) -> None:
        self._pool = pool
        self._clock = clock
        self._backoff = backoff
        self.waiting = 0

    async def record(self, attempts: Sequence[Attempt]) -> None:
        pause, longest = _RETRY_S
        counted = False
        try:
            while True:
                try:
                    await self._once(attempts)
                    return
                except DATABASE_ERRORS as exc:
                    if not is_unavailable(exc):
                        # A bug, not an outage: the rows are sent again after their lease.
                        log.exception("outbox_finish_failed", rows=len(attempts))
                        return
                    log.warning("outbox_finish_retry", rows=len(attempts), error=type(exc).__name__)
                if not counted:
                    counted = True
                    self.waiting += 1
                await asyncio.sleep(pause)
                pause = min(pause * 2, longest)
        finally:
            if counted:
                self.waiting -= 1

    async def _once(self, attempts: Sequence[Attempt]) -> None:
        now = self._clock.now()
        outcomes = [
            decisions.decide(
                a.result,
                attempts=a.delivery.attempts,
                expires_at=a.delivery.expires_at,
                now=now,
                backoff=self._backoff,
            )
            for a in attempts
        ]
        async with self._pool.acquire() as conn, conn.transaction():
            await record_batch(conn, attempts, outcomes, now=now)


def _step_value(step: Step | None) -> str | None:
    return None if step is None else step.value


async def record_batch(
    conn: Conn,
    attempts: Sequence[Attempt],
    outcomes: Sequence[StepDecision],
    *,
    now: datetime,
) -> None:
    """Record a sent batch in the caller's transaction."""
    ids = sorted({a.delivery.alert.alert_id for a in attempts})
    # An alert's incident never changes: the claimed row names it. Incidents are locked
    # before the alerts, as intake locks them.
    states = await outbox_store.lock_states(
        conn, ids, incident_ids=[a.delivery.alert.incident_id for a in attempts]
    )
    pairs = list(zip(attempts, outcomes, strict=True))
    # Rows finished by another worker after our lease ran out are not ours to record.
    owned = await delivery_store.end_leases(
        conn,
        [
            (a.delivery.outbox_id, d.outcome, d.error, _step_value(a.step), d.ref)
            for a, d in pairs
            if d.retry_at is None
        ],
        [
            (
                a.delivery.outbox_id,
                d.retry_at,
                d.error or "error",
                _step_value(a.step),
                a.verify_next,
            )
            for a, d in pairs
            if d.retry_at is not None
        ],
        now=now,
    )
    recorder = Recorder(conn, now, states)
    for attempt, decision in pairs:
        if attempt.delivery.outbox_id in owned:
            await _record(recorder, attempt, decision)
    await recorder.flush()


async def _record(rec: Recorder, attempt: Attempt, decision: StepDecision) -> None:
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
            channel=_step_value(step),
            attempt=d.attempts,
            notice=attempt.notice,
            collapse_id=alert_collapse_id(str(d.alert.alert_id)) if step is Step.PUSH else None,
        )
    if attempt.notice:
        # A stand-down notice has no chain and moves no state: it is sent, or not.
        if decision.retry_at is None:
            outcome = "sent" if decision.outcome == "sent" else "failed"
            rec.event(
                d, f"stand_down_{outcome}", channel=_step_value(step), error_code=result.error_code
            )
        await _deactivate(rec, attempt)
        live = attempt.live_notice
        if live is not None:
            outcome = "sent" if live.outcome is DeliveryOutcome.ACCEPTED else "failed"
            rec.event(
                d, f"stand_down_{outcome}", channel=Step.LIVE.value, error_code=live.error_code
            )
        return
    details: dict[str, Any] = {
        "channel": _step_value(step),
        "outcome": result.outcome.value,
        "attempt": d.attempts,
        "latency_ms": round(result.latency_ms, 1),
        "provider_message_id": result.provider_message_id,
        "error_code": result.error_code,
    }
    if attempt.found_existing:
        details["found_existing"] = True
    rec.plan_rest(d, attempt.later)
    await _deactivate(rec, attempt)
    if decision.outcome == "sent":
        rec.transition(d, AlertEvent.SENT)
        rec.event(d, "alert_sent", **details)
    elif decision.retry_at is not None:
        if result.error_code != decisions.PACED:
            details["retry_at"] = decision.retry_at.isoformat()
            rec.event(d, "alert_send_retry", **details)
    else:
        # The next step starts now.
        rec.event(d, "alert_send_failed", **details)
        await _act_on_failure(rec, d, step, result.error_code)


async def _deactivate(rec: Recorder, attempt: Attempt) -> None:
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
    gone = [
        (sub, result.error_code or "")
        for sub, result in attempt.per_subscription
        if result.error_code in chain.DEACTIVATE_DEVICE
    ]
    for sub, reason in gone:
        if await webpush_store.deactivate_subscriptions(
            rec.conn, [sub.subscription_id], reason=reason, now=rec.now
        ):
            rec.event(
                attempt.delivery,
                "web_push_deactivated",
                subscription_id=sub.subscription_id,
                reason=reason,
            )


async def _act_on_failure(
    rec: Recorder, d: ClaimedDelivery, step: Step | None, code: str | None
) -> None:
    flag = decisions.volunteer_flag(code, step)
    if flag is not None:
        await device_store.flag_volunteers(rec.conn, [d.alert.volunteer_id], flag=flag, now=rec.now)
    await rec.flush()
    if step in chain.PUSH_TIER and await delivery_store.other_push_alive(
        rec.conn, d.alert.alert_id, excluding=d.outbox_id, now=rec.now
    ):
        # FCM and Web Push share one ack window: the one still on its way keeps it.
        return
    moved = await delivery_store.bring_forward(rec.conn, d.alert.alert_id, now=rec.now)
    if moved is not None:
        rec.event(d, "fallback_brought_forward", next=moved, cause=code)
        return
    pending = await delivery_store.pending_steps(rec.conn, d.alert.alert_id, excluding=d.outbox_id)
    if pending == 0 and not await delivery_store.any_sent(rec.conn, d.alert.alert_id):
        rec.transition(d, AlertEvent.FAIL)


class Recorder:
    """The writes of one finished batch, in one transaction, batched where it pays."""

    def __init__(self, conn: Conn, now: datetime, states: dict[UUID, AlertState]) -> None:
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
        """Write what is buffered: one statement, whatever it holds."""
        changed = [
            (alert_id, state.value)
            for alert_id, state in self._states.items()
            if state != self._original.get(alert_id)
        ]
        await delivery_store.record_changes(
            self.conn, self._steps, changed, self._events, now=self.now
        )
        self._original = dict(self._states)
        self._steps = []
        self._events = []
