"""A token bucket per key, driven by an explicit clock (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """``rate_per_min`` requests per minute per key, with bursts up to the same number.

    Per process: several processes each allow the full rate, which errs on the
    side of accepting a dispatch centre's traffic rather than dropping it.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self._buckets: dict[object, _Bucket] = {}
        self._max_keys = max_keys

    def take(self, key: object, rate_per_min: int, now_s: float) -> float:
        """0 when the request may pass, else the seconds until it would."""
        capacity = float(rate_per_min)
        per_s = rate_per_min / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(capacity, now_s)
        bucket.tokens = min(capacity, bucket.tokens + (now_s - bucket.at) * per_s)
        bucket.at = now_s
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / per_s
