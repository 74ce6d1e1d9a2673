"""The outbox worker's pure decisions: which step goes out, and how a provider's answer ends it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.domain import delivery_chain as chain
from dispatch.domain.alert_states import AlertState
from dispatch.domain.delivery_chain import Reach, Step
from dispatch.domain.delivery_decisions import (
    PACED,
    DueStep,
    StepDecision,
    best_of,
    decide,
    may_be_at_provider,
    plan_step,
    reach_of,
    unavailable,
    volunteer_flag,
)
from notify.ports import Channel, DeliveryOutcome, DeliveryResult

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
ALL = frozenset({Step.PUSH, Step.SMS, Step.VOICE})
EVERYWHERE = Reach(has_device=True, has_phone=True, sms_allowed=True, voice_allowed=True)


def _due(channel: str = chain.START, **changes: object) -> DueStep:
    due = DueStep(
        channel=channel,
        state=AlertState.QUEUED,
        expires_at=NOW + timedelta(minutes=10),
        reach=EVERYWHERE,
        ack_timeout_s=15,
        answer_timeout_s=45,
    )
    return replace(due, **changes)  # type: ignore[arg-type]


# --- plan_step ---------------------------------------------------------------------------


def test_a_new_chain_sends_its_first_step_now_and_keeps_the_rest_for_later() -> None:
    plan = plan_step(_due(), configured=ALL, now=NOW)
    assert plan.step is Step.PUSH
    assert [(s.step, (s.at - NOW).total_seconds()) for s in plan.later] == [
        (Step.SMS, 15.0),
        (Step.VOICE, 60.0),
    ]
    assert (plan.failure, plan.skip_reason, plan.notice) == (None, None, False)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"expires_at": NOW}, "expired"),
        ({"expires_at": NOW - timedelta(seconds=1)}, "expired"),
        ({"state": AlertState.ACCEPTED}, "accepted"),
        ({"state": AlertState.STOOD_DOWN}, "stood_down"),
    ],
)
def test_a_step_no_longer_needed_is_skipped_with_the_reason(
    changes: dict[str, object], reason: str
) -> None:
    plan = plan_step(_due(**changes), configured=ALL, now=NOW)
    assert plan.skip_reason == reason
    assert plan.step is None
    assert plan.failure is None


def test_a_call_still_goes_to_a_volunteer_who_saw_the_alert_but_did_not_answer() -> None:
    plan = plan_step(_due("voice", state=AlertState.DELIVERED), configured=ALL, now=NOW)
    assert plan.step is Step.VOICE
    assert plan.skip_reason is None


def test_a_chain_that_cannot_reach_anyone_fails_without_a_step() -> None:
    nowhere = Reach(has_device=False, has_phone=False, sms_allowed=False, voice_allowed=False)
    plan = plan_step(_due(reach=nowhere), configured=ALL, now=NOW)
    assert plan.failure == "no_channel"
    assert plan.step is None
    assert plan.later == ()


def test_a_stand_down_notice_goes_by_push_and_is_marked_as_a_notice() -> None:
    due = _due(chain.STAND_DOWN, state=AlertState.STOOD_DOWN)
    plan = plan_step(due, configured=ALL, now=NOW)
    assert (plan.step, plan.notice, plan.failure) == (Step.PUSH, True, None)


def test_a_stand_down_notice_with_no_way_to_send_it_fails() -> None:
    due = _due(chain.STAND_DOWN, state=AlertState.RELEASED)
    plan = plan_step(due, configured=frozenset({Step.VOICE}), now=NOW)
    assert plan.failure == "no_channel"
    assert plan.notice is False


def test_a_stand_down_notice_is_skipped_for_an_alert_still_open() -> None:
    plan = plan_step(_due(chain.STAND_DOWN, state=AlertState.SENT), configured=ALL, now=NOW)
    assert plan.skip_reason == "sent"


def test_a_planned_text_fails_at_once_after_the_volunteer_replied_stop() -> None:
    stopped = reach_of(
        has_device=True,
        phone_e164="+15550100",
        sms_opt_out=True,
        phone_invalid=False,
        preferred=None,
        refused=(),
    )
    plan = plan_step(_due("sms", state=AlertState.SENT, reach=stopped), configured=ALL, now=NOW)
    assert (plan.step, plan.failure) == (Step.SMS, "sms_opt_out")


@pytest.mark.parametrize(
    ("step", "reach", "configured", "reason"),
    [
        (Step.SMS, EVERYWHERE, frozenset({Step.PUSH}), "not_configured"),
        (Step.PUSH, replace(EVERYWHERE, has_device=False), ALL, "no_device"),
        (Step.SMS, replace(EVERYWHERE, has_phone=False), ALL, "no_phone"),
        (Step.VOICE, replace(EVERYWHERE, voice_allowed=False), ALL, "no_phone"),
        (Step.SMS, replace(EVERYWHERE, sms_allowed=False), ALL, "sms_opt_out"),
        (Step.VOICE, replace(EVERYWHERE, sms_allowed=False), ALL, None),
        (Step.VOICE, replace(EVERYWHERE, refused=("voice",)), ALL, "refused"),
        (Step.PUSH, EVERYWHERE, ALL, None),
    ],
)
def test_unavailable_names_why_a_step_cannot_go_out(
    step: Step, reach: Reach, configured: frozenset[Step], reason: str | None
) -> None:
    assert unavailable(step, reach, configured=configured) == reason


def test_reach_of_an_invalid_number_allows_neither_text_nor_call() -> None:
    reach = reach_of(
        has_device=False,
        phone_e164="+15550100",
        sms_opt_out=False,
        phone_invalid=True,
        preferred="sms",
        refused=("push",),
    )
    assert reach == Reach(
        has_device=False,
        has_phone=True,
        sms_allowed=False,
        voice_allowed=False,
        preferred="sms",
        refused=("push",),
    )


# --- decide ------------------------------------------------------------------------------


@dataclass
class _Backoff:
    """Records what it was asked and answers a fixed delay."""

    delay: float | None
    calls: list[tuple[int, float | None, float]]

    def __call__(
        self, attempt: int, *, retry_after_s: float | None, remaining_s: float
    ) -> float | None:
        self.calls.append((attempt, retry_after_s, remaining_s))
        return self.delay


def _result(
    outcome: DeliveryOutcome,
    code: str | None = None,
    *,
    retry_after_s: float | None = None,
    ref: str | None = None,
) -> DeliveryResult:
    return DeliveryResult(
        channel=Channel.SMS,
        outcome=outcome,
        latency_ms=1.0,
        provider_message_id=ref,
        error_code=code,
        retry_after_s=retry_after_s,
    )


def _decide(result: DeliveryResult | None, backoff: _Backoff, attempts: int = 0) -> StepDecision:
    return decide(
        result,
        attempts=attempts,
        expires_at=NOW + timedelta(seconds=100),
        now=NOW,
        backoff=backoff,
    )


def test_no_result_means_the_row_was_skipped() -> None:
    assert _decide(None, _Backoff(5.0, [])) == StepDecision("skipped")


def test_an_accepted_send_is_sent_with_the_provider_reference() -> None:
    decision = _decide(_result(DeliveryOutcome.ACCEPTED, ref="SM1"), _Backoff(5.0, []))
    assert decision == StepDecision("sent", ref="SM1")


def test_a_retryable_failure_is_retried_after_the_backoff_within_the_alert_life() -> None:
    backoff = _Backoff(5.0, [])
    result = _result(DeliveryOutcome.RETRYABLE, "rate_limited", retry_after_s=3.0)
    decision = _decide(result, backoff, attempts=0)
    assert decision == StepDecision(
        "retry", error="rate_limited", retry_at=NOW + timedelta(seconds=5)
    )
    # The first attempt counts as retry 1; the provider's wait and the time left are passed on.
    assert backoff.calls == [(1, 3.0, 100.0)]


def test_a_retryable_failure_with_no_time_left_for_a_retry_fails_the_step() -> None:
    result = _result(DeliveryOutcome.RETRYABLE, "server_error")
    assert _decide(result, _Backoff(None, []), attempts=3) == StepDecision(
        "failed", error="server_error"
    )


def test_a_permanent_failure_fails_the_step_without_asking_the_backoff() -> None:
    backoff = _Backoff(5.0, [])
    result = _result(DeliveryOutcome.PERMANENT, "invalid_number")
    assert _decide(result, backoff) == StepDecision("failed", error="invalid_number")
    assert backoff.calls == []


def test_a_paced_send_waits_its_turn_not_the_backoff() -> None:
    backoff = _Backoff(5.0, [])
    result = _result(DeliveryOutcome.RETRYABLE, PACED, retry_after_s=7.5)
    decision = _decide(result, backoff)
    assert decision.retry_at == NOW + timedelta(seconds=7.5)
    assert backoff.calls == []


def test_a_paced_send_whose_turn_comes_after_the_alert_ends_fails() -> None:
    result = _result(DeliveryOutcome.RETRYABLE, PACED, retry_after_s=100.0)
    assert _decide(result, _Backoff(5.0, [])).outcome == "failed"


# --- best_of -----------------------------------------------------------------------------


def test_best_of_several_devices_prefers_one_accepted() -> None:
    failed = _result(DeliveryOutcome.PERMANENT, "unregistered")
    accepted = _result(DeliveryOutcome.ACCEPTED, ref="m1")
    assert best_of([failed, accepted]) == (accepted, None)


def test_best_of_retryable_answers_carries_the_longest_wait() -> None:
    short = _result(DeliveryOutcome.RETRYABLE, "quota_exceeded", retry_after_s=2.0)
    none = _result(DeliveryOutcome.RETRYABLE, "unavailable")
    long = _result(DeliveryOutcome.RETRYABLE, "quota_exceeded", retry_after_s=9.0)
    permanent = _result(DeliveryOutcome.PERMANENT, "unregistered")
    assert best_of([permanent, short, none, long]) == (short, 9.0)


def test_best_of_only_permanent_failures_is_the_first() -> None:
    first = _result(DeliveryOutcome.PERMANENT, "unregistered")
    second = _result(DeliveryOutcome.PERMANENT, "invalid_token")
    assert best_of([first, second]) == (first, None)


# --- what failures mean ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "step", "flag"),
    [
        ("sms_opt_out", Step.SMS, "sms_opt_out"),
        ("invalid_number", Step.SMS, "phone_invalid"),
        ("invalid_number", Step.VOICE, "phone_invalid"),
        ("invalid_number", Step.PUSH, None),
        ("invalid_number", None, None),
        ("server_error", Step.SMS, None),
        (None, Step.SMS, None),
    ],
)
def test_volunteer_flag_after_a_failed_step(
    code: str | None, step: Step | None, flag: str | None
) -> None:
    assert volunteer_flag(code, step) == flag


@pytest.mark.parametrize(
    ("step", "code", "expected"),
    [
        (Step.SMS, "timeout", True),
        (Step.SMS, "server_error", True),
        (Step.SMS, "network_error", True),
        (Step.SMS, "rate_limited", False),
        (Step.SMS, None, False),
        (Step.VOICE, "timeout", False),
        (Step.PUSH, "timeout", False),
    ],
)
def test_only_an_ambiguous_text_is_looked_up_before_sending_again(
    step: Step, code: str | None, expected: bool
) -> None:
    assert may_be_at_provider(step, code) is expected
