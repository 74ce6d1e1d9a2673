"""What the outbox worker does with one due step, and with what the provider answered.

Pure decisions over the facts of a leased outbox row (``DueStep``) and a
provider's answer (anything shaped like ``notify.ports.DeliveryResult``): which
step goes out now and which follow later, whether a step cannot go out at all,
and whether an answer finishes the step, fails it, or schedules a retry. The
worker (``dispatch.workers.notifier``) does the sending and the writing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, Protocol, TypeVar

from dispatch.domain import delivery_chain as chain
from dispatch.domain.alert_states import AlertState
from dispatch.domain.delivery_chain import PlannedStep, Reach, Step

# Values of ``notify.ports.DeliveryOutcome``.
ACCEPTED: Final = "accepted"
RETRYABLE: Final = "retryable"

PACED: Final = "paced"
"""Error code of a send held back by our own pacing: retried without a timeline entry."""

NO_CHANNEL: Final = "no_channel"


class SendResult(Protocol):
    """**Protocol**: the parts of a provider's answer that decisions read."""

    @property
    def outcome(self) -> str: ...

    @property
    def error_code(self) -> str | None: ...

    @property
    def retry_after_s(self) -> float | None: ...

    @property
    def provider_message_id(self) -> str | None: ...


class Backoff(Protocol):
    """**Protocol**: seconds before retry number ``attempt``, or None to give up."""

    def __call__(
        self, attempt: int, *, retry_after_s: float | None, remaining_s: float
    ) -> float | None: ...


@dataclass(frozen=True, slots=True)
class DueStep:
    """The facts of one leased outbox row that decide what to send."""

    channel: str
    """An outbox channel: a :class:`Step` value, ``chain.START`` or ``chain.STAND_DOWN``."""
    state: AlertState
    expires_at: datetime
    reach: Reach
    ack_timeout_s: float
    answer_timeout_s: float


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What to do with a due row before anything is sent."""

    step: Step | None = None
    later: tuple[PlannedStep, ...] = ()
    """Further steps of a new chain, to be written with their deadlines."""
    notice: bool = False
    """A stand-down notice rather than a step of the alert's chain."""
    skip_reason: str | None = None
    """Set when the row is no longer needed: it is done, nothing is sent."""
    failure: str | None = None
    """Set when the step fails at once without a send (an error code)."""
    failure_detail: str | None = None


def reach_of(
    *,
    has_device: bool,
    phone_e164: str | None,
    sms_opt_out: bool,
    phone_invalid: bool,
    preferred: str | None,
    refused: Collection[str],
    has_web_push: bool = False,
    has_live: bool = False,
) -> Reach:
    return Reach(
        has_device=has_device,
        has_phone=phone_e164 is not None,
        sms_allowed=not (sms_opt_out or phone_invalid),
        voice_allowed=not phone_invalid,
        preferred=preferred,
        refused=refused,
        has_web_push=has_web_push,
        has_live=has_live,
    )


def unavailable(step: Step, reach: Reach, *, configured: Collection[Step]) -> str | None:
    """Why a step planned earlier cannot go out now (a STOP or dead token since), if so."""
    if step not in configured:
        return "not_configured"
    if step is Step.PUSH and not reach.has_device:
        return "no_device"
    if step is Step.WEB_PUSH and not reach.has_web_push:
        return "no_subscription"
    if step is Step.WEB_PUSH and Step.PUSH.value in reach.refused:
        return "refused"
    if step is Step.LIVE and not reach.has_live:
        return "no_stream"
    if step in (Step.SMS, Step.VOICE) and not (reach.has_phone and reach.voice_allowed):
        return "no_phone"
    if step is Step.SMS and not reach.sms_allowed:
        return "sms_opt_out"
    if step.value in reach.refused:
        return "refused"
    return None


def _no_channel(step: Step | None = None) -> StepPlan:
    return StepPlan(step=step, failure=NO_CHANNEL, failure_detail="no way to reach the volunteer")


