"""One incident, one run: the service's decisions replayed on a simulated clock.

This is :func:`dispatch.service.progress.advance` without the database: at every moment
the service would act (the call, each answer, each deadline the planner names) it asks
the same pure functions — :func:`dispatch.domain.waves.plan` for what to do,
:func:`dispatch.domain.eligibility.pick_eligible` for whom to alert,
:func:`dispatch.domain.aeds.replan_roles` for roles, :func:`dispatch.domain.alert_states.apply`
for every state change — so the simulator and the service cannot disagree about who is
alerted (a property test replays the same incidents through both).

Three shortcuts, all exact (and checked against the service by a property test):

* nobody moves during an incident here, so once a re-look has found nobody new the
  planner's periodic re-look (``Plan.next_check_at`` beyond ``Plan.due_at``) would find
  nobody again and is skipped, unless someone in range was left out for a reason that
  passes with time (busy elsewhere, quiet hours, daily budget). The first re-look after
  new alerts is kept: it is where the service first counts their answer deadlines;
* an answer the state machine refuses (after a time-out or a stand-down: a 409 in the
  service) changes nothing, so the planner is not asked again for it;
* re-planning roles when no live alert changed is skipped: the role planner given its
  own answer answers the same (a property test says so).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from heapq import heappop, heappush
from typing import Final, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from cad_adapters.models import PlaceType
from dispatch.domain.aeds import (
    Aed,
    Assignment,
    Distance,
    Responder,
    Role,
    distance_m,
    is_accessible,
    replan_roles,
)
from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.domain.eligibility import Exclusion, IncidentFacts, VolunteerProfile, pick_eligible
from dispatch.domain.policy import AlertPolicy
from dispatch.domain.waves import RESPONDING, WAITING, AlertView, plan
from geoindex import Hit

ONE_US: Final = timedelta(microseconds=1)
US: Final = 1_000_000
MAX_ALERTS: Final = 200  # the policy's own bound on max_alerted
ALERT_IDS: Final = tuple(UUID(int=k + 1) for k in range(MAX_ALERTS))
_LIVE: Final = WAITING | RESPONDING
_CPR: Final = Assignment(Role.CPR)
# Exclusions that can lapse while an incident runs: the service's re-look may then find someone.
_LAPSING: Final = frozenset(
    {Exclusion.BUSY.value, Exclusion.QUIET_HOURS.value, Exclusion.BUDGET.value}
)
_ACCEPT, _DECLINE, _CANCEL, _EMS = 0, 1, 2, 3
_EVENT_OF: Final = (AlertEvent.ACCEPT, AlertEvent.DECLINE, AlertEvent.CANCEL)


def _transitions() -> dict[tuple[AlertState, AlertEvent], AlertState | None]:
    """The state machine's answer for every (state, event), None where it refuses.

    ``apply`` is pure over two small enums: asking it once per pair up front gives the
    same answers without an exception per refused answer in the hot loop.
    """
    table: dict[tuple[AlertState, AlertEvent], AlertState | None] = {}
    for state in AlertState:
        for event in AlertEvent:
            try:
                table[state, event] = apply(state, event)
            except IllegalTransition:
                table[state, event] = None
    return table


_APPLY: Final = _transitions()


@dataclass(frozen=True, slots=True)
class Response:
    """What one alerted volunteer does (times from the alert)."""

    answer: AlertEvent | None
    """ACCEPT, DECLINE, or None: never answers (the alert times out)."""
    answer_s: float
    turnout_s: float
    """Alert to departure; never earlier than the answer."""
    speed_mps: float
    drop_at: float | None = None
    """Gives up after this share of the trip (cancels the alert); None: arrives."""
    aed_pickup_s: float = 0.0
    route_factor: float = 1.0


class Responses(Protocol):
    def __call__(self, slot: int, volunteer_id: int) -> Response: ...


class Candidates:
    """Volunteers near one incident, nearest first; extended when a run needs more."""

    __slots__ = ("complete", "hits", "more")

    def __init__(self, hits: list[Hit], complete: bool, more: Callable[[int], list[Hit]]):
        self.hits = hits
        self.complete = complete
        self.more = more

    def extend(self) -> None:
        limit = max(64, 4 * len(self.hits))
        self.hits = self.more(limit)
        self.complete = len(self.hits) < limit


@dataclass(slots=True)
class Scene:
    """An incident as every run sees it."""

    policy: AlertPolicy
    started_at: datetime
    """When alerting starts (the call, plus the delay to dispatch)."""
    lat: float
    lon: float
    place_type: PlaceType
    is_test: bool
    candidates: Candidates
    position_of: Callable[[int], tuple[float, float] | None]
    aeds: Sequence[Aed] = ()
    """AEDs within the policy's AED radius, in id order (as the store returns them)."""
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    distance: Distance = distance_m
    """``distance_m`` or a memoised copy shared by the runs (same answers, fewer sums)."""


