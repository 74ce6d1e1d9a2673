"""Delivery providers for this process, and what receipts and replies do to an alert.

The worker (``dispatch.workers.notifier``) sends; this module builds the
providers from settings and applies what comes back from outside: a device's
acknowledgement, Twilio status callbacks, SMS replies and keypad answers.
Every one of those is recorded in the response log.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import asyncpg
import structlog

from dispatch.config import Settings
from dispatch.db.pool import DATABASE_ERRORS
from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.domain.delivery_chain import Step
from dispatch.service.responses import AlertNotFound, respond
from dispatch.store import alerts as alert_store
from dispatch.store import delivery as delivery_store
from dispatch.store import devices as device_store
from dispatch.store import pacing as pacing_store
from dispatch.store import response_log, volunteer_events
from dispatch.store.alerts import AlertRow
from dispatch.store.response_log import LogEvent
from dispatch.store.volunteer_events import VolunteerEvent
from notify.fcm import FcmNotifier
from notify.log import LogNotifier
from notify.ports import Notifier
from notify.twilio_sms import TwilioSmsNotifier
from notify.twilio_voice import TwilioVoiceNotifier

log = structlog.get_logger(__name__)

SMS_STATUS_PATH: Final = "/v1/twilio/sms-status"
SMS_INBOUND_PATH: Final = "/v1/twilio/sms-inbound"
VOICE_STATUS_PATH: Final = "/v1/twilio/voice-status"
VOICE_GATHER_PATH: Final = "/v1/twilio/voice-gather/{alert_id}"

# Twilio's own opt-out and opt-in keywords (it also enforces them on its side).
STOP_WORDS: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS: Final = frozenset({"START", "UNSTOP"})
ACCEPT_WORDS: Final = frozenset({"YES", "Y", "1", "JA", "OUI", "SI"})
DECLINE_WORDS: Final = frozenset({"NO", "N", "2", "NEE", "NON", "NEIN"})
# Undelivered SMS error codes after which a call is the next best thing at once.
_CALL_NOW_CODES: Final = frozenset({"30003", "30005", "30006", "30008"})
_INVALID_NUMBER_CODES: Final = frozenset({"30005", "21211", "21217"})


@dataclass(slots=True)
class Providers:
    """The notifiers this process sends through; unset ones are not configured."""

    log: Notifier | None = None
    push: FcmNotifier | None = None
    sms: TwilioSmsNotifier | None = None
    voice: TwilioVoiceNotifier | None = None
    twilio_auth_token: str | None = None

    @property
    def configured(self) -> frozenset[Step]:
        found = set()
        if self.log is not None:
            found.add(Step.LOG)
        if self.push is not None:
            found.add(Step.PUSH)
        if self.sms is not None:
            found.add(Step.SMS)
        if self.voice is not None:
            found.add(Step.VOICE)
        return frozenset(found)


def public_base_url(settings: Settings) -> str:
    """The URL Twilio calls us on (``DISPATCH_PUBLIC_BASE_URL`` behind a proxy)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


@asynccontextmanager
async def open_providers(settings: Settings) -> AsyncIterator[Providers]:
    """Build the configured providers inside the running loop; close them on exit.

    With neither FCM nor Twilio configured, alerts go to the log provider, so a
    demo or a development machine works without any account.
    """
    async with AsyncExitStack() as stack:
        providers = Providers()
        base = public_base_url(settings)
        timeout = settings.notifier_send_timeout_s
        if settings.fcm_service_account_file is not None:
            fcm = FcmNotifier(
                service_account_file=settings.fcm_service_account_file,
                base_url=settings.fcm_base_url,
                http_timeout_s=timeout,
                transport="aiohttp" if settings.fcm_transport == "aiohttp" else "sdk",
                max_connections=settings.provider_max_in_flight,
            )
            stack.push_async_callback(fcm.aclose)
            # Fetching the first OAuth token now surfaces bad credentials at start-up.
            await fcm.warm_up()
            providers.push = fcm
        if settings.twilio_account_sid and settings.twilio_auth_token:
            providers.twilio_auth_token = settings.twilio_auth_token
            sms = await TwilioSmsNotifier.create(
                account_sid=settings.twilio_account_sid,
                auth_token=settings.twilio_auth_token,
                messaging_service_sid=settings.twilio_messaging_service_sid,
                from_number=None
                if settings.twilio_messaging_service_sid
                else settings.twilio_from_number,
                status_callback_url=base + SMS_STATUS_PATH + "?alert_id={alert_id}",
                base_url=settings.twilio_base_url,
                request_timeout_s=timeout,
            )
            stack.push_async_callback(sms.aclose)
            providers.sms = sms
            if settings.twilio_voice_from_number:
                voice = await TwilioVoiceNotifier.create(
                    account_sid=settings.twilio_account_sid,
                    auth_token=settings.twilio_auth_token,
                    from_number=settings.twilio_voice_from_number,
                    gather_url=base + VOICE_GATHER_PATH,
                    status_callback_url=base + VOICE_STATUS_PATH + "?alert_id={alert_id}",
                    base_url=settings.twilio_base_url,
                    request_timeout_s=timeout,
                    ring_timeout_s=settings.twilio_ring_timeout_s,
                )
                stack.push_async_callback(voice.aclose)
                providers.voice = voice
        if providers.push is None and providers.sms is None and providers.voice is None:
            providers.log = LogNotifier(settings.log_provider_file)
        log.info("delivery_providers", channels=sorted(s.value for s in providers.configured))
        yield providers


