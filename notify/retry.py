"""Pure backoff policy for re-sending an alert on the same channel.

No sleeping and no clock here: the caller passes how long the alert still has
(``remaining_s``) and a random source, and stores the returned delay as a
deadline column (ARCHITECTURE.md invariant 4).
"""

from __future__ import annotations

import random
from typing import Protocol


class UniformRng(Protocol):
    """**Protocol**: the one method of :class:`random.Random` this module uses."""

    def uniform(self, a: float, b: float, /) -> float: ...


_DEFAULT_RNG = random.Random()  # noqa: S311 - jitter, not cryptography


def next_attempt_delay(
    attempt: int,
    *,
    base_s: float = 1.0,
    cap_s: float = 30.0,
    retry_after_s: float | None = None,
    remaining_s: float,
    rng: UniformRng | None = None,
) -> float | None:
    """Seconds to wait before retry number ``attempt`` (1 = first retry), or None to give up.

    Exponential backoff with full jitter: ``uniform(0, min(cap_s, base_s * 2**(attempt-1)))``.
    A provider's ``Retry-After`` is a floor: we never come back sooner than it says,
    even above ``cap_s``. None when the attempt would start at or after the
    alert's deadline (``remaining_s`` from now), so the caller escalates instead.
    """
    if attempt < 1:
        raise ValueError("attempt counts retries and starts at 1")
    if base_s <= 0 or cap_s <= 0:
        raise ValueError("base_s and cap_s must be positive")
    if remaining_s <= 0:
        return None
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 62))
    delay = (rng or _DEFAULT_RNG).uniform(0.0, ceiling)
    if retry_after_s is not None and retry_after_s > delay:
        delay = retry_after_s
    if delay >= remaining_s:
        return None
    return delay
