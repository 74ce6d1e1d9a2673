"""SMS alerts through Twilio's Messages API (async client).

Lifecycle (inside the running loop, e.g. an aiohttp ``cleanup_ctx``)::

    sms = await TwilioSmsNotifier.create(account_sid=..., auth_token=...,
                                         messaging_service_sid="MG...",
                                         status_callback_url="https://.../v1/twilio/sms-status")
    ...
    await sms.aclose()

or ``async with await TwilioSmsNotifier.create(...) as sms: ...``.

**No duplicate texts.** A create that ends in ``timeout``, ``server_error`` or
``network_error`` (:data:`notify.errors.AMBIGUOUS_CODES`) may have created the
message anyway. The caller must not resend blindly; it calls
:meth:`TwilioSmsNotifier.find_existing` first:

- ``None``: no message carrying this alert's marker exists for that number, so
  sending again cannot duplicate a text;
- an ``ACCEPTED`` result: the message exists; record its SID, do not resend;
- a ``RETRYABLE`` result: the lookup itself failed; look again later (with
  :func:`notify.retry.next_attempt_delay`) or escalate to voice, but do not resend.

A freshly created message can take a moment to appear in the list, so schedule
the lookup after the backoff delay rather than immediately.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Self

from notify._twilio_http import (
    DeadlineTwilioHttpClient,
    TwilioNotifier,
    call_twilio,
    for_alert,
    utcnow,
)
from notify.errors import ConfigurationError
from notify.ports import AlertMessage, Channel, DeliveryResult
from notify.results import accepted

MAX_BODY_CHARS = 1600
MIN_VALIDITY_S = 1
MAX_VALIDITY_S = 36000
"""Twilio's accepted ``ValidityPeriod`` range (CreateMessage in the 2010 OpenAPI spec)."""
LOOKUP_PAGE_SIZE = 20
_ABSENT_STATUSES = frozenset({"failed", "canceled", "undelivered"})


def sms_marker(alert_id: str, kind: str | None = None) -> str:
    """The tag appended to every alert SMS; :meth:`TwilioSmsNotifier.find_existing` looks for it.

    ``kind`` (a message's ``data["type"]``, e.g. ``stand_down``) tells a follow-up text
    about the same alert apart from the alert itself, so looking up one never finds the other.
    """
    suffix = alert_id[-12:]
    return f"[ref {suffix} {kind}]" if kind else f"[ref {suffix}]"


def _marker_of(message: AlertMessage) -> str:
    return sms_marker(message.alert_id, message.data.get("type"))


def build_sms_body(message: AlertMessage) -> str:
    """``title: body [ref <alert id suffix>]``, cut to Twilio's 1600 characters."""
    marker = _marker_of(message)
    text = f"{message.title}: {message.body}" if message.title else message.body
    room = MAX_BODY_CHARS - len(marker) - 1
    if len(text) > room:
        text = text[: room - 1] + "…"
    return f"{text} {marker}"


class TwilioSmsNotifier(TwilioNotifier):
    """:class:`notify.ports.LookupNotifier` for SMS. Build it with :meth:`create` inside the loop.

    ``status_callback_url`` may contain ``{alert_id}``, filled in per message.
    """

    CHANNEL: ClassVar[Channel] = Channel.SMS

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        http_client: DeadlineTwilioHttpClient,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        status_callback_url: str | None = None,
        owns_http_client: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if bool(messaging_service_sid) == bool(from_number):
            raise ConfigurationError("give exactly one of messaging_service_sid or from_number")
        if messaging_service_sid and not (
            messaging_service_sid.startswith("MG") and len(messaging_service_sid) == 34
        ):
            raise ConfigurationError("messaging_service_sid must look like MG + 32 hex digits")
        super().__init__(
            account_sid=account_sid,
            auth_token=auth_token,
            http_client=http_client,
            owns_http_client=owns_http_client,
            clock=clock,
        )
        self._messaging_service_sid = messaging_service_sid
        self._from = from_number
        self._status_callback = status_callback_url

    @classmethod
    async def create(
        cls,
        *,
        account_sid: str,
        auth_token: str,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        status_callback_url: str | None = None,
        base_url: str | None = None,
        request_timeout_s: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> Self:
        """Build the notifier and its own HTTP client (must run inside the event loop)."""
        return await cls._with_own_client(
            request_timeout_s=request_timeout_s,
            base_url=base_url,
            account_sid=account_sid,
            auth_token=auth_token,
            messaging_service_sid=messaging_service_sid,
            from_number=from_number,
            status_callback_url=status_callback_url,
            clock=clock,
        )

    async def send(self, message: AlertMessage, *, timeout_s: float) -> DeliveryResult:
        remaining = self._remaining_s(message)
        if remaining < MIN_VALIDITY_S:
            return self._expired("alert expired before sending")
        validity = max(MIN_VALIDITY_S, min(MAX_VALIDITY_S, int(remaining)))
        kwargs: dict[str, Any] = {
            "to": message.address,
            "body": build_sms_body(message),
            "validity_period": validity,
        }
        if self._messaging_service_sid:
            kwargs["messaging_service_sid"] = self._messaging_service_sid
        else:
            kwargs["from_"] = self._from
        if self._status_callback:
            # The alert id in the callback URL lets a callback that beats our own commit of
            # the message SID still find its alert.
            kwargs["status_callback"] = for_alert(self._status_callback, message.alert_id)

        async def create() -> Any:
            return await self._client.messages.create_async(**kwargs)

        return await self._create(create, timeout_s=timeout_s)

    async def find_existing(
        self, message: AlertMessage, *, timeout_s: float
    ) -> DeliveryResult | None:
        """Look for an SMS already created for this alert (after an ambiguous create).

        Lists the newest messages to ``message.address`` and matches
        :func:`sms_marker` in the body. No ``DateSent`` filter on purpose: Twilio's
        filter is day-granular, and a message still ``queued`` has no send date yet,
        which is exactly the case we must not miss. Messages that ended ``failed``,
        ``canceled`` or ``undelivered`` count as absent (no text reached the phone).
        See the module docstring for how to act on the result.
        """
        started = time.perf_counter()
        marker = _marker_of(message)

        async def lookup() -> Any:
            return await self._client.messages.list_async(
                to=message.address, limit=LOOKUP_PAGE_SIZE, page_size=LOOKUP_PAGE_SIZE
            )

        records, failure = await call_twilio(Channel.SMS, lookup, timeout_s=timeout_s)
        if failure is not None:
            return failure
        for record in records:
            body = getattr(record, "body", None) or ""
            status = str(getattr(record, "status", "") or "")
            if marker in body and status not in _ABSENT_STATUSES:
                return accepted(
                    Channel.SMS,
                    started,
                    getattr(record, "sid", None),
                    detail=f"found existing message (status {status})",
                )
        return None
