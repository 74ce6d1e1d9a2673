"""What receipts and replies from outside do to an alert.

The worker (``dispatch.workers.notifier``) sends; this module applies what
comes back: a device's acknowledgement, message and call status callbacks, SMS
replies and keypad answers, each parsed by ``notify.twilio_webhooks`` into a
typed value. Every one of them is recorded in the response log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from dispatch.db.types import Conn
from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.domain.delivery_chain import Step
from dispatch.service.responses import AlertNotFound, respond
from dispatch.store import alerts as alert_store
from dispatch.store import delivery as delivery_store
from dispatch.store import devices as device_store
from dispatch.store import outbox as outbox_store
from dispatch.store import response_log, volunteer_events
from dispatch.store.alerts import AlertRow
from dispatch.store.response_log import LogEvent
from dispatch.store.volunteer_events import VolunteerEvent
from notify.twilio_webhooks import CallStatus, GatherResult, InboundSms, Intent, SmsStatus

log = structlog.get_logger(__name__)


def _event(alert: AlertRow, name: str, now: datetime, **details: Any) -> LogEvent:
    return LogEvent(
        alert.agency_id, alert.incident_id, name, now, alert.alert_id, alert.volunteer_id, details
    )


async def _mark_delivered(conn: Conn, alert: AlertRow, *, channel: str, now: datetime) -> bool:
    """queued/sent → delivered (a receipt may beat our own "sent" commit); logged once."""
    state = alert.state
    if state is AlertState.QUEUED:
        state = apply(state, AlertEvent.SENT)
    try:
        target = apply(state, AlertEvent.DELIVERED)
    except IllegalTransition:
        return False
    if target == alert.state:
        return False
    await alert_store.set_state(conn, alert.alert_id, target, now)
    await response_log.append(
        conn,
        [_event(alert, "alert_delivered", now, channel=channel, **{"from": alert.state.value})],
    )
    return True


@dataclass(frozen=True, slots=True)
class AckResult:
    alert_id: UUID
    state: AlertState
    changed: bool


async def acknowledge(
    pool: asyncpg.Pool,
    *,
    alert_id: UUID,
    volunteer_id: int,
    now: datetime,
    channel: str = Step.PUSH.value,
) -> AckResult:
    """The volunteer's device received the alert on ``channel`` (push, web_push or live).
    Raises AlertNotFound for someone else's."""
    async with pool.acquire() as conn, conn.transaction():
        await delivery_store.lock_incidents_of(conn, [alert_id])
        alert = await alert_store.lock_alert(conn, alert_id)
        if alert is None or alert.volunteer_id != volunteer_id:
            raise AlertNotFound(str(alert_id))
        changed = await _mark_delivered(conn, alert, channel=channel, now=now)
        state = (await alert_store.lock_alert(conn, alert_id) or alert).state
    return AckResult(alert_id, state, changed)


async def _callback_alert(conn: Conn, alert_id: UUID | None, sid: str) -> AlertRow | None:
    """The alert a status callback is about: by the id in its URL, else by the SID."""
    if alert_id is None:
        alert_id = await outbox_store.alert_of_provider_ref(conn, sid)
        if alert_id is None:
            return None
    await delivery_store.lock_incidents_of(conn, [alert_id])
    return await alert_store.lock_alert(conn, alert_id)


async def _record_callback(
    conn: Conn, alert_id: UUID | None, event: str, details: dict[str, Any], *, now: datetime
) -> AlertRow | None:
    """A Twilio status callback on its alert's timeline; None (logged) for an unknown alert."""
    alert = await _callback_alert(conn, alert_id, details["sid"])
    if alert is None:
        log.info("twilio_status_unknown_alert", status=details["status"])
        return None
    await response_log.append(conn, [_event(alert, event, now, **details)])
    return alert


async def sms_status(
    pool: asyncpg.Pool, receipt: SmsStatus, *, alert_id: UUID | None, now: datetime
) -> bool:
    """A message status callback. True when the next step was brought forward."""
    details = {"status": receipt.status, "error_code": receipt.error_code, "sid": receipt.sid}
    async with pool.acquire() as conn, conn.transaction():
        alert = await _record_callback(conn, alert_id, "sms_status", details, now=now)
        if alert is None:
            return False
        if receipt.delivered:
            await _mark_delivered(conn, alert, channel=Step.SMS.value, now=now)
            return False
        if not receipt.undelivered:
            return False
        for flag, applies in (
            ("phone_invalid", receipt.invalid_number),
            ("sms_opt_out", receipt.opted_out),
        ):
            if applies:
                await device_store.flag_volunteers(conn, [alert.volunteer_id], flag=flag, now=now)
        if alert.state not in (AlertState.QUEUED, AlertState.SENT, AlertState.DELIVERED):
            return False
        if receipt.call_now:
            moved = await delivery_store.bring_forward(conn, alert.alert_id, now=now)
            if moved is not None:
                cause = receipt.error_code
                await response_log.append(
                    conn, [_event(alert, "fallback_brought_forward", now, next=moved, cause=cause)]
                )
                return True
    return False


