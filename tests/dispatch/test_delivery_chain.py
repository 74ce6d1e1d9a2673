"""The fallback chain's pure decisions, the SMS pacer, and fair leasing between incidents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.domain.alert_states import AlertState
from dispatch.domain.delivery_chain import START, Reach, Step, plan, still_needed
from dispatch.domain.policy import AlertPolicy, answer_window_s, check_answer_windows
from dispatch.domain.waves import AlertView
from dispatch.domain.waves import plan as wave_plan
from dispatch.service.providers import Pacer
from dispatch.store import alerts as alert_store
from dispatch.store.alerts import NewAlert
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import bare_incident, chain_offsets

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
ALL = frozenset({Step.PUSH, Step.SMS, Step.VOICE})


# Reached by every vendor channel; a case takes away what it needs.
REACHABLE = Reach(has_device=True, has_phone=True, sms_allowed=True, voice_allowed=True)


def _reach(**overrides: Any) -> Reach:
    return replace(REACHABLE, **overrides)


@pytest.mark.parametrize(
    ("reach", "expected"),
    [
        (_reach(), [("push", 0), ("sms", 15), ("voice", 60)]),
        (_reach(has_device=False), [("sms", 0), ("voice", 45)]),
        (_reach(sms_allowed=False), [("push", 0), ("voice", 15)]),
        (_reach(has_phone=False), [("push", 0)]),
        (_reach(preferred="sms"), [("sms", 0), ("push", 45), ("voice", 60)]),
        (_reach(refused=("voice",)), [("push", 0), ("sms", 15)]),
        (_reach(has_device=False, has_phone=False), []),
    ],
)
def test_plan_orders_channels_and_spaces_them_by_the_agency_windows(
    reach: Reach, expected: list[tuple[str, float]]
) -> None:
    """push → SMS after the ack window → call after the answer window; gaps close up."""
    assert chain_offsets(reach, ALL, NOW) == expected


def test_plan_without_real_providers_is_the_log_step() -> None:
    """Development and demos: one log step, whatever the volunteer's reach."""
    assert chain_offsets(_reach(), frozenset({Step.LOG}), NOW) == [("log", 0)]
    assert chain_offsets(_reach(has_device=False), frozenset({Step.SMS}), NOW) == [("sms", 0)]


@pytest.mark.parametrize(
    ("step", "state", "needed"),
    [
        (START, AlertState.QUEUED, True),
        (START, AlertState.SENT, False),
        ("sms", AlertState.SENT, True),
        ("sms", AlertState.DELIVERED, False),
        ("push", AlertState.DELIVERED, False),
        ("voice", AlertState.DELIVERED, True),
        ("voice", AlertState.ACCEPTED, False),
        ("voice", AlertState.DECLINED, False),
        ("sms", AlertState.STOOD_DOWN, False),
    ],
)
def test_receipt_stops_texts_and_an_answer_stops_everything(
    step: str, state: AlertState, needed: bool
) -> None:
    later = NOW + timedelta(minutes=5)
    assert still_needed(step, state, expires_at=later, now=NOW) is needed


def test_nothing_is_needed_after_expiry() -> None:
    assert not still_needed("voice", AlertState.SENT, expires_at=NOW, now=NOW)


def test_pacer_spaces_sends_and_refuses_long_waits() -> None:
    """1/s: the second send waits about a second; a wait beyond the bound is refused."""
    pacer = Pacer(1.0)
    assert pacer.reserve(5.0) == 0.0
    second = pacer.reserve(5.0)
    assert second is not None
    assert 0.9 < second <= 1.0
    assert pacer.reserve(1.5) is None
    third = pacer.reserve(5.0)
    assert third is not None
    assert 1.9 < third <= 2.0


