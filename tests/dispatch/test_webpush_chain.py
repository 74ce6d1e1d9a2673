"""Where Web Push and the live stream sit in an alert's chain: pure decisions, table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from dispatch.domain.alert_states import AlertState
from dispatch.domain.delivery_chain import STAND_DOWN, START, Reach, Step, stand_down_step
from dispatch.domain.delivery_decisions import DueStep, plan_step
from tests.dispatch.helpers import chain_offsets

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
VENDORS = frozenset({Step.PUSH, Step.SMS, Step.VOICE})
EVERYTHING = VENDORS | {Step.WEB_PUSH, Step.LIVE}
NO_VENDOR = frozenset({Step.LOG, Step.WEB_PUSH, Step.LIVE})


# No app device; a Web Push subscription and a phone that takes texts and calls.
BROWSER_AND_PHONE = Reach(
    has_device=False, has_phone=True, sms_allowed=True, voice_allowed=True, has_web_push=True
)


def _reach(**overrides: Any) -> Reach:
    return replace(BROWSER_AND_PHONE, **overrides)


@pytest.mark.parametrize(
    ("reach", "configured", "expected"),
    [
        # Web Push takes the push slot, before SMS.
        (_reach(), EVERYTHING, [("web_push", 0), ("sms", 15), ("voice", 60)]),
        # FCM device and subscription: both at once, one ack window.
        (
            _reach(has_device=True),
            EVERYTHING,
            [("push", 0), ("web_push", 0), ("sms", 15), ("voice", 60)],
        ),
        # An open stream goes first; the pushes only after the window.
        (
            _reach(has_live=True),
            EVERYTHING,
            [("live", 0), ("web_push", 15), ("sms", 30), ("voice", 75)],
        ),
        (
            _reach(has_live=True, has_web_push=False),
            EVERYTHING,
            [("live", 0), ("sms", 15), ("voice", 60)],
        ),
        # No FCM account: Web Push still has its slot.
        (_reach(), frozenset({Step.SMS, Step.WEB_PUSH}), [("web_push", 0), ("sms", 15)]),
        # Refusing push refuses both kinds.
        (_reach(refused=("push",)), EVERYTHING, [("sms", 0), ("voice", 45)]),
        (
            _reach(refused=("live",), has_live=True),
            EVERYTHING,
            [("web_push", 0), ("sms", 15), ("voice", 60)],
        ),
        # Preferring SMS moves the push slot after it; the stream stays first.
        (
            _reach(preferred="sms", has_live=True),
            EVERYTHING,
            [("live", 0), ("sms", 15), ("web_push", 60), ("voice", 75)],
        ),
        # No vendor account (development, demos): stream, Web Push, then the log.
        (_reach(has_live=True), NO_VENDOR, [("live", 0), ("web_push", 15), ("log", 30)]),
        (_reach(has_web_push=False), NO_VENDOR, [("log", 0)]),
        # Web Push switched off: the chain of before.
        (_reach(), VENDORS, [("sms", 0), ("voice", 45)]),
    ],
)
def test_web_push_and_live_in_the_chain(
    reach: Reach, configured: frozenset[Step], expected: list[tuple[str, float]]
) -> None:
    assert chain_offsets(reach, configured, NOW) == expected


@pytest.mark.parametrize(
    ("reach", "expected"),
    [
        (_reach(has_device=True), Step.PUSH),
        (_reach(), Step.WEB_PUSH),
        (_reach(refused=("push",)), Step.SMS),
        (_reach(has_web_push=False), Step.SMS),
    ],
)
def test_a_stand_down_goes_by_push_then_web_push_then_text(reach: Reach, expected: Step) -> None:
    assert stand_down_step(reach, configured=EVERYTHING | {Step.LOG}) is expected


def _due(channel: str, reach: Reach) -> DueStep:
    return DueStep(
        channel=channel,
        state=AlertState.SENT,
        expires_at=NOW.replace(hour=13),
        reach=reach,
        ack_timeout_s=15,
        next_channel_after_s=45,
    )


@pytest.mark.parametrize(
    ("channel", "reach", "failure"),
    [
        (Step.WEB_PUSH.value, _reach(has_web_push=False), "no_subscription"),
        (Step.WEB_PUSH.value, _reach(refused=("push",)), "refused"),
        (Step.LIVE.value, _reach(has_live=False), "no_stream"),
        (Step.WEB_PUSH.value, _reach(), None),
    ],
)
def test_a_planned_step_that_can_no_longer_go_fails_at_once(
    channel: str, reach: Reach, failure: str | None
) -> None:
    """A subscription gone or a stream closed since the plan: the next step starts now."""
    assert plan_step(_due(channel, reach), configured=EVERYTHING, now=NOW).failure == failure


def test_a_new_chain_with_a_stream_starts_on_the_stream() -> None:
    due = DueStep(
        channel=START,
        state=AlertState.QUEUED,
        expires_at=NOW.replace(hour=13),
        reach=_reach(has_live=True),
        ack_timeout_s=15,
        next_channel_after_s=45,
    )
    planned = plan_step(due, configured=EVERYTHING, now=NOW)
    assert planned.step is Step.LIVE
    assert [s.step for s in planned.later] == [Step.WEB_PUSH, Step.SMS, Step.VOICE]
    assert (
        plan_step(_due(STAND_DOWN, _reach()), configured=EVERYTHING, now=NOW).skip_reason == "sent"
    )