class Pacer:
    """Spaces sends from one sender at a steady rate (Twilio queues, then drops, the excess).

    In-process only; :class:`SharedPacer` spaces them across processes.
    """

    def __init__(self, rate_per_s: float) -> None:
        self._interval = 1.0 / rate_per_s
        self._next = 0.0

    def reserve(self, max_wait_s: float) -> float | None:
        """Seconds to wait for the next slot, which is now taken; None if that is too long."""
        now = time.monotonic()
        slot = max(now, self._next)
        wait = slot - now
        if wait > max_wait_s:
            return None
        self._next = slot + self._interval
        return wait


class SharedPacer:
    """Spaces sends from one sending number across every process (a slot row in PostgreSQL).

    One round trip per SMS or call, which are paced at a few per second anyway. While the
    database cannot answer, this process's own pacer keeps its sends spaced.
    """

    def __init__(self, pool: asyncpg.Pool | None, sender: str, rate_per_s: float) -> None:
        self._pool = pool
        self._sender = sender
        self._interval = 1.0 / rate_per_s
        self._local = Pacer(rate_per_s)

    async def reserve(self, max_wait_s: float) -> float | None:
        """Seconds to wait for the next slot, which is now taken; None if that is too long."""
        if self._pool is None:
            return self._local.reserve(max_wait_s)
        try:
            async with self._pool.acquire() as conn:
                return await pacing_store.reserve_slot(
                    conn, self._sender, interval_s=self._interval, max_wait_s=max_wait_s
                )
        except DATABASE_ERRORS as exc:
            log.warning("shared_pacing_unavailable", error=type(exc).__name__)
            return self._local.reserve(max_wait_s)


# --- receipts and answers ------------------------------------------------------------------


def _event(alert: AlertRow, name: str, now: datetime, **details: Any) -> LogEvent:
    return LogEvent(
        alert.agency_id, alert.incident_id, name, now, alert.alert_id, alert.volunteer_id, details
    )


async def _mark_delivered(conn: Any, alert: AlertRow, *, channel: str, now: datetime) -> bool:
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
    pool: asyncpg.Pool, *, alert_id: UUID, volunteer_id: int, now: datetime
) -> AckResult:
    """The volunteer's device received the alert. Raises AlertNotFound for someone else's."""
    async with pool.acquire() as conn, conn.transaction():
        await delivery_store.lock_incidents_of(conn, [alert_id])
        alert = await alert_store.lock_alert(conn, alert_id)
        if alert is None or alert.volunteer_id != volunteer_id:
            raise AlertNotFound(str(alert_id))
        changed = await _mark_delivered(conn, alert, channel=Step.PUSH.value, now=now)
        state = (await alert_store.lock_alert(conn, alert_id) or alert).state
    return AckResult(alert_id, state, changed)


async def _callback_alert(conn: Any, alert_id: UUID | None, sid: str) -> AlertRow | None:
    """The alert a status callback is about: by the id in its URL, else by the SID."""
    if alert_id is None:
        found = await conn.fetchval(
            "SELECT alert_id FROM outbox WHERE provider_ref = $1 ORDER BY id DESC LIMIT 1", sid
        )
        if found is None:
            return None
        alert_id = found
    await delivery_store.lock_incidents_of(conn, [alert_id])
    return await alert_store.lock_alert(conn, alert_id)


