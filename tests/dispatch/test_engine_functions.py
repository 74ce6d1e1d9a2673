"""The pure functions the service and the simulator both decide with.

The wave planner and the role planner were made cheaper for the simulator's sake; each is
checked here against the plain form it had before (kept below as a reference), on random
inputs. The role planner is also idempotent — re-planning with its own answer changes
nothing — which lets the simulator skip a re-plan when no live alert changed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from cad_adapters.models import PlaceType
from dispatch.domain.aeds import (
    Aed,
    Assignment,
    Responder,
    Role,
    distance_m,
    plan_roles,
    replan_roles,
)
from dispatch.domain.alert_states import AlertState
from dispatch.domain.eligibility import (
    IncidentFacts,
    Tier,
    VolunteerProfile,
    pick_eligible,
)
from dispatch.domain.policy import AlertPolicy, Wave
from dispatch.domain.waves import RECHECK, RESPONDING, WAITING, AlertView, plan
from geoindex import Hit
from tests.dispatch.helpers import CENTRE, offset

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def reference_roles(
    responders: Sequence[Responder],
    aeds: Sequence[Aed],
    patient: tuple[float, float],
    detour: float,
) -> dict[UUID, Assignment]:
    """plan_roles as it was first written."""
    plan_: dict[UUID, Assignment] = {}
    if not responders:
        return plan_
    by_id = {a.aed_id: a for a in aeds}
    taken: set[int] = set()
    for r in responders:
        if r.responding and r.current_aed in by_id and r.current_aed not in taken:
            plan_[r.alert_id] = Assignment(Role.AED, r.current_aed)
            taken.add(r.current_aed)
    order = sorted(responders, key=lambda r: (not r.responding, r.to_patient_m, str(r.alert_id)))
    direct_needed = max(1, math.ceil(len(responders) / 3))
    direct = 0
    nearest = min(responders, key=lambda r: (r.to_patient_m, str(r.alert_id)))
    if nearest.alert_id not in plan_:
        plan_[nearest.alert_id] = Assignment(Role.CPR)
        direct += 1
    for r in order:
        if r.alert_id in plan_:
            continue
        if direct < direct_needed:
            plan_[r.alert_id] = Assignment(Role.CPR)
            direct += 1
            continue
        best: tuple[float, int] | None = None
        for aed in aeds:
            if aed.aed_id in taken:
                continue
            route = distance_m(r.lat, r.lon, aed.lat, aed.lon) + distance_m(
                aed.lat, aed.lon, *patient
            )
            d = route - r.to_patient_m
            if d <= detour and (best is None or d < best[0]):
                best = (d, aed.aed_id)
        if best is None:
            plan_[r.alert_id] = Assignment(Role.CPR)
            direct += 1
        else:
            plan_[r.alert_id] = Assignment(Role.AED, best[1])
            taken.add(best[1])
    return plan_


people = st.lists(
    st.tuples(
        st.floats(-900, 900),
        st.floats(-900, 900),
        st.booleans(),
        st.none() | st.integers(0, 5),
        st.integers(1, 2**64),
    ),
    max_size=14,
    unique_by=lambda p: p[4],
)
places = st.lists(st.tuples(st.floats(-600, 600), st.floats(-600, 600)), max_size=6)


def _responders(rows: list[tuple[float, float, bool, int | None, int]]) -> list[Responder]:
    out = []
    for north, east, responding, aed, ident in rows:
        lat, lon = offset(*CENTRE, north, east)
        out.append(
            Responder(UUID(int=ident), lat, lon, distance_m(lat, lon, *CENTRE), responding, aed)
        )
    return out


def _aeds(rows: list[tuple[float, float]]) -> list[Aed]:
    return [Aed(i, f"a{i}", *offset(*CENTRE, n, e)) for i, (n, e) in enumerate(rows)]


@settings(max_examples=300, deadline=None)
@given(people, places, st.floats(0, 800))
def test_role_planner_decides_as_first_written(
    rows: list[Any], where: list[tuple[float, float]], detour: float
) -> None:
    responders, aeds = _responders(rows), _aeds(where)
    assert plan_roles(responders, aeds, patient=CENTRE, max_detour_m=detour) == reference_roles(
        responders, aeds, CENTRE, detour
    )


@settings(max_examples=300, deadline=None)
@given(people, places, st.floats(0, 800))
def test_replanning_its_own_answer_changes_nothing(
    rows: list[Any], where: list[tuple[float, float]], detour: float
) -> None:
    responders, aeds = _responders(rows), _aeds(where)
    first = replan_roles(responders, aeds, local=T0, patient=CENTRE, max_detour_m=detour)
    again = [
        Responder(r.alert_id, r.lat, r.lon, r.to_patient_m, r.responding, a.aed_id)
        for r, a in zip(responders, first.assignments, strict=True)
    ]
    second = replan_roles(again, aeds, local=T0, patient=CENTRE, max_detour_m=detour)
    assert second.changed == []
    assert second.assignments == first.assignments


def reference_plan(
    policy: AlertPolicy, alerts: Sequence[AlertView], *, started_at: datetime, now: datetime
) -> tuple[Any, ...]:
    """The open-incident part of waves.plan as first written: (wave, new, time_out, stand_down,
    next_check_at)."""
    wave = policy.wave_at((now - started_at).total_seconds())
    window = timedelta(seconds=policy.not_coming_after_s)
    timed_out = tuple(
        a.alert_id for a in alerts if a.state in WAITING and now - a.created_at >= window
    )
    waiting = [a for a in alerts if a.state in WAITING and a.alert_id not in timed_out]
    responding = sum(a.state in RESPONDING for a in alerts)
    if responding >= policy.target_accepted:
        return (wave, 0, timed_out, tuple(a.alert_id for a in waiting), None)
    stop_at = started_at + timedelta(seconds=policy.stop_after_s)
    if now >= stop_at:
        expiries = [a.created_at + window for a in waiting]
        return (wave, 0, timed_out, (), min(expiries) if expiries else None)
    live = len(waiting) + responding
    if not policy.replace_declined:
        live += sum(
            a.state in (AlertState.DECLINED, AlertState.TIMED_OUT, AlertState.CANCELLED)
            and a.wave == wave
            for a in alerts
        )
    new = max(0, min(policy.waves[wave].live - live, policy.max_alerted - len(alerts)))
    deadlines = [a.created_at + window for a in waiting]
    if wave + 1 < len(policy.waves):
        deadlines.append(started_at + timedelta(seconds=policy.waves[wave + 1].after_s))
    if deadlines or new:
        deadlines.append(stop_at)
    if new:
        deadlines.append(now + RECHECK)
    return (wave, new, timed_out, (), min(deadlines) if deadlines else None)


alert_rows = st.lists(
    st.tuples(st.sampled_from(list(AlertState)), st.floats(0, 700), st.integers(0, 1)),
    max_size=20,
)


@settings(max_examples=400, deadline=None)
@given(alert_rows, st.integers(0, 800_000_000), st.booleans(), st.integers(1, 4))
def test_wave_planner_decides_as_first_written(
    rows: list[tuple[AlertState, float, int]], at_us: int, replace: bool, target: int
) -> None:
    at = at_us / 1e6
    policy = AlertPolicy(
        waves=(Wave(0, 500, 4), Wave(60, 1300, 9)),
        target_accepted=target,
        max_alerted=16,
        replace_declined=replace,
    )
    now = T0 + timedelta(microseconds=at_us)
    alerts = [
        AlertView(UUID(int=i + 1), i, state, T0 + timedelta(seconds=min(t, at)), wave)
        for i, (state, t, wave) in enumerate(rows)
    ]
    got = plan(policy, alerts, started_at=T0, now=now, open_=True)
    assert (got.wave, got.new_alerts, got.time_out, got.stand_down, got.next_check_at) == (
        reference_plan(policy, alerts, started_at=T0, now=now)
    )
    # due_at: the same deadlines without the periodic re-look.
    if got.due_at is not None and got.next_check_at is not None:
        assert got.next_check_at <= got.due_at
    if not got.new_alerts:
        assert got.due_at == got.next_check_at


def test_picking_skips_the_ineligible_counts_them_and_stops_when_enough() -> None:
    hits = [Hit(i, 10.0 * i) for i in range(1, 8)]
    lay = VolunteerProfile(0, tier=Tier.LAY, certified_until=T0 + timedelta(days=1))
    pro = VolunteerProfile(0, tier=Tier.PROFESSIONAL, certified_until=T0 + timedelta(days=1))
    profiles = {1: lay, 2: pro, 3: None, 4: pro, 5: lay, 6: pro, 7: pro}
    looked: list[int] = []

    def profile_of(vid: int) -> VolunteerProfile | None:
        looked.append(vid)
        return profiles[vid]

    excluded: dict[str, int] = {}
    facts = IncidentFacts(PlaceType.RESIDENTIAL, False, T0)
    chosen = pick_eligible(hits, profile_of, facts, 3, excluded)
    assert [h.volunteer_id for h in chosen] == [2, 4, 6]
    assert excluded == {"lay_responder_residence": 2, "unknown_volunteer": 1}
    assert looked == [1, 2, 3, 4, 5, 6], "nobody after the last one picked is looked at"
    assert pick_eligible(hits, profile_of, facts, 0, excluded) == []


def test_a_wave_starting_between_microseconds_is_in_force_at_its_own_deadline() -> None:
    """A wave at 20.9140625 s: the planner names 20.914062 s (timedelta rounds) as the next
    check, so at that moment the wave must be in force — else it names the same moment again,
    for ever (found by the simulator, whose clock stands still while it decides)."""
    policy = AlertPolicy(waves=(Wave(0, 150, 1), Wave(20.9140625, 150, 1)), max_alerted=1)
    first = plan(policy, [], started_at=T0, now=T0, open_=True)
    assert first.due_at == T0 + timedelta(seconds=20.9140625)
    alert = AlertView(UUID(int=1), 1, AlertState.DECLINED, T0, 0)
    later = plan(policy, [alert], started_at=T0, now=first.due_at, open_=True)
    assert later.wave == 1
    assert later.next_check_at is None or later.next_check_at > first.due_at
