"""The pure dispatch policy: waves, replacement, stand-down, eligibility (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from cad_adapters.models import PlaceType
from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.domain.eligibility import (
    Exclusion,
    IncidentFacts,
    Tier,
    VolunteerProfile,
    exclusion,
    in_quiet_hours,
)
from dispatch.domain.incident_states import (
    IllegalIncidentTransition,
    IncidentEvent,
    IncidentState,
    advance,
)
from dispatch.domain.policy import AlertPolicy, PolicyError, Wave, policy_from_json
from dispatch.domain.waves import AlertView, plan

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CERTIFIED = T0 + timedelta(days=365)


@dataclass
class SimVolunteer:
    volunteer_id: int
    distance_m: float
    profile: VolunteerProfile
    answer: str  # "accept" | "decline" | "silent"
    answer_after_s: float


@dataclass
class SimAlert:
    alert_id: UUID
    volunteer_id: int
    state: AlertState
    created_at: datetime
    wave: int
    radius_m: float


volunteers_st = st.lists(
    st.builds(
        SimVolunteer,
        volunteer_id=st.integers(1, 10_000),
        distance_m=st.floats(0, 1500),
        profile=st.builds(
            VolunteerProfile,
            volunteer_id=st.just(0),
            tier=st.sampled_from(Tier),
            certified_until=st.sampled_from([CERTIFIED] * 5 + [None, T0 - timedelta(days=1)]),
            on_duty=st.sampled_from([True] * 5 + [False]),
        ),
        answer=st.sampled_from(["accept", "decline", "silent"]),
        answer_after_s=st.floats(1, 200),
    ),
    min_size=3,
    max_size=60,
    unique_by=lambda v: v.volunteer_id,
)

policies_st = st.builds(
    AlertPolicy,
    waves=st.sampled_from(
        [
            (Wave(0, 500, 7), Wave(60, 1300, 15)),
            (Wave(0, 300, 3),),
            (Wave(0, 400, 5), Wave(30, 800, 10), Wave(90, 1500, 20)),
        ]
    ),
    target_accepted=st.integers(1, 5),
    max_alerted=st.integers(20, 40),
    not_coming_after_s=st.floats(30, 120),
    replace_declined=st.booleans(),
)


def _simulate(
    policy: AlertPolicy,
    volunteers: list[SimVolunteer],
    place: PlaceType,
    close_after_s: float | None,
    steps: list[float],
) -> tuple[list[SimAlert], list[tuple[float, int]], list[int], float | None]:
    """Drive the planner like the ticker and the answer endpoint do; returns the alerts,
    (time, accepted count) after every accept, wave radii in order, and when it closed."""
    alerts: list[SimAlert] = []
    accepted_trace: list[tuple[float, int]] = []
    radii: list[int] = []
    by_id = {v.volunteer_id: v for v in volunteers}
    now_s = 0.0
    open_ = True
    closed_at: float | None = None
    facts = IncidentFacts(place_type=place, is_test=False, at=T0)

    def views() -> list[AlertView]:
        return [
            AlertView(a.alert_id, a.volunteer_id, a.state, a.created_at, a.wave) for a in alerts
        ]

    def step() -> None:
        now = T0 + timedelta(seconds=now_s)
        p = plan(policy, views(), started_at=T0, now=now, open_=open_)
        for a in alerts:
            for ids, event in (
                (p.time_out, AlertEvent.TIME_OUT),
                (p.stand_down, AlertEvent.STAND_DOWN),
                (p.release, AlertEvent.RELEASE),
            ):
                if a.alert_id in ids:
                    a.state = apply(a.state, event)
        if p.new_alerts:
            radii.append(int(p.radius_m))
            alerted = {a.volunteer_id for a in alerts}
            candidates = sorted(
                (
                    v
                    for v in volunteers
                    if v.volunteer_id not in alerted
                    and v.distance_m <= p.radius_m
                    and exclusion(v.profile, facts) is None
                ),
                key=lambda v: (v.distance_m, v.volunteer_id),
            )
            for v in candidates[: p.new_alerts]:
                alerts.append(
                    SimAlert(uuid4(), v.volunteer_id, AlertState.QUEUED, now, p.wave, p.radius_m)
                )

    step()
    for dt in steps:
        target = now_s + dt
        # Answers due before the next tick, in time order, each followed by a plan.
        due = sorted(
            (
                (a.created_at + timedelta(seconds=by_id[a.volunteer_id].answer_after_s), a)
                for a in alerts
                if by_id[a.volunteer_id].answer != "silent"
            ),
            key=lambda pair: pair[0],  # equal times keep creation order (alerts don't compare)
        )
        for when, a in due:
            at_s = (when - T0).total_seconds()
            if not now_s < at_s <= target:
                continue
            event = (
                AlertEvent.ACCEPT
                if by_id[a.volunteer_id].answer == "accept"
                else AlertEvent.DECLINE
            )
            try:
                a.state = apply(a.state, event)
            except IllegalTransition:
                continue
            now_s = at_s
            if event is AlertEvent.ACCEPT:
                accepted_trace.append((at_s, sum(x.state is AlertState.ACCEPTED for x in alerts)))
            step()
        now_s = target
        if open_ and close_after_s is not None and now_s >= close_after_s:
            open_ = False
            closed_at = now_s
        step()
    return alerts, accepted_trace, radii, closed_at


@settings(max_examples=150, deadline=None)
@given(
    policy=policies_st,
    volunteers=volunteers_st,
    place=st.sampled_from([PlaceType.PUBLIC] * 3 + list(PlaceType)),
    close_after_s=st.none() | st.floats(10, 700),
    steps=st.lists(st.floats(1, 60), min_size=1, max_size=40),
)
def test_policy_invariants(
    policy: AlertPolicy,
    volunteers: list[SimVolunteer],
    place: PlaceType,
    close_after_s: float | None,
    steps: list[float],
) -> None:
    """Never twice, never a lay responder to a residence, nothing after close, never more
    accepted than the target, never a narrower wave, never more than max_alerted."""
    alerts, accepted, radii, closed_at = _simulate(policy, volunteers, place, close_after_s, steps)
    event(f"alerts>0: {bool(alerts)}, accepted>0: {bool(accepted)}, waves: {len(set(radii))}")
    ids = [a.volunteer_id for a in alerts]
    assert len(ids) == len(set(ids)), "a volunteer alerted twice"
    tiers = {v.volunteer_id: v.profile.tier for v in volunteers}
    if place is not PlaceType.PUBLIC:
        assert all(tiers[i] is Tier.PROFESSIONAL for i in ids), "lay responder sent off-street"
    if closed_at is not None:
        assert all((a.created_at - T0).total_seconds() <= closed_at for a in alerts)
        assert all(a.state not in {AlertState.QUEUED, AlertState.SENT} for a in alerts)
    assert all(count <= policy.target_accepted for _, count in accepted)
    assert radii == sorted(radii), "a later wave narrowed the radius"
    assert len(alerts) <= policy.max_alerted


def _view(state: AlertState, age_s: float = 0, wave: int = 0) -> AlertView:
    return AlertView(uuid4(), 1, state, T0 - timedelta(seconds=age_s), wave)


def test_first_wave_then_wider_wave_on_its_deadline() -> None:
    """7 within 500 m at once; at 60 s the radius widens to 1,300 m with up to 15 live."""
    policy = AlertPolicy()
    first = plan(policy, [], started_at=T0, now=T0, open_=True)
    assert (first.wave, first.radius_m, first.new_alerts) == (0, 500, 7)
    waiting = [_view(AlertState.SENT) for _ in range(7)]
    before = plan(policy, waiting, started_at=T0, now=T0 + timedelta(seconds=10), open_=True)
    assert before.new_alerts == 0
    assert before.next_check_at == T0 + timedelta(seconds=60)
    later = plan(policy, waiting, started_at=T0, now=T0 + timedelta(seconds=60), open_=True)
    assert (later.wave, later.radius_m, later.new_alerts) == (1, 1300, 8)


def test_decliners_are_replaced_and_target_stands_the_rest_down() -> None:
    """A decline frees a slot; the third accept stands every waiting alert down."""
    policy = AlertPolicy()
    alerts = [_view(AlertState.DECLINED)] + [_view(AlertState.SENT) for _ in range(6)]
    assert plan(policy, alerts, started_at=T0, now=T0, open_=True).new_alerts == 1
    accepted = [_view(AlertState.ACCEPTED) for _ in range(3)]
    waiting = [_view(AlertState.SENT) for _ in range(4)]
    done = plan(policy, accepted + waiting, started_at=T0, now=T0, open_=True)
    assert done.new_alerts == 0
    assert set(done.stand_down) == {a.alert_id for a in waiting}
    assert done.reason == "target_reached"


def test_silent_volunteers_time_out_and_are_replaced() -> None:
    """After the answer window a waiting alert times out and its slot is refilled."""
    policy = AlertPolicy(not_coming_after_s=90)
    silent = _view(AlertState.SENT, age_s=91)
    p = plan(policy, [silent], started_at=T0 - timedelta(seconds=91), now=T0, open_=True)
    assert p.time_out == (silent.alert_id,)
    assert p.new_alerts >= 1


def test_closed_incident_stands_down_and_releases() -> None:
    """When the CAD ends the incident, waiting alerts stand down and responders are released."""
    waiting, going = _view(AlertState.DELIVERED), _view(AlertState.EN_ROUTE)
    p = plan(AlertPolicy(), [waiting, going], started_at=T0, now=T0, open_=False)
    assert (p.stand_down, p.release, p.new_alerts) == ((waiting.alert_id,), (going.alert_id,), 0)


@pytest.mark.parametrize(
    ("profile", "facts", "reason"),
    [
        (VolunteerProfile(1, verified=False, certified_until=CERTIFIED), None,
         Exclusion.UNVERIFIED),
        (VolunteerProfile(1, certified_until=None), None, Exclusion.CERTIFICATION),
        (VolunteerProfile(1, certified_until=T0 - timedelta(seconds=1)), None,
         Exclusion.CERTIFICATION),
        (VolunteerProfile(1, certified_until=CERTIFIED),
         IncidentFacts(PlaceType.RESIDENTIAL, False, T0), Exclusion.RESIDENCE),
        (VolunteerProfile(1, certified_until=CERTIFIED),
         IncidentFacts(PlaceType.UNKNOWN, False, T0), Exclusion.UNKNOWN_PLACE),
        (VolunteerProfile(1, tier=Tier.PROFESSIONAL, certified_until=CERTIFIED),
         IncidentFacts(PlaceType.RESIDENTIAL, True, T0), Exclusion.NOT_TESTER),
        (VolunteerProfile(1, certified_until=CERTIFIED, on_duty=False), None, Exclusion.OFF_DUTY),
        (VolunteerProfile(1, certified_until=CERTIFIED, quiet_from=time(11, 30),
                          quiet_until=time(13, 0)), None, Exclusion.QUIET_HOURS),
        (VolunteerProfile(1, certified_until=CERTIFIED, quiet_from=time(1, 0),
                          quiet_until=time(2, 0), time_zone="Atlantis/Poseidonia"), None,
         Exclusion.QUIET_HOURS_ZONE_UNKNOWN),
        (VolunteerProfile(1, certified_until=CERTIFIED, time_zone="Atlantis/Poseidonia"), None,
         None),
        (VolunteerProfile(1, certified_until=CERTIFIED, daily_budget=2, alerts_today=2), None,
         Exclusion.BUDGET),
        (VolunteerProfile(1, certified_until=CERTIFIED, busy=True), None, Exclusion.BUSY),
        (VolunteerProfile(1, tier=Tier.PROFESSIONAL, certified_until=CERTIFIED),
         IncidentFacts(PlaceType.RESIDENTIAL, False, T0), None),
        (VolunteerProfile(1, certified_until=CERTIFIED, is_tester=True),
         IncidentFacts(PlaceType.PUBLIC, True, T0), None),
    ],
)  # fmt: skip
def test_exclusions(
    profile: VolunteerProfile, facts: IncidentFacts | None, reason: Exclusion | None
) -> None:
    """Each rule excludes with its own reason; eligible volunteers pass."""
    assert exclusion(profile, facts or IncidentFacts(PlaceType.PUBLIC, False, T0)) is reason


@given(st.times(), st.times(), st.times())
def test_quiet_hours_wrap_midnight(local: time, start: time, end: time) -> None:
    """Quiet hours are [start, end), wrapping past midnight when start > end."""
    inside = in_quiet_hours(local, start, end)
    if start == end:
        assert not inside
    elif start < end:
        assert inside == (start <= local < end)
    else:
        assert inside == (not (end <= local < start))


def test_incident_states_only_move_forward() -> None:
    """Progress never moves backwards; closed and cancelled are final."""
    s = advance(IncidentState.RECEIVED, IncidentEvent.ALERTS_QUEUED)
    s = advance(s, IncidentEvent.EMS_ARRIVED)
    assert advance(s, IncidentEvent.RESPONDER_ACCEPTED) is IncidentState.EMS_ON_SCENE
    closed = advance(s, IncidentEvent.CLOSE)
    assert advance(closed, IncidentEvent.CLOSE) is IncidentState.CLOSED
    with pytest.raises(IllegalIncidentTransition):
        advance(closed, IncidentEvent.ALERTS_QUEUED)


@pytest.mark.parametrize(
    ("doc", "pointer"),
    [
        ({"waves": [{"after_s": 5, "radius_m": 500, "live": 7}]}, "/waves/0/after_s"),
        ({"waves": [{"after_s": 0, "radius_m": 800, "live": 7},
                    {"after_s": 60, "radius_m": 500, "live": 9}]}, "/waves/1/radius_m"),
        ({"target_accepted": 0}, "/target_accepted"),
        ({"max_alerted": 3}, "/max_alerted"),
        ({"colour": 1}, "/colour"),
        ({"replace_declined": "yes"}, "/replace_declined"),
    ],
)  # fmt: skip
def test_policy_validation_names_the_field(doc: dict[str, object], pointer: str) -> None:
    """Invalid policies are refused naming the field; waves never narrow."""
    with pytest.raises(PolicyError) as raised:
        policy_from_json(doc)
    assert raised.value.pointer == pointer


def test_policy_round_trips_through_json() -> None:
    """What is stored reads back as the same policy."""
    policy = AlertPolicy(target_accepted=2, waves=(Wave(0, 400, 5), Wave(45, 900, 9)))
    assert policy_from_json(policy.to_json()) == policy


def test_a_responder_who_drops_out_is_replaced() -> None:
    """A volunteer who accepted and then cancels frees the slot for the next nearest."""
    policy = AlertPolicy()
    alerts = [_view(AlertState.CANCELLED)] + [_view(AlertState.SENT) for _ in range(6)]
    assert plan(policy, alerts, started_at=T0, now=T0, open_=True).new_alerts == 1