async def voice_status(
    pool: asyncpg.Pool, receipt: CallStatus, *, alert_id: UUID | None, now: datetime
) -> None:
    """A call status callback: recorded on the alert's timeline."""
    details: dict[str, Any] = {"status": receipt.status, "sid": receipt.sid}
    if receipt.answered_by:
        details["answered_by"] = receipt.answered_by
    async with pool.acquire() as conn, conn.transaction():
        await _record_callback(conn, alert_id, "voice_status", details, now=now)


async def _answer(
    pool: asyncpg.Pool, alert: AlertRow, event: AlertEvent, *, via: str, now: datetime
) -> AlertState:
    try:
        result = await respond(
            pool, alert_id=alert.alert_id, volunteer_id=alert.volunteer_id, event=event, now=now
        )
    except (IllegalTransition, AlertNotFound) as exc:
        log.info("answer_not_applied", alert_id=str(alert.alert_id), via=via, reason=str(exc))
        return alert.state
    return result.state


async def voice_gather(
    pool: asyncpg.Pool, alert_id: UUID, answer: GatherResult, *, now: datetime
) -> str:
    """A keypad answer during the alert call; returns what to say back."""
    async with pool.acquire() as conn:
        alert = await outbox_store.find_alert(conn, alert_id)
        if alert is None:
            return "Sorry, this alert is no longer known."
        await response_log.append(conn, [_event(alert, "voice_gather", now, digits=answer.digits)])
    if answer.intent is Intent.ACCEPT:
        state = await _answer(pool, alert, AlertEvent.ACCEPT, via="voice", now=now)
        return "Thank you. Please go now." if state is AlertState.ACCEPTED else "Thank you."
    if answer.intent is Intent.DECLINE:
        await _answer(pool, alert, AlertEvent.DECLINE, via="voice", now=now)
        return "Thank you. You have declined."
    return "No answer recorded."


async def sms_inbound(pool: asyncpg.Pool, sms: InboundSms, *, now: datetime) -> str | None:
    """A text from a volunteer: YES/1 accepts, NO/2 declines, STOP/START switch SMS off/on.

    STOP and START are about the number at the provider, so they apply to every
    volunteer holding it, in every agency, each recorded on their own timeline. An
    answer acts only on the newest alert to that number that is still open.
    Returns a reply to text back, or None for no reply (Twilio answers STOP itself).
    """
    async with pool.acquire() as conn, conn.transaction():
        if sms.intent in (Intent.OPT_OUT, Intent.OPT_IN):
            await _opt_change(conn, sms, now=now)
            return None
        alert = await delivery_store.open_alert_for_phone(conn, sms.sender, now=now)
        if alert is not None:
            await response_log.append(
                conn, [_event(alert, "sms_reply", now, keyword=sms.logged_keyword)]
            )
    if alert is None:
        return None
    if sms.intent is Intent.ACCEPT:
        state = await _answer(pool, alert, AlertEvent.ACCEPT, via="sms", now=now)
        return "Thank you. Please go now." if state is AlertState.ACCEPTED else None
    if sms.intent is Intent.DECLINE:
        await _answer(pool, alert, AlertEvent.DECLINE, via="sms", now=now)
        return "Thank you. You have declined."
    return "Reply YES to go or NO to decline."


async def _opt_change(conn: Conn, sms: InboundSms, *, now: datetime) -> None:
    stop = sms.intent is Intent.OPT_OUT
    name = "sms_opt_out" if stop else "sms_opt_in"
    word = sms.keyword
    affected = await device_store.set_sms_opt_out(conn, sms.sender, opted_out=stop, now=now)
    await volunteer_events.append(
        conn, [VolunteerEvent(a, v, name, now, {"keyword": word}) for a, v in affected]
    )
    latest = await delivery_store.latest_alert_of_each(conn, [v for _, v in affected])
    await response_log.append(conn, [_event(alert, name, now, keyword=word) for alert in latest])
    log.info("sms_opt_change", opted_out=stop, volunteers=len(affected))