async def sms_status(
    pool: asyncpg.Pool, form: Mapping[str, str], *, alert_id: UUID | None, now: datetime
) -> bool:
    """A Twilio message status callback. True when the next step was brought forward."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    error = form.get("ErrorCode") or None
    async with pool.acquire() as conn, conn.transaction():
        alert = await _callback_alert(conn, alert_id, sid)
        if alert is None:
            log.info("twilio_status_unknown_alert", status=status)
            return False
        await response_log.append(
            conn, [_event(alert, "sms_status", now, status=status, error_code=error, sid=sid)]
        )
        if status == "delivered":
            await _mark_delivered(conn, alert, channel=Step.SMS.value, now=now)
            return False
        if status not in ("undelivered", "failed"):
            return False
        if error in _INVALID_NUMBER_CODES:
            await device_store.flag_volunteers(
                conn, [alert.volunteer_id], flag="phone_invalid", now=now
            )
        if error == "21610":
            await device_store.flag_volunteers(
                conn, [alert.volunteer_id], flag="sms_opt_out", now=now
            )
        if alert.state not in (AlertState.QUEUED, AlertState.SENT, AlertState.DELIVERED):
            return False
        if error is None or error in _CALL_NOW_CODES or error == "21610":
            moved = await delivery_store.bring_forward(conn, alert.alert_id, now=now)
            if moved is not None:
                await response_log.append(
                    conn, [_event(alert, "fallback_brought_forward", now, next=moved, cause=error)]
                )
                return True
    return False


async def voice_status(
    pool: asyncpg.Pool, form: Mapping[str, str], *, alert_id: UUID | None, now: datetime
) -> None:
    sid = form.get("CallSid") or ""
    status = (form.get("CallStatus") or "").lower()
    async with pool.acquire() as conn, conn.transaction():
        alert = await _callback_alert(conn, alert_id, sid)
        if alert is None:
            log.info("twilio_status_unknown_alert", status=status)
            return
        details: dict[str, Any] = {"status": status, "sid": sid}
        if form.get("AnsweredBy"):
            details["answered_by"] = form.get("AnsweredBy")
        await response_log.append(conn, [_event(alert, "voice_status", now, **details)])


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
    pool: asyncpg.Pool, alert_id: UUID, form: Mapping[str, str], *, now: datetime
) -> str:
    """A keypad answer during the alert call; returns what to say back."""
    digits = (form.get("Digits") or "").strip()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, agency_id, incident_id, volunteer_id, state FROM alerts WHERE id = $1",
            alert_id,
        )
        if row is None:
            return "Sorry, this alert is no longer known."
        alert = AlertRow(
            row["id"],
            row["agency_id"],
            row["incident_id"],
            row["volunteer_id"],
            AlertState(row["state"]),
        )
        await response_log.append(conn, [_event(alert, "voice_gather", now, digits=digits[:4])])
    if digits == "1":
        state = await _answer(pool, alert, AlertEvent.ACCEPT, via="voice", now=now)
        return "Thank you. Please go now." if state is AlertState.ACCEPTED else "Thank you."
    if digits == "2":
        await _answer(pool, alert, AlertEvent.DECLINE, via="voice", now=now)
        return "Thank you. You have declined."
    return "No answer recorded."


async def sms_inbound(pool: asyncpg.Pool, form: Mapping[str, str], *, now: datetime) -> str | None:
    """A text from a volunteer: YES/1 accepts, NO/2 declines, STOP/START switch SMS off/on.

    STOP and START are about the number at the provider, so they apply to every
    volunteer holding it, in every agency, each recorded on their own timeline. An
    answer acts only on the newest alert to that number that is still open.
    Returns a reply to text back, or None for no reply (Twilio answers STOP itself).
    """
    sender = form.get("From") or ""
    word = (form.get("Body") or "").strip().upper().rstrip(".!")
    word = word.split()[0] if word else ""
    async with pool.acquire() as conn, conn.transaction():
        if word in STOP_WORDS or word in START_WORDS:
            await _opt_change(conn, sender, word, now=now)
            return None
        alert = await delivery_store.open_alert_for_phone(conn, sender, now=now)
        if alert is not None:
            await response_log.append(
                conn, [_event(alert, "sms_reply", now, keyword=word[:16] or None)]
            )
    if alert is None:
        return None
    if word in ACCEPT_WORDS:
        state = await _answer(pool, alert, AlertEvent.ACCEPT, via="sms", now=now)
        return "Thank you. Please go now." if state is AlertState.ACCEPTED else None
    if word in DECLINE_WORDS:
        await _answer(pool, alert, AlertEvent.DECLINE, via="sms", now=now)
        return "Thank you. You have declined."
    return "Reply YES to go or NO to decline."


async def _opt_change(conn: Any, sender: str, word: str, *, now: datetime) -> None:
    stop = word in STOP_WORDS
    name = "sms_opt_out" if stop else "sms_opt_in"
    affected = await device_store.set_sms_opt_out(conn, sender, opted_out=stop, now=now)
    await volunteer_events.append(
        conn, [VolunteerEvent(a, v, name, now, {"keyword": word}) for a, v in affected]
    )
    latest = await delivery_store.latest_alert_of_each(conn, [v for _, v in affected])
    await response_log.append(conn, [_event(alert, name, now, keyword=word) for alert in latest])
    log.info("sms_opt_change", opted_out=stop, volunteers=len(affected))