@dataclass(slots=True)
class Step:
    """One moment the engine acted: what happened (for tests that replay it elsewhere)."""

    at: datetime
    kind: str
    """``start``, ``deadline``, ``ems``, or an answer: ``accept``, ``decline``, ``cancel``;
    ``refused`` for an answer the state machine turned down, ``unchanged`` for a repeat."""
    volunteer_id: int | None = None
    after: tuple[tuple[int, int, str, str, int | None], ...] = ()
    """(volunteer, wave, state, role, AED) of every alert once the step was acted on."""
    tried: str | None = None
    """For ``refused`` and ``unchanged``: the answer that was tried."""


@dataclass(slots=True)
class Outcome:
    alerts: list[AlertView]
    roles: list[Assignment]
    accepted: int = 0
    first_on_scene_s: float | None = None
    """Alert start to the first volunteer on scene."""
    first_aed_s: float | None = None
    """Alert start to the first volunteer arriving with an AED."""
    busy: list[tuple[int, float]] = field(default_factory=list)
    """(volunteer, accepted at, s from alert start) for everyone who accepted."""
    steps: list[Step] = field(default_factory=list)


class _Run:
    __slots__ = (
        "alerted",
        "alerts",
        "arrival",
        "available",
        "dist",
        "ems_us",
        "gone",
        "heap",
        "live",
        "outcome",
        "planned",
        "profiles",
        "replies",
        "responses",
        "roles",
        "scene",
        "seq",
        "trace",
        "with_aed",
    )

    def __init__(
        self,
        scene: Scene,
        responses: Responses,
        profiles: Callable[[datetime], Callable[[int], VolunteerProfile | None]],
        available: Callable[[int], bool] | None,
        ems_us: int | None,
        trace: bool,
    ) -> None:
        self.scene = scene
        self.responses = responses
        self.profiles = profiles
        self.available = available
        self.ems_us = ems_us
        self.trace = trace
        self.alerts: list[AlertView] = []
        self.alerted: set[int] = set()
        self.roles: list[Assignment] = []
        self.dist: list[float] = []
        self.live: list[Responder | None] = []
        self.replies: list[Response] = []
        self.arrival: list[int | None] = []
        self.with_aed: list[bool] = []
        self.gone: list[int | None] = []
        self.heap: list[tuple[int, int, int, int]] = []
        self.seq = 0
        self.outcome = Outcome(self.alerts, self.roles)
        self.planned: tuple[tuple[int, ...], tuple[bool, ...]] | None = None

    def push(self, at_us: int, kind: int, k: int) -> None:
        self.seq += 1
        heappush(self.heap, (at_us, self.seq, kind, k))

    def walk(self, radius_m: float, alerted: set[int]) -> Iterator[Hit]:
        """Candidates within the radius, nearest first, not yet alerted, available."""
        cands = self.scene.candidates
        available = self.available
        i = 0
        while True:
            hits = cands.hits
            while i < len(hits):
                hit = hits[i]
                if hit.distance_m > radius_m:
                    return
                if hit.volunteer_id not in alerted and (available is None or available(i)):
                    yield hit
                i += 1
            if cands.complete:
                return
            cands.extend()

    def match(self, wanted: int, radius_m: float, wave: int, now: datetime, now_us: int) -> bool:
        """Alert up to ``wanted``; True when the service's next re-look may matter."""
        scene = self.scene
        facts = IncidentFacts(scene.place_type, scene.is_test, now, scene.policy.lay_unknown_place)
        excluded: dict[str, int] = {}
        chosen = pick_eligible(
            self.walk(radius_m, self.alerted), self.profiles(now), facts, wanted, excluded
        )
        window_us = int(scene.policy.answer_timeout_s * US)
        for hit in chosen:
            k = len(self.alerts)
            self.alerts.append(
                AlertView(ALERT_IDS[k], hit.volunteer_id, AlertState.QUEUED, now, wave)
            )
            self.alerted.add(hit.volunteer_id)
            self.roles.append(_CPR)
            self.dist.append(hit.distance_m)
            self.live.append(None)
            self.arrival.append(None)
            self.with_aed.append(False)
            self.gone.append(None)
            response = self.responses(k, hit.volunteer_id)
            self.replies.append(response)
            if response.answer is not None:
                after = round(response.answer_s * US)
                if after < window_us:
                    kind = _ACCEPT if response.answer is AlertEvent.ACCEPT else _DECLINE
                    self.push(now_us + after, kind, k)
        return bool(chosen) or (len(chosen) < wanted and any(r in _LAPSING for r in excluded))

    def plan_roles(self, now: datetime) -> None:
        scene = self.scene
        live = []
        key = []
        for k, a in enumerate(self.alerts):
            if a.state in _LIVE:
                responder = self.live[k]
                if responder is None:
                    where = scene.position_of(a.volunteer_id)
                    assert where is not None
                    responder = self.live[k] = Responder(
                        a.alert_id,
                        where[0],
                        where[1],
                        self.dist[k],
                        a.state in RESPONDING,
                        self.roles[k].aed_id,
                    )
                live.append(responder)
                key.append(k if responder.responding else -1 - k)
        if not live:
            return
        local = now.astimezone(scene.zone)
        opened = tuple(is_accessible(a, local) for a in scene.aeds)
        signature = (tuple(key), opened)
        if signature == self.planned:
            return  # same live alerts, same AEDs open: the planner would answer the same
        planned = replan_roles(
            live,
            scene.aeds,
            local=local,
            patient=(scene.lat, scene.lon),
            max_detour_m=scene.policy.aed_max_detour_m,
            distance=scene.distance,
        )
        for alert_id, assignment in planned.changed:
            k = alert_id.int - 1
            self.roles[k] = assignment
            self.live[k] = None
        self.planned = signature

    def depart(self, k: int, now_us: int) -> None:
        """An accepted volunteer sets off in the role they hold now."""
        scene = self.scene
        alert = self.alerts[k]
        response = self.replies[k]
        created_us = (alert.created_at - scene.started_at) // ONE_US
        leave = max(now_us, created_us + round(response.turnout_s * US))
        role = self.roles[k]
        aed = next((a for a in scene.aeds if a.aed_id == role.aed_id), None)
        if role.role is Role.AED and aed is not None:
            where = scene.position_of(alert.volunteer_id)
            assert where is not None
            path = distance_m(where[0], where[1], aed.lat, aed.lon) + distance_m(
                aed.lat, aed.lon, scene.lat, scene.lon
            )
            extra = response.aed_pickup_s
        else:
            path, extra = self.dist[k], 0.0
        trip_s = path * response.route_factor / response.speed_mps + extra
        arrive = leave + round(trip_s * US)
        self.arrival[k] = arrive
        self.with_aed[k] = aed is not None and role.role is Role.AED
        if response.drop_at is not None:
            self.push(now_us + round((arrive - now_us) * response.drop_at), _CANCEL, k)
        self.outcome.accepted += 1
        self.outcome.busy.append((alert.volunteer_id, now_us / US))

    def snapshot(self) -> tuple[tuple[int, int, str, str, int | None], ...]:
        return tuple(
            sorted(
                (a.volunteer_id, a.wave, a.state.value, r.role.value, r.aed_id)
                for a, r in zip(self.alerts, self.roles, strict=True)
            )
        )

    def set_state(self, k: int, state: AlertState, now_us: int) -> None:
        a = self.alerts[k]
        self.alerts[k] = AlertView(a.alert_id, a.volunteer_id, state, a.created_at, a.wave)
        self.live[k] = None
        if state not in _LIVE and self.gone[k] is None:
            self.gone[k] = now_us