def plan_step(due: DueStep, *, configured: Collection[Step], now: datetime) -> StepPlan:
    """The step to send for a due row, the steps after it, or why none goes out."""
    if not chain.still_needed(due.channel, due.state, expires_at=due.expires_at, now=now):
        return StepPlan(skip_reason="expired" if due.expires_at <= now else due.state.value)
    later: tuple[PlannedStep, ...] = ()
    notice = False
    if due.channel == chain.STAND_DOWN:
        step = chain.stand_down_step(due.reach, configured=configured)
        if step is None:
            return _no_channel()
        notice = True
    elif due.channel == chain.START:
        steps = chain.plan(
            due.reach,
            configured=configured,
            now=now,
            ack_timeout_s=due.ack_timeout_s,
            answer_timeout_s=due.answer_timeout_s,
        )
        if not steps:
            return _no_channel()
        step, later = steps[0].step, tuple(steps[1:])
    else:
        step = Step(due.channel)
    reason = unavailable(step, due.reach, configured=configured)
    if reason is not None:
        return StepPlan(
            step=step,
            later=later,
            notice=notice,
            failure=reason,
            failure_detail="not reachable this way",
        )
    return StepPlan(step=step, later=later, notice=notice)


Outcome = Literal["sent", "failed", "skipped", "retry"]


@dataclass(frozen=True, slots=True)
class StepDecision:
    outcome: Outcome
    """``sent``, ``failed``, ``skipped`` (the row is done) or ``retry``."""
    error: str | None = None
    ref: str | None = None
    retry_at: datetime | None = None


def decide(
    result: SendResult | None,
    *,
    attempts: int,
    expires_at: datetime,
    now: datetime,
    backoff: Backoff,
) -> StepDecision:
    """How a step ends after its send: sent, failed, skipped (nothing sent) or retried later."""
    if result is None:
        return StepDecision("skipped")
    if result.outcome == ACCEPTED:
        return StepDecision("sent", ref=result.provider_message_id)
    if result.outcome == RETRYABLE:
        delay = retry_delay(
            result, attempts=attempts, expires_at=expires_at, now=now, backoff=backoff
        )
        if delay is not None:
            at = now + timedelta(seconds=delay)
            return StepDecision("retry", error=result.error_code, retry_at=at)
    # Permanent, or out of time for retries: this step is over.
    return StepDecision("failed", error=result.error_code)


def retry_delay(
    result: SendResult, *, attempts: int, expires_at: datetime, now: datetime, backoff: Backoff
) -> float | None:
    """Seconds until a retryable step is tried again; None when the alert runs out first."""
    remaining = (expires_at - now).total_seconds()
    if result.error_code == PACED:
        wait = result.retry_after_s or 1.0
        return wait if wait < remaining else None
    return backoff(max(1, attempts), retry_after_s=result.retry_after_s, remaining_s=remaining)


R = TypeVar("R", bound=SendResult)


def best_of(results: Sequence[R]) -> tuple[R, float | None]:
    """One push result for an alert sent to several devices: the best of them.

    Returns the result and the Retry-After it should carry: a retry honours the
    longest wait any device's answer asked for.
    """
    for outcome in (ACCEPTED, RETRYABLE):
        found = [r for r in results if r.outcome == outcome]
        if not found:
            continue
        if outcome == RETRYABLE:
            waits = [r.retry_after_s for r in found if r.retry_after_s is not None]
            if waits:
                return found[0], max(waits)
        return found[0], found[0].retry_after_s
    return results[0], results[0].retry_after_s


def volunteer_flag(code: str | None, step: Step | None) -> str | None:
    """The volunteer flag a failed step's error code sets, if any."""
    if code == chain.SMS_OPT_OUT:
        return "sms_opt_out"
    if code == chain.INVALID_NUMBER and step in (Step.SMS, Step.VOICE):
        return "phone_invalid"
    return None


def may_be_at_provider(step: Step, error_code: str | None) -> bool:
    """A text whose create ended ambiguously: look it up at the provider before sending again."""
    return step is Step.SMS and error_code in chain.AMBIGUOUS
