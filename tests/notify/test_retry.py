"""The pure backoff policy."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.retry import next_attempt_delay


class Top:
    """Always the upper bound of the jitter window."""

    def uniform(self, a: float, b: float, /) -> float:
        return b


class Bottom:
    def uniform(self, a: float, b: float, /) -> float:
        return a


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0), (500, 30.0)]
)
def test_exponential_ceiling_capped(attempt: int, expected: float) -> None:
    delay = next_attempt_delay(attempt, base_s=1, cap_s=30, remaining_s=1000, rng=Top())
    assert delay == expected


def test_full_jitter_can_be_zero() -> None:
    assert next_attempt_delay(4, base_s=1, cap_s=30, remaining_s=100, rng=Bottom()) == 0.0


def test_retry_after_is_a_floor_even_above_cap() -> None:
    delay = next_attempt_delay(1, base_s=1, cap_s=5, retry_after_s=42, remaining_s=100, rng=Top())
    assert delay == 42


def test_gives_up_when_deadline_would_pass() -> None:
    assert next_attempt_delay(1, retry_after_s=60, remaining_s=59, rng=Top()) is None
    assert next_attempt_delay(3, base_s=10, remaining_s=30, rng=Top()) is None
    assert next_attempt_delay(1, remaining_s=0) is None
    assert next_attempt_delay(1, remaining_s=-5) is None


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="attempt"):
        next_attempt_delay(0, remaining_s=10)
    with pytest.raises(ValueError, match="positive"):
        next_attempt_delay(1, base_s=0, remaining_s=10)


@given(
    attempt=st.integers(1, 100),
    base=st.floats(0.01, 10),
    cap=st.floats(0.01, 120),
    retry_after=st.none() | st.floats(0, 300),
    remaining=st.floats(-10, 600),
    seed=st.integers(0, 2**32),
)
def test_properties(
    attempt: int,
    base: float,
    cap: float,
    retry_after: float | None,
    remaining: float,
    seed: int,
) -> None:
    delay = next_attempt_delay(
        attempt,
        base_s=base,
        cap_s=cap,
        retry_after_s=retry_after,
        remaining_s=remaining,
        rng=random.Random(seed),
    )
    if delay is None:
        return
    assert 0 <= delay < remaining
    assert delay >= (retry_after or 0)
    assert delay <= max(cap, retry_after or 0)
