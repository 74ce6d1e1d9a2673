"""The outbox worker: lease due rows, send through a :class:`notify.Notifier`, record the result.

Exactly-once towards the volunteer rests on three things: rows are written in
the intake transaction (nothing to send is lost), a row is leased to one worker
at a time (``FOR UPDATE SKIP LOCKED`` plus a lease that outlives the send
timeout), and completion is conditional on the row not being done already. A
crash after the provider accepted but before the result was committed is the
one window left; the alert id travels in every message so the app drops the
duplicate.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg
import structlog

from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.domain.clock import Clock
from dispatch.metrics import Metrics
from dispatch.store import alerts as alert_store
from dispatch.store import response_log
from dispatch.store.alerts import ClaimedDelivery
from dispatch.store.response_log import LogEvent
from notify.ports import AlertMessage, DeliveryOutcome, DeliveryResult, Notifier

log = structlog.get_logger(__name__)

_RETRY_BASE_S: Final = 1.0
_RETRY_CAP_S: Final = 30.0
_WAITING: Final = frozenset({AlertState.QUEUED})


def _message(delivery: ClaimedDelivery) -> AlertMessage:
    alert = delivery.alert
    where = f" at {delivery.address_text}" if delivery.address_text else ""
    return AlertMessage(
        alert_id=str(alert.alert_id),
        incident_id=str(alert.incident_id),
        volunteer_id=alert.volunteer_id,
        role=delivery.role,
        address=f"volunteer:{alert.volunteer_id}",
        title="Cardiac arrest nearby: CPR needed",
        body=f"Suspected cardiac arrest {round(delivery.distance_m)} m from you{where}. "
        "Can you go? Answer in the app.",
        expires_at=delivery.expires_at,
        language=delivery.language,
        data={"call_type": delivery.call_type_code},
    )


class OutboxWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        notifier: Notifier,
        clock: Clock,
        metrics: Metrics,
        *,
        poll_s: float,
        batch: int,
        send_timeout_s: float,
        lease_s: float,
    ) -> None:
        self._pool = pool
        self._notifier = notifier
        self._clock = clock
        self._metrics = metrics
        self._poll_s = poll_s
        self._batch = batch
        self._send_timeout_s = send_timeout_s
        # The lease must outlive the send timeout, or a slow send could be taken twice.
        self._lease = timedelta(seconds=max(lease_s, send_timeout_s * 2))
        self.wakeup = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; a batch already leased is finished first (drain)."""
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except (OSError, asyncpg.PostgresError, TimeoutError):
                log.exception("outbox_cycle_failed")
                handled = 0
            if handled:
                continue
            self.wakeup.clear()
            try:
                async with asyncio.timeout(self._poll_s):
                    await self.wakeup.wait()
            except TimeoutError:
                pass

    async def run_once(self) -> int:
        now = self._clock.now()
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await alert_store.claim_due(
                conn, now=now, limit=self._batch, lease=self._lease
            )
        if claimed:
            await asyncio.gather(*(self._deliver(d) for d in claimed))
        return len(claimed)

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        alert = delivery.alert
        if alert.state not in _WAITING or delivery.expires_at <= self._clock.now():
            await self._finish(delivery, None, skipped=True)
            return
        try:
            async with asyncio.timeout(self._send_timeout_s + 1):
                result = await self._notifier.send(
                    _message(delivery), timeout_s=self._send_timeout_s
                )
        except TimeoutError:
            result = DeliveryResult(
                channel=self._notifier.channel,
                outcome=DeliveryOutcome.RETRYABLE,
                latency_ms=self._send_timeout_s * 1000,
                error_code="timeout",
            )
        self._metrics.notifications.labels(result.channel.value, result.outcome.value).inc()
        await self._finish(delivery, result, skipped=False)

    async def _finish(
        self, delivery: ClaimedDelivery, result: DeliveryResult | None, *, skipped: bool
    ) -> None:
        alert = delivery.alert
        now = self._clock.now()
        async with self._pool.acquire() as conn, conn.transaction():
            if skipped or result is None:
                await alert_store.finish_delivery(
                    conn, delivery.outbox_id, outcome="skipped", error=None, now=now
                )
                return
            details: dict[str, Any] = {
                "channel": result.channel.value,
                "outcome": result.outcome.value,
                "attempt": delivery.attempts,
                "latency_ms": round(result.latency_ms, 1),
                "provider_message_id": result.provider_message_id,
                "error_code": result.error_code,
            }
            if result.outcome is DeliveryOutcome.ACCEPTED:
                name, event = "alert_sent", AlertEvent.SENT
                done = await alert_store.finish_delivery(
                    conn, delivery.outbox_id, outcome="sent", error=None, now=now
                )
            else:
                delay = self._retry_delay(delivery, result)
                retry_at = now + timedelta(seconds=delay) if delay is not None else None
                if retry_at is not None and retry_at < delivery.expires_at:
                    await alert_store.retry_delivery(
                        conn, delivery.outbox_id, at=retry_at, error=result.error_code or "error"
                    )
                    details["retry_at"] = retry_at.isoformat()
                    await self._log(conn, delivery, "alert_send_retry", details, now)
                    return
                name, event = "alert_send_failed", AlertEvent.FAIL
                done = await alert_store.finish_delivery(
                    conn, delivery.outbox_id, outcome="failed", error=result.error_code, now=now
                )
            if not done:
                return
            locked = await alert_store.lock_alert(conn, alert.alert_id)
            if locked is not None:
                try:
                    target = apply(locked.state, event)
                except IllegalTransition:
                    target = locked.state
                if target != locked.state:
                    await alert_store.set_state(conn, alert.alert_id, target, now)
            await self._log(conn, delivery, name, details, now)
        log.info(
            "alert_delivery",
            alert_id=str(alert.alert_id),
            outcome=result.outcome.value,
            channel=result.channel.value,
        )

    @staticmethod
    def _retry_delay(delivery: ClaimedDelivery, result: DeliveryResult) -> float | None:
        if result.outcome is not DeliveryOutcome.RETRYABLE:
            return None
        # Exponential backoff with full jitter; a provider's Retry-After is a floor.
        ceiling = min(_RETRY_CAP_S, _RETRY_BASE_S * 2 ** max(delivery.attempts - 1, 0))
        delay = random.uniform(0, ceiling)  # noqa: S311 - jitter, not security
        return max(delay, result.retry_after_s or 0.0)

    @staticmethod
    async def _log(
        conn: Any,
        delivery: ClaimedDelivery,
        name: str,
        details: Mapping[str, Any],
        now: datetime,
    ) -> None:
        alert = delivery.alert
        await response_log.append(
            conn,
            [
                LogEvent(
                    alert.agency_id,
                    alert.incident_id,
                    name,
                    now,
                    alert.alert_id,
                    alert.volunteer_id,
                    details,
                )
            ],
        )