def run_incident(
    scene: Scene,
    responses: Responses,
    profiles: Callable[[datetime], Callable[[int], VolunteerProfile | None]],
    *,
    available: Callable[[int], bool] | None = None,
    ems_s: float | None = None,
    trace: bool = False,
) -> Outcome:
    """Replay one incident: ``ems_s`` is EMS on scene, seconds after alerting started.

    With ``trace`` the outcome lists every step and the alerts as they stood after it.
    """
    run = _Run(
        scene, responses, profiles, available, None if ems_s is None else round(ems_s * US), trace
    )
    policy = scene.policy
    started = scene.started_at
    ems_us = run.ems_us
    if ems_us is not None and policy.stand_down_on_ems_on_scene and ems_us > 0:
        run.push(ems_us, _EMS, -1)
    now_us = 0
    accepted: int | None = None
    step = Step(started, "start") if trace else None
    while True:
        now = started + timedelta(microseconds=now_us)
        decision = plan(
            policy,
            run.alerts,
            started_at=started,
            now=now,
            open_=True,
            ems_on_scene=ems_us is not None and now_us >= ems_us,
        )
        for ids, event in (
            (decision.time_out, AlertEvent.TIME_OUT),
            (decision.stand_down, AlertEvent.STAND_DOWN),
            (decision.release, AlertEvent.RELEASE),
        ):
            for alert_id in ids:
                k = alert_id.int - 1
                target = _APPLY[run.alerts[k].state, event]
                assert target is not None, (run.alerts[k].state, event)
                run.set_state(k, target, now_us)
        relook = False
        if decision.new_alerts:
            relook = run.match(decision.new_alerts, decision.radius_m, decision.wave, now, now_us)
        if scene.aeds:
            run.plan_roles(now)
        if accepted is not None:
            run.depart(accepted, now_us)
            accepted = None
        if step is not None:
            step.after = run.snapshot()
            run.outcome.steps.append(step)
            step = None
        due = decision.next_check_at if relook else decision.due_at
        due_us = None if due is None else (due - started) // ONE_US
        while True:
            heap = run.heap
            if heap and (due_us is None or heap[0][0] <= due_us):
                at_us, _, kind, k = heappop(heap)
                now_us = at_us
                if kind == _EMS:
                    step = Step(started + at_us * ONE_US, "ems") if trace else None
                    break
                alert = run.alerts[k]
                target = _APPLY[alert.state, _EVENT_OF[kind]]
                if target is None or target == alert.state:
                    # Refused (409) or a repeat: the service changes nothing, plans nothing.
                    if trace:
                        name = "refused" if target is None else "unchanged"
                        at = started + at_us * ONE_US
                        tried = _EVENT_OF[kind].value
                        run.outcome.steps.append(
                            Step(at, name, alert.volunteer_id, run.snapshot(), tried)
                        )
                    continue
                run.set_state(k, target, at_us)
                if kind == _ACCEPT:
                    accepted = k
                if trace:
                    at = started + at_us * ONE_US
                    step = Step(at, _EVENT_OF[kind].value, alert.volunteer_id)
                break
            if due_us is None:
                return _finish(run)
            now_us = due_us
            step = Step(started + now_us * ONE_US, "deadline") if trace else None
            break


def _finish(run: _Run) -> Outcome:
    out = run.outcome
    first: int | None = None
    first_aed: int | None = None
    for k, arrive in enumerate(run.arrival):
        gone = run.gone[k]
        if arrive is None or (gone is not None and gone <= arrive):
            continue
        first = arrive if first is None else min(first, arrive)
        if run.with_aed[k]:
            first_aed = arrive if first_aed is None else min(first_aed, arrive)
    out.first_on_scene_s = None if first is None else first / US
    out.first_aed_s = None if first_aed is None else first_aed / US
    return out
