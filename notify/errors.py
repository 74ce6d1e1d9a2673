"""Error codes our providers report, and the vendor-error tables that produce them.

Providers never raise for provider or network failures: they return a
:class:`~notify.ports.DeliveryResult` whose ``error_code`` is one of
:class:`ErrorCode`. Only configuration mistakes found at construction raise
(:class:`ConfigurationError`).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from enum import StrEnum


class NotifyError(Exception):
    """Base class for errors raised by ``notify`` itself (never for a failed delivery)."""


class ConfigurationError(NotifyError):
    """A provider cannot be built from the given settings (missing file, bad SID, …)."""


class ErrorCode(StrEnum):
    """Stable values for ``DeliveryResult.error_code``; the response log stores them."""

    # Push (FCM)
    UNREGISTERED = "unregistered"
    """The device token/FID is dead: deactivate it."""
    SENDER_ID_MISMATCH = "sender_id_mismatch"
    """The token belongs to another Firebase project: deactivate it."""
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - an error code, not a secret
    """FCM says the address is not a valid registration token/FID: deactivate it."""
    INVALID_ARGUMENT = "invalid_argument"
    """FCM rejected the payload (our bug); the device is fine, do not deactivate it."""
    QUOTA_EXCEEDED = "quota_exceeded"
    THIRD_PARTY_AUTH = "third_party_auth"
    """APNs / web-push credentials in the Firebase project are wrong: page operations."""
    # SMS / voice (Twilio)
    SMS_OPT_OUT = "sms_opt_out"
    """The recipient replied STOP; SMS is off for this number, voice may still work."""
    INVALID_NUMBER = "invalid_number"
    LANDLINE = "landline"
    """The number cannot receive SMS: skip to voice."""
    QUEUE_FULL = "queue_full"
    # Shared
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    """5xx from the provider. On a create call the message may exist: see AMBIGUOUS_CODES."""
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    """Our deadline passed. On a create call the message may exist: see AMBIGUOUS_CODES."""
    NETWORK_ERROR = "network_error"
    AUTH_ERROR = "auth_error"
    """Our own credentials were refused or could not be refreshed: configuration alarm."""
    AUTH_UNAVAILABLE = "auth_unavailable"
    """The OAuth token endpoint failed transiently."""
    CONFIG_ERROR = "config_error"
    EXPIRED = "expired"
    """The alert's ``expires_at`` has passed; nothing was sent."""
    INVALID_MESSAGE = "invalid_message"
    """The AlertMessage could not be encoded (rejected client-side, nothing was sent)."""
    PROVIDER_ERROR = "provider_error"
    """Any other 4xx answer: permanent on this channel."""
    INTERNAL = "internal"
    """An unexpected exception inside ``notify``; treated as retryable and logged."""


AMBIGUOUS_CODES: frozenset[str] = frozenset(
    {ErrorCode.SERVER_ERROR, ErrorCode.TIMEOUT, ErrorCode.NETWORK_ERROR, ErrorCode.INTERNAL}
)
"""Codes after which a Twilio create may or may not have happened.

For SMS, call :meth:`notify.twilio_sms.TwilioSmsNotifier.find_existing`
before any resend. (For FCM a duplicate is harmless: the device drops it by alert id.)
"""

DEACTIVATE_DEVICE_CODES: frozenset[str] = frozenset(
    {ErrorCode.UNREGISTERED, ErrorCode.SENDER_ID_MISMATCH, ErrorCode.INVALID_TOKEN}
)
"""Push codes after which the caller should deactivate the device address."""


_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{5,}\d")


def redact(text: str, limit: int = 300) -> str:
    """Drop phone-number-like digit runs from a provider message and cap its length.

    Provider error messages often quote the recipient (``The 'To' number +1555… is
    not valid``); ``DeliveryResult.detail`` ends up in the response log.
    """
    return _PHONE_LIKE.sub("<redacted>", text)[:limit]


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), else None."""
    if not headers:
        return None
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


# Twilio error code -> (permanent?, our code). Anything else: 429 / 5xx retryable,
# other 4xx permanent ``provider_error``.
TWILIO_ERROR_TABLE: Mapping[int, tuple[bool, ErrorCode]] = {
    20429: (False, ErrorCode.RATE_LIMITED),
    21611: (False, ErrorCode.QUEUE_FULL),
    21610: (True, ErrorCode.SMS_OPT_OUT),
    21211: (True, ErrorCode.INVALID_NUMBER),
    21217: (True, ErrorCode.INVALID_NUMBER),
    30005: (True, ErrorCode.INVALID_NUMBER),
    13224: (True, ErrorCode.INVALID_NUMBER),
    21614: (True, ErrorCode.LANDLINE),
    30006: (True, ErrorCode.LANDLINE),
    20003: (True, ErrorCode.AUTH_ERROR),
    20005: (True, ErrorCode.AUTH_ERROR),
    21212: (True, ErrorCode.CONFIG_ERROR),
    21606: (True, ErrorCode.CONFIG_ERROR),
    21608: (True, ErrorCode.CONFIG_ERROR),
    21215: (True, ErrorCode.CONFIG_ERROR),
    21408: (True, ErrorCode.CONFIG_ERROR),
}


def classify_twilio(status: int, code: int | None) -> tuple[bool, ErrorCode]:
    """``(permanent, error_code)`` for a Twilio error answer."""
    if code is not None and code in TWILIO_ERROR_TABLE:
        return TWILIO_ERROR_TABLE[code]
    if status == 429:
        return False, ErrorCode.RATE_LIMITED
    if status >= 500:
        return False, ErrorCode.SERVER_ERROR
    if status in (401, 403):
        return True, ErrorCode.AUTH_ERROR
    return True, ErrorCode.PROVIDER_ERROR
