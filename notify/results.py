"""Building a :class:`~notify.ports.DeliveryResult` from a send that began at ``started``
(a ``time.perf_counter()`` reading), the same way in every provider."""

from __future__ import annotations

import time

from notify.errors import ErrorCode
from notify.ports import Channel, DeliveryOutcome, DeliveryResult


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def accepted(
    channel: Channel,
    started: float,
    provider_message_id: str | None = None,
    *,
    detail: str | None = None,
) -> DeliveryResult:
    """The provider took the message."""
    return DeliveryResult(
        channel=channel,
        outcome=DeliveryOutcome.ACCEPTED,
        latency_ms=_elapsed_ms(started),
        provider_message_id=provider_message_id,
        detail=detail,
    )


def failed(
    channel: Channel,
    started: float,
    outcome: DeliveryOutcome,
    code: str,
    detail: str,
    retry_after_s: float | None = None,
) -> DeliveryResult:
    """The send failed with ``code``; ``detail`` must already be redacted."""
    return DeliveryResult(
        channel=channel,
        outcome=outcome,
        latency_ms=_elapsed_ms(started),
        error_code=code,
        detail=detail,
        retry_after_s=retry_after_s,
    )


def unreached(channel: Channel, started: float, exc: Exception) -> DeliveryResult:
    """No answer from the provider: a timeout, or a network error (named by its type only,
    as its text may carry the address). Both are worth retrying."""
    if isinstance(exc, TimeoutError):
        return failed(
            channel, started, DeliveryOutcome.RETRYABLE, ErrorCode.TIMEOUT, "no answer in time"
        )
    return failed(
        channel, started, DeliveryOutcome.RETRYABLE, ErrorCode.NETWORK_ERROR, type(exc).__name__
    )
