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


@dataclass(slots=True)
class _Level:
    failures: float
    at: float


class FailureThrottle:
    """Failed attempts per key, forgiven at a steady rate; blocked while ``burst`` are pending.

    A key that keeps failing is answered "wait" without any work; one that stops is
    forgiven ``per_min`` failures a minute. The least recently failing keys are
    dropped first when the table is full, so a spray of new keys cannot push out the
    one under attack (it keeps failing, so it stays recent).
    """

    def __init__(self, burst: int, per_min: float, max_keys: int = 10_000) -> None:
        self._burst = float(burst)
        self._per_s = per_min / 60.0
        self._max_keys = max_keys
        self._levels: dict[object, _Level] = {}

    def _level(self, key: object, now_s: float) -> float:
        entry = self._levels.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.failures - (now_s - entry.at) * self._per_s)

    def blocked_for(self, key: object, now_s: float) -> float:
        """0 when ``key`` may try, else the seconds until it may."""
        excess = self._level(key, now_s) - self._burst + 1.0
        return excess / self._per_s if excess > 0 else 0.0

    def refund(self, key: object, now_s: float) -> None:
        """Take back one recorded failure (an attempt counted up front that succeeded)."""
        entry = self._levels.get(key)
        if entry is not None:
            entry.failures = max(0.0, self._level(key, now_s) - 1.0)
            entry.at = now_s

    def record(self, key: object, now_s: float) -> None:
        level = self._level(key, now_s) + 1.0
        self._levels.pop(key, None)
        while len(self._levels) >= self._max_keys:
            del self._levels[next(iter(self._levels))]
        self._levels[key] = _Level(level, now_s)
