"""Sign-in codes by SMS: how long they live, how often they may be asked for and tried.

Pure decisions over what the store read (the codes issued to one number, one code's
state); the service applies them in a transaction.

A six-digit code has a million values. Five tries per code and at most five codes an
hour and ten a day per number leave a guesser fifty tries a day at one number, and the
number's owner gets every code they did not ask for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

CODE_TTL: Final = timedelta(minutes=10)
MAX_ATTEMPTS: Final = 5
# (how many codes, within how long) per number; the strictest that is full decides.
PHONE_LIMITS: Final = ((5, timedelta(hours=1)), (10, timedelta(days=1)))
CODE_KEEP: Final = timedelta(days=1)
"""Codes are kept this long after issue (the longest window above), then purged."""


def phone_wait_s(issued: Sequence[datetime], now: datetime) -> float:
    """0 when another code may be sent to this number now, else the seconds to wait.

    ``issued`` are the times codes were issued to the number, any order.
    """
    wait = 0.0
    ordered = sorted(issued, reverse=True)
    for limit, window in PHONE_LIMITS:
        recent = [t for t in ordered if t > now - window]
        if len(recent) >= limit:
            # The oldest code that keeps the window full leaves it at this time.
            frees_at = recent[limit - 1] + window
            wait = max(wait, (frees_at - now).total_seconds())
    return wait


class CodeState(StrEnum):
    LIVE = "live"
    USED = "used"
    VOIDED = "voided"
    """Tried wrongly ``MAX_ATTEMPTS`` times: the number is held until the code would expire."""
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class StoredCode:
    state: CodeState
    attempts: int
    expires_at: datetime


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    """Wrong code, or no live code: one answer for both (no oracle)."""
    VOIDED_NOW = "voided_now"
    """This wrong try was the last one allowed: the code is void from now on."""
    HELD = "held"
    """The number's code was voided by wrong tries: 429 until it would have expired."""


def judge(code: StoredCode | None, *, matches: bool, now: datetime) -> Verdict:
    """What one verification attempt means, given the newest code issued to the number.

    ``matches`` is the constant-time comparison's result (computed whatever the state,
    so that every path costs the same).
    """
    if code is None:
        return Verdict.WRONG
    if code.state is CodeState.VOIDED and code.expires_at > now:
        return Verdict.HELD
    if code.state is not CodeState.LIVE or code.expires_at <= now:
        return Verdict.WRONG
    if matches:
        return Verdict.ACCEPTED
    if code.attempts + 1 >= MAX_ATTEMPTS:
        return Verdict.VOIDED_NOW
    return Verdict.WRONG


def held_for_s(code: StoredCode, now: datetime) -> int:
    """Seconds a held number must wait (a voided code's remaining life), at least 1."""
    return max(1, math.ceil((code.expires_at - now).total_seconds()))