async def test_leasing_shares_out_work_round_robin_by_incident(
    db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """Thirty alerts queued first for one incident do not hold back another incident's first."""
    now = datetime.now(UTC)
    volunteers = [
        await db.fetchval(
            "INSERT INTO volunteers (agency_id, display_name, token_hash)"
            " VALUES ($1, 'V', gen_random_uuid()::text::bytea) RETURNING id",
            agency.agency_id,
        )
        for _ in range(31)
    ]
    big = await bare_incident(db, agency.agency_id, "big")
    small = await bare_incident(db, agency.agency_id, "small")
    async with db.transaction():
        await alert_store.insert_with_outbox(
            db,
            agency_id=agency.agency_id,
            incident_id=big,
            alerts=[NewAlert(uuid4(), v, 10.0, "cpr", START) for v in volunteers[:30]],
            expires_at=now + timedelta(minutes=10),
            now=now - timedelta(seconds=1),
        )
        await alert_store.insert_with_outbox(
            db,
            agency_id=agency.agency_id,
            incident_id=small,
            alerts=[NewAlert(uuid4(), volunteers[30], 10.0, "cpr", START)],
            expires_at=now + timedelta(minutes=10),
            now=now,
        )
    async with db.transaction():
        claimed = await alert_store.claim_due(db, now=now, limit=4, lease=timedelta(seconds=30))
    incidents = [c.alert.incident_id for c in claimed]
    assert len(claimed) == 4
    assert small in incidents
    async with db.transaction():
        again = await alert_store.claim_due(db, now=now, limit=100, lease=timedelta(seconds=30))
    assert len(again) == 27, "leased rows are not handed out twice"


@given(
    ack_s=st.integers(1, 3600),
    next_s=st.integers(1, 3600),
    not_coming_s=st.floats(10, 1800),
    preferred=st.sampled_from([None, "push", "sms", "voice"]),
    has_device=st.booleans(),
    sms_allowed=st.booleans(),
    has_live=st.booleans(),
)
def test_nobody_counts_as_not_coming_while_a_chain_step_is_still_due(
    ack_s: int,
    next_s: int,
    not_coming_s: float,
    preferred: str | None,
    has_device: bool,
    sms_allowed: bool,
    has_live: bool,
) -> None:
    """Whatever the stored windows, every planned step is due before the wave planner times
    the volunteer out; windows the admin paths accept leave the policy's own window alone,
    and the refused ones are exactly those where the longest chain (live stream, push,
    text, call) would outlast it."""
    reach = _reach(
        preferred=preferred, has_device=has_device, sms_allowed=sms_allowed, has_live=has_live
    )
    configured = ALL | {Step.LIVE}
    steps = plan(
        reach, configured=configured, now=NOW, ack_timeout_s=ack_s, next_channel_after_s=next_s
    )
    policy = AlertPolicy(not_coming_after_s=not_coming_s, stop_after_s=7200)
    window_s = answer_window_s(policy, push_ack_timeout_s=ack_s, next_channel_after_s=next_s)
    waiting = AlertView(uuid4(), 1, AlertState.DELIVERED, NOW, 0)
    timed_out_at = NOW + timedelta(seconds=window_s)

    def timed_out(at: datetime) -> bool:
        decided = wave_plan(
            policy, [waiting], started_at=NOW, now=at, open_=True, answer_window_s=window_s
        )
        return decided.time_out == (waiting.alert_id,)

    assert timed_out(timed_out_at)
    assert not timed_out(timed_out_at - timedelta(milliseconds=1))
    assert all(s.at < timed_out_at for s in steps)
    refused = check_answer_windows(
        not_coming_after_s=not_coming_s, push_ack_timeout_s=ack_s, next_channel_after_s=next_s
    )
    assert (window_s == not_coming_s) == (refused is None)
    longest = has_live and has_device and sms_allowed and preferred in (None, "push")
    if refused is not None and longest:
        # The full chain (live, push, text, call) ends at 2 × ack + next: the policy alone
        # would have timed the volunteer out first.
        assert steps[-1].at >= NOW + timedelta(seconds=not_coming_s)
