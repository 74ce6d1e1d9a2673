"""The delivery providers of this process, built from settings and closed on exit.

The workers and receipts see them through the ``notify.ports`` protocols only,
and a :class:`SharedPacer` per sender keeps texts and calls to the sender's rate across
every process.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog

from dispatch.config import Settings
from dispatch.db.pool import DATABASE_ERRORS
from dispatch.domain.delivery_chain import Step
from dispatch.service import webpush as webpush_service
from dispatch.service.live import LiveHub, LiveNotifier
from dispatch.store import pacing as pacing_store
from notify.fcm import FcmNotifier
from notify.log import LogNotifier
from notify.ports import BatchNotifier, LookupNotifier, Notifier
from notify.twilio_sms import TwilioSmsNotifier
from notify.twilio_voice import TwilioVoiceNotifier
from notify.twilio_webhooks import SMS_STATUS_PATH, VOICE_GATHER_PATH, VOICE_STATUS_PATH
from notify.webpush import WebPushNotifier

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Providers:
    """The notifiers this process sends through; unset ones are not configured."""

    log: Notifier | None = None
    push: BatchNotifier | None = None
    sms: LookupNotifier | None = None
    voice: Notifier | None = None
    web_push: WebPushNotifier | None = None
    live: LiveNotifier | None = None
    twilio_auth_token: str | None = None

    def notifier(self, step: Step) -> Notifier | None:
        """The notifier that sends ``step``, if one is configured."""
        by_step: dict[Step, Notifier | None] = {
            Step.LOG: self.log,
            Step.PUSH: self.push,
            Step.SMS: self.sms,
            Step.VOICE: self.voice,
            Step.WEB_PUSH: self.web_push,
            Step.LIVE: self.live,
        }
        return by_step[step]

    @property
    def configured(self) -> frozenset[Step]:
        return frozenset(step for step in Step if self.notifier(step) is not None)


def public_base_url(settings: Settings) -> str:
    """The URL Twilio calls us on (``DISPATCH_PUBLIC_BASE_URL`` behind a proxy)."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host  # noqa: S104
    return f"http://{host}:{settings.port}"


def vapid_subject(settings: Settings) -> str:
    """The VAPID contact: the setting, else the https public URL, else a local mailto:."""
    if settings.webpush_subject:
        return settings.webpush_subject
    base = public_base_url(settings)
    if base.startswith("https://"):
        return base
    return "mailto:webpush@localhost"


@asynccontextmanager
async def open_providers(
    settings: Settings,
    *,
    pool: asyncpg.Pool | None = None,
    live: LiveHub | None = None,
    now: datetime | None = None,
) -> AsyncIterator[Providers]:
    """Build the configured providers inside the running loop; close them on exit.

    With neither FCM nor Twilio configured, alerts go to the log provider, so a
    demo or a development machine works without any account. Web Push needs no
    account either: it is on when a ``pool`` holds (or receives) the VAPID key,
    unless ``DISPATCH_WEBPUSH_ENABLED`` is off; the live channel when a ``live`` hub
    is given.
    """
    async with AsyncExitStack() as stack:
        providers = Providers()
        if live is not None:
            providers.live = LiveNotifier(live)
        if pool is not None and settings.webpush_enabled:
            key = await webpush_service.load_or_create_key(
                pool, passphrase=settings.webpush_key_passphrase, now=now or datetime.now(UTC)
            )
            web_push = WebPushNotifier(
                vapid_key=key,
                subject=vapid_subject(settings),
                http_timeout_s=settings.notifier_send_timeout_s,
                max_connections=settings.provider_max_in_flight,
            )
            stack.push_async_callback(web_push.aclose)
            providers.web_push = web_push
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
