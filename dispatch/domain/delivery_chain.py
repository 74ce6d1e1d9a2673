"""The fallback chain for one alert: which channels, in which order, with which deadlines.

Pure decisions. The worker passes what it knows (devices, phone, preferences,
the agency's windows, ``now``) and stores the answer as outbox rows whose
``available_at`` is the deadline (ARCHITECTURE invariant 4), so a restart loses
no timer and any process may run any step.

Timing: after a push the volunteer's phone has ``ack_timeout_s`` to acknowledge
receipt before the next channel starts; after a text or a call the volunteer
has ``answer_timeout_s`` to answer. Steps run in parallel with retries of
earlier steps: a push still being retried does not hold back the text.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from dispatch.domain.alert_states import AlertState


class Step(StrEnum):
    PUSH = "push"
    WEB_PUSH = "web_push"
    LIVE = "live"
    SMS = "sms"
    VOICE = "voice"
    LOG = "log"


START: Final = "auto"
"""The outbox channel intake writes: "start this alert's chain"."""

STAND_DOWN: Final = "stand_down"
"""An outbox row telling a volunteer they are no longer needed (stood down or released)."""

_STOOD_DOWN: Final = frozenset({AlertState.STOOD_DOWN, AlertState.RELEASED})


def stand_down_step(reach: Reach, *, configured: Collection[Step]) -> Step | None:
    """One channel for a stand-down notice: push if possible, else Web Push, else a text,
    else the log. (An open app's live stream gets the notice as well, whichever this is.)

    Never a call: being rung to hear "you are not needed" is worse than no news.
    """
    if Step.PUSH in configured and reach.has_device and Step.PUSH.value not in reach.refused:
        return Step.PUSH
    if (
        Step.WEB_PUSH in configured
        and reach.has_web_push
        and Step.PUSH.value not in reach.refused
        and Step.WEB_PUSH.value not in reach.refused
    ):
        return Step.WEB_PUSH
    if (
        Step.SMS in configured
        and reach.has_phone
        and reach.sms_allowed
        and Step.SMS.value not in reach.refused
    ):
        return Step.SMS
    return Step.LOG if Step.LOG in configured else None


DEFAULT_ORDER: Final = (Step.PUSH, Step.SMS, Step.VOICE)
"""The vendor channels, in their default order; Web Push shares the push slot."""
PUSH_TIER: Final = frozenset({Step.PUSH, Step.WEB_PUSH})
"""Steps sent at the same time, each to its own kind of device; one ack window for both."""

# A receipt (device ack, SMS delivered) makes a further push or text pointless; only a
# call, which reaches someone who saw the alert but has not answered, still follows.
_RECEIPT_GATED: Final = frozenset({AlertState.QUEUED, AlertState.SENT})
_ANSWER_GATED: Final = frozenset({AlertState.QUEUED, AlertState.SENT, AlertState.DELIVERED})

# Provider error codes (notify.errors.ErrorCode values) and what they mean for the chain.
DEACTIVATE_DEVICE: Final = frozenset({"unregistered", "sender_id_mismatch", "invalid_token"})
SMS_OPT_OUT: Final = "sms_opt_out"
INVALID_NUMBER: Final = "invalid_number"
AMBIGUOUS: Final = frozenset({"server_error", "timeout", "network_error", "internal"})


@dataclass(frozen=True, slots=True)
class Reach:
    """How a volunteer can be reached right now."""

    has_device: bool
    has_phone: bool
    sms_allowed: bool
    """False after STOP or when the number is known to be invalid."""
    voice_allowed: bool
    preferred: str | None = None
    refused: Collection[str] = ()
    has_web_push: bool = False
    """An active Web Push subscription."""
    has_live: bool = False
    """An open live stream (the app is in front of the volunteer now)."""


@dataclass(frozen=True, slots=True)
class PlannedStep:
    step: Step
    at: datetime


def plan(
    reach: Reach,
    *,
    configured: Collection[Step],
    now: datetime,
    ack_timeout_s: float,
    answer_timeout_s: float,
) -> list[PlannedStep]:
    """The chain for a new alert; empty when no configured channel can reach the volunteer.

    An open live stream comes first, at once; the push slot (FCM and Web Push, side by
    side) follows one ack window later, or at once without a stream. With no vendor
    provider configured (development, demos) the chain ends in the ``log`` step.
    """
    refused = set(reach.refused)
    steps: list[PlannedStep] = []
    at = now
    if Step.LIVE in configured and reach.has_live and Step.LIVE.value not in refused:
        steps.append(PlannedStep(Step.LIVE, at))
        at += timedelta(seconds=ack_timeout_s)
    web_push = (
        Step.WEB_PUSH in configured
        and reach.has_web_push
        and not refused & {Step.PUSH.value, Step.WEB_PUSH.value}
    )
    if not any(s in configured for s in DEFAULT_ORDER):
        if web_push:
            steps.append(PlannedStep(Step.WEB_PUSH, at))
            at += timedelta(seconds=ack_timeout_s)
        if Step.LOG in configured:
            steps.append(PlannedStep(Step.LOG, at))
        return steps
    possible = {
        Step.PUSH: reach.has_device or web_push,
        Step.SMS: reach.has_phone and reach.sms_allowed,
        Step.VOICE: reach.has_phone and reach.voice_allowed,
    }
    order = list(DEFAULT_ORDER)
    if reach.preferred in order:
        preferred = Step(reach.preferred)
        order.remove(preferred)
        order.insert(0, preferred)
    # The push slot stands for FCM and Web Push: it is there when either can go.
    usable = set(configured) | ({Step.PUSH} if web_push else set())
    chosen = [s for s in order if s in usable and possible[s] and s.value not in refused]
    for step in chosen:
        if step is Step.PUSH:
            fcm = Step.PUSH in configured and reach.has_device and Step.PUSH.value not in refused
            if fcm:
                steps.append(PlannedStep(Step.PUSH, at))
            if web_push:
                steps.append(PlannedStep(Step.WEB_PUSH, at))
            at += timedelta(seconds=ack_timeout_s)
            continue
        steps.append(PlannedStep(step, at))
        at += timedelta(seconds=answer_timeout_s)
    return steps


def still_needed(step: str, state: AlertState, *, expires_at: datetime, now: datetime) -> bool:
    """Whether a due step should still go out, given the alert's state now."""
    if step == STAND_DOWN:
        return state in _STOOD_DOWN
    if expires_at <= now:
        return False
    if step == Step.VOICE:
        return state in _ANSWER_GATED
    if step == START:
        return state is AlertState.QUEUED
    return state in _RECEIPT_GATED


def shift_for_next(pending: Sequence[datetime], now: datetime) -> timedelta:
    """How far to move the remaining steps earlier after a step failed for good.

    The next step starts now; the ones after it keep their spacing.
    """
    if not pending:
        return timedelta(0)
    first = min(pending)
    return max(timedelta(0), first - now)
