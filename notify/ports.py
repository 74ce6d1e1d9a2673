"""The notifier port and the values that cross it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Channel(StrEnum):
    PUSH = "push"
    WEB_PUSH = "web_push"
    LIVE = "live"
    SMS = "sms"
    VOICE = "voice"
    LOG = "log"


class DeliveryOutcome(StrEnum):
    ACCEPTED = "accepted"
    """The provider took the message; delivery to the handset is reported later, if at all."""
    RETRYABLE = "retryable"
    """Transient: the same message may succeed later (throttling, 5xx, network)."""
    PERMANENT = "permanent"
    """Never retry on this channel with this address (unregistered token, invalid number)."""


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """Everything a provider needs to tell one volunteer about one alert.

    ``address`` is the channel's recipient (device token or E.164 phone number);
    it is a secret as far as logs are concerned. ``expires_at`` bounds every
    retry and the provider-side time-to-live.
    """

    alert_id: str
    incident_id: str
    volunteer_id: int
    role: str
    address: str
    title: str
    body: str
    expires_at: datetime
    language: str = "en"
    data: Mapping[str, str] = field(default_factory=dict)
    collapse_key: str | None = None
    """Push collapse key / APNs collapse id; providers default to ``alert-<alert_id>``."""
    critical: bool = False
    """iOS critical alert (needs the agency's Apple entitlement); else time-sensitive."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    channel: Channel
    outcome: DeliveryOutcome
    latency_ms: float
    provider_message_id: str | None = None
    error_code: str | None = None
    detail: str | None = None
    retry_after_s: float | None = None


class Notifier(Protocol):
    """**Protocol**: one delivery channel.

    ``send`` must not raise for provider or network failures: it maps them to a
    :class:`DeliveryResult`. It must return within ``timeout_s``.
    """

    @property
    def channel(self) -> Channel: ...

    async def send(self, message: AlertMessage, *, timeout_s: float) -> DeliveryResult: ...

    async def aclose(self) -> None: ...


class BatchNotifier(Notifier, Protocol):
    """**Protocol**: a channel that takes many messages in one call (push)."""

    async def send_many(
        self, messages: Sequence[AlertMessage], *, timeout_s: float
    ) -> list[DeliveryResult]:
        """One result per message, in order; never raises for provider or network failures."""
        ...


class LookupNotifier(Notifier, Protocol):
    """**Protocol**: a channel whose sent messages can be looked up (SMS).

    After a send whose outcome is unknown (a timeout, a 5xx, a crash before the
    result was recorded) the caller looks before sending again.
    """

    async def find_existing(
        self, message: AlertMessage, *, timeout_s: float
    ) -> DeliveryResult | None:
        """``None``: no such message exists, sending cannot duplicate it. ``ACCEPTED``: it
        exists, do not send. ``RETRYABLE``: the lookup failed; look again later."""
        ...
