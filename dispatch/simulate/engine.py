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
  new alerts is where the service first counts their answer deadlines: traced runs keep
  it; Monte Carlo runs without AED opening hours skip it when it can find nobody new
  either (the slots asked for were filled, or everyone in range was looked at, and
  nobody was left out for a reason that passes) and come back at the planner's deadline
  or the new alerts' answer deadline, whichever is first — unless the re-look would come
  later than that deadline (it times them out there);
* an answer the state machine refuses (after a time-out or a stand-down: a 409 in the
  service) changes nothing, so the planner is not asked again for it;
* re-planning roles when no live alert changed is skipped: the role planner given its
  own answer answers the same (a property test says so). Outside traced runs only
  responders' roles are read (at departure, and by the next re-plan: a role given earlier
  counts only for someone responding), and those depend on nothing but who responds, how
  many must go direct (``aeds.direct_needed``) and whether the nearest live alert is a
  responder's: the alerts still waiting are planned after them (property-tested against
  the role planner). A re-plan none of these changed is put off; the last one put off runs,
  on the alerts as they stood, when someone accepts (the accepter's waiting role is read
  then). Traced runs (the parity test) re-plan at every step, as the service does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from heapq import heappop, heappush
from typing import Final
from uuid import UUID

from dispatch.domain.aeds import (
    Assignment,
    Responder,
    Role,
    direct_needed,
    distance_m,
    is_accessible,
    replan_roles,
)
from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition, apply
from dispatch.domain.eligibility import Exclusion, IncidentFacts, VolunteerProfile, pick_eligible
from dispatch.domain.models import AgencyPolicy
from dispatch.domain.policy import AlertPolicy, answer_window_s
from dispatch.domain.waves import RESPONDING, WAITING, AlertView, plan
from dispatch.simulate.scene import (
    Candidates,
    Outcome,
    Response,
    Responses,
    Scene,
    Step,
)
from geoindex import Hit

__all__ = ["Candidates", "Outcome", "Response", "Responses", "Scene", "Step", "run_incident"]

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
_ENDS: Final = (AlertEvent.TIME_OUT, AlertEvent.STAND_DOWN, AlertEvent.RELEASE)


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
# The simulated agency's delivery chain: the service's defaults (nobody is simulated to
# answer by channel, but a silent volunteer keeps their slot as long as in the service).
_CHAIN: Final = AgencyPolicy(agency_id=UUID(int=0))


def _answer_window_s(policy: AlertPolicy) -> float:
    return answer_window_s(
        policy,
        push_ack_timeout_s=_CHAIN.push_ack_timeout_s,
        next_channel_after_s=_CHAIN.next_channel_after_s,
    )


class _Alert:
    """One alert: what the planner reads of it (as :class:`AlertView` has it), changed in
    place rather than made anew at every step, and the engine's own notes."""

    __slots__ = (
        "alert_id",
        "arrival",
        "created_at",
        "distance",
        "gone",
        "reply",
        "responder",
        "role",
        "state",
        "volunteer_id",
        "wave",
        "with_aed",
    )

    def __init__(
        self, k: int, volunteer_id: int, created_at: datetime, wave: int, distance: float
    ) -> None:
        self.alert_id = ALERT_IDS[k]
        self.volunteer_id = volunteer_id
        self.state = AlertState.QUEUED
        self.created_at = created_at
        self.wave = wave
        self.role = _CPR
        self.distance = distance
        self.reply: Response | None = None
        self.responder: Responder | None = None
        self.arrival: int | None = None
        self.with_aed = False
        self.gone: int | None = None

    def view(self) -> AlertView:
        return AlertView(self.alert_id, self.volunteer_id, self.state, self.created_at, self.wave)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Alert | AlertView):
            return self.view() == (other.view() if isinstance(other, _Alert) else other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


class _Run:
    __slots__ = (
        "alerted",
        "alerts",
        "available",
        "heap",
        "hours",
        "outcome",
        "planned",
        "profiles",
        "reduced",
        "responding",
        "responses",
        "scene",
        "seq",
        "skip",
        "stale",
        "window_s",
        "window_us",
    )

    def __init__(
        self,
        scene: Scene,
        responses: Responses,
        profiles: Callable[[datetime], Callable[[int], VolunteerProfile | None]],
        available: Callable[[int], bool] | None,
    ) -> None:
        self.scene = scene
        self.window_s = _answer_window_s(scene.policy)
        # As the planner counts it: a timedelta of the window, added to the alert's time.
        self.window_us = timedelta(seconds=self.window_s) // ONE_US
        self.responses = responses
        self.profiles = profiles
        self.available = available
        self.alerts: list[_Alert] = []
        self.alerted: set[int] = set()
        self.heap: list[tuple[int, int, int, int]] = []
        self.seq = 0
        self.skip = 0
        self.outcome = Outcome(self.alerts, [])
        self.planned: tuple[tuple[int, ...], tuple[int, ...], tuple[bool, ...]] | None = None
        self.reduced: tuple[tuple[int, ...], int, int, tuple[bool, ...]] | None = None
        """The last re-plan's inputs that responders' roles depend on (see ``plan_roles``)."""
        self.stale: datetime | None = None
        """When a role re-plan was put off (nobody responding): the moment it stands for."""
        self.hours = any(a.access_hours is not None for a in scene.aeds)
        self.responding = 0

    def push(self, at_us: int, kind: int, k: int) -> None:
        self.seq += 1
        heappush(self.heap, (at_us, self.seq, kind, k))

    def walk(self, radius_m: float) -> Iterator[Hit]:
        """Candidates within the radius, nearest first, not yet alerted, available."""
        cands = self.scene.candidates
        available = self.available
        alerted = self.alerted
        # Candidates before ``skip`` are alerted or away for the whole run: not looked at again.
        i = self.skip
        prefix = True
        while True:
            hits = cands.hits
            while i < len(hits):
                hit = hits[i]
                if hit.distance_m > radius_m:
                    return
                if hit.volunteer_id not in alerted and (available is None or available(i)):
                    prefix = False
                    yield hit
                elif prefix:
                    self.skip = i + 1
                i += 1
            if cands.complete:
                return
            cands.extend()

    def match(
        self, wanted: int, radius_m: float, wave: int, now: datetime, now_us: int
    ) -> tuple[int, bool]:
        """Alert up to ``wanted``: how many were, and whether anyone in range was left out
        for a reason that passes with time (then the service's next re-look may matter)."""
        scene = self.scene
        facts = IncidentFacts(scene.place_type, scene.is_test, now, scene.policy.lay_unknown_place)
        excluded: dict[str, int] = {}
        chosen = pick_eligible(self.walk(radius_m), self.profiles(now), facts, wanted, excluded)
        window_us = int(self.window_s * US)
        alerts = self.alerts
        for hit in chosen:
            k = len(alerts)
            vid = hit.volunteer_id
            alert = _Alert(k, vid, now, wave, hit.distance_m)
            alerts.append(alert)
            self.alerted.add(vid)
            reply = alert.reply = self.responses(k, vid)
            if reply.answer is not None:
                after = round(reply.answer_s * US)
                if after < window_us:
                    self.push(
                        now_us + after,
                        _ACCEPT if reply.answer is AlertEvent.ACCEPT else _DECLINE,
                        k,
                    )
        return len(chosen), any(r in _LAPSING for r in excluded)

    def plan_roles(self, now: datetime, *, lazy: bool) -> None:
        """Re-plan roles as the service does after every step (see the module notes)."""
        if lazy and not self.responding:
            self.stale = now
            return
        alerts = self.alerts
        live: list[int] = []
        ours: list[int] = []
        nearest, near_m = -1, math.inf
        for k, a in enumerate(alerts):
            state = a.state
            if state in _LIVE:
                live.append(k)
                if state in RESPONDING:
                    ours.append(k)
                if a.distance < near_m:  # ties go to the lower alert id, as in the planner
                    nearest, near_m = k, a.distance
        if not live:
            return
        if lazy and not ours:
            self.stale = now
            return
        scene = self.scene
        # Without opening hours no AED reads the clock: the zone conversion is skipped.
        local = now.astimezone(scene.zone) if self.hours else now
        opened = tuple(is_accessible(a, local) for a in scene.aeds) if self.hours else ()
        responding = tuple(ours)
        # What responders' roles depend on: who responds, how many must go direct, whether
        # the nearest live alert is a responder's (the others are planned after them).
        reduced = (
            responding,
            direct_needed(len(live)),
            nearest if alerts[nearest].state in RESPONDING else -1,
            opened,
        )
        if lazy and reduced == self.reduced:
            self.stale = now
            return
        self.stale = None
        signature = (tuple(live), responding, opened)
        if signature == self.planned:
            self.reduced = reduced
            return  # same live alerts, same AEDs open: the planner would answer the same
        team: list[Responder] = []
        for k in live:
            a = alerts[k]
            responder = a.responder
            if responder is None:
                where = scene.position_of(a.volunteer_id)
                assert where is not None
                responder = a.responder = Responder(
                    a.alert_id,
                    where[0],
                    where[1],
                    a.distance,
                    a.state in RESPONDING,
                    a.role.aed_id,
                )
            team.append(responder)
        planned = replan_roles(
            team,
            scene.aeds,
            local=local,
            patient=(scene.lat, scene.lon),
            max_detour_m=scene.policy.aed_max_detour_m,
            distance=scene.distance,
        )
        for alert_id, assignment in planned.changed:
            a = alerts[alert_id.int - 1]
            a.role = assignment
            a.responder = None
        self.planned = signature
        self.reduced = reduced

    def depart(self, k: int, now_us: int) -> None:
        """An accepted volunteer sets off in the role they hold now."""
        scene = self.scene
        alert = slot = self.alerts[k]
        reply = alert.reply
        assert reply is not None
        created_us = (alert.created_at - scene.started_at) // ONE_US
        leave = max(now_us, created_us + round(reply.turnout_s * US))
        role = alert.role
        aed = None
        if role.role is Role.AED:
            aed = next((a for a in scene.aeds if a.aed_id == role.aed_id), None)
        if aed is not None:
            where = scene.position_of(alert.volunteer_id)
            assert where is not None
            path = distance_m(where[0], where[1], aed.lat, aed.lon) + distance_m(
                aed.lat, aed.lon, scene.lat, scene.lon
            )
            extra = reply.aed_pickup_s
        else:
            path, extra = slot.distance, 0.0
        arrive = leave + round((path * reply.route_factor / reply.speed_mps + extra) * US)
        slot.arrival = arrive
        slot.with_aed = aed is not None
        if reply.drop_at is not None:
            self.push(now_us + round((arrive - now_us) * reply.drop_at), _CANCEL, k)
        self.outcome.accepted += 1
        self.outcome.busy.append((alert.volunteer_id, now_us / US))

    def snapshot(self) -> tuple[tuple[int, int, str, str, int | None], ...]:
        return tuple(
            sorted(
                (a.volunteer_id, a.wave, a.state.value, a.role.role.value, a.role.aed_id)
                for a in self.alerts
            )
        )

    def set_state(self, k: int, state: AlertState, now_us: int) -> None:
        a = self.alerts[k]
        change = (state in RESPONDING) - (a.state in RESPONDING)
        if change:
            self.responding += change
            a.responder = None  # the role planner's view of them changes with it
        a.state = state
        if state not in _LIVE and a.gone is None:
            a.gone = now_us

    def next_moment(
        self, due_us: int | None, trace: bool
    ) -> tuple[int, int | None, Step | None] | None:
        """The next time the service acts: an answer or EMS (applied here), or the deadline.

        Returns (when, who just accepted, the step to record) or None when nothing is left.
        """
        started = self.scene.started_at
        heap = self.heap
        while heap and (due_us is None or heap[0][0] <= due_us):
            at_us, _, kind, k = heappop(heap)
            if kind == _EMS:
                return at_us, None, Step(started + at_us * ONE_US, "ems") if trace else None
            alert = self.alerts[k]
            event = _EVENT_OF[kind]
            target = _APPLY[alert.state, event]
            if target is None or target == alert.state:
                # Refused (409) or a repeat: the service changes nothing, plans nothing.
                if trace:
                    name = "refused" if target is None else "unchanged"
                    at = started + at_us * ONE_US
                    self.outcome.steps.append(
                        Step(at, name, alert.volunteer_id, self.snapshot(), event.value)
                    )
                continue
            if kind == _ACCEPT and self.stale is not None:
                # The re-plan put off while nobody was responding: this accept reads it.
                self.plan_roles(self.stale, lazy=False)
            self.set_state(k, target, at_us)
            said = Step(started + at_us * ONE_US, event.value, alert.volunteer_id)
            return at_us, k if kind == _ACCEPT else None, said if trace else None
        if due_us is None:
            return None
        return due_us, None, Step(started + due_us * ONE_US, "deadline") if trace else None

    def finish(self) -> Outcome:
        out = self.outcome
        first: int | None = None
        first_aed: int | None = None
        out.roles = [a.role for a in self.alerts]
        for slot in self.alerts:
            arrive = slot.arrival
            if arrive is None or (slot.gone is not None and slot.gone <= arrive):
                continue
            first = arrive if first is None else min(first, arrive)
            if slot.with_aed:
                first_aed = arrive if first_aed is None else min(first_aed, arrive)
        out.first_on_scene_s = None if first is None else first / US
        out.first_aed_s = None if first_aed is None else first_aed / US
        return out


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
    run = _Run(scene, responses, profiles, available)
    policy = scene.policy
    started = scene.started_at
    ems_us = None if ems_s is None else round(ems_s * US)
    if ems_us is not None and policy.stand_down_on_ems_on_scene and ems_us > 0:
        run.push(ems_us, _EMS, -1)
    with_roles = bool(scene.aeds)
    lazy = not trace
    # With AED opening hours a re-look's role re-plan reads the clock: it is kept then.
    quick = not trace and not run.hours
    alerts = run.alerts
    now_us = 0
    accepted: int | None = None
    step = Step(started, "start") if trace else None
    while True:
        now = started + now_us * ONE_US
        decision = plan(
            policy,
            alerts,
            started_at=started,
            now=now,
            open_=True,
            ems_on_scene=ems_us is not None and now_us >= ems_us,
            answer_window_s=run.window_s,
        )
        if decision.time_out or decision.stand_down or decision.release:
            ended = (decision.time_out, decision.stand_down, decision.release)
            for ids, event in zip(ended, _ENDS, strict=True):
                for alert_id in ids:
                    k = alert_id.int - 1
                    target = _APPLY[alerts[k].state, event]
                    assert target is not None, (alerts[k].state, event)
                    run.set_state(k, target, now_us)
        relook = False
        fresh_us: int | None = None
        if decision.new_alerts:
            chosen, lapsing = run.match(
                decision.new_alerts, decision.radius_m, decision.wave, now, now_us
            )
            relook = bool(chosen) or lapsing
            if chosen and not lapsing and quick:
                fresh_us = now_us + run.window_us
        if with_roles:
            run.plan_roles(now, lazy=lazy)
        if accepted is not None:
            run.depart(accepted, now_us)
            accepted = None
        if step is not None:
            step.after = run.snapshot()
            run.outcome.steps.append(step)
        due = decision.next_check_at if relook else decision.due_at
        due_us = None if due is None else (due - started) // ONE_US
        if fresh_us is not None and due_us is not None and fresh_us >= due_us:
            # The re-look would change nothing (see the module notes): its only news is the
            # new alerts' answer deadline, which comes no earlier than the re-look itself.
            assert decision.due_at is not None
            due_us = min((decision.due_at - started) // ONE_US, fresh_us)
        moment = run.next_moment(due_us, trace)
        if moment is None:
            return run.finish()
        now_us, accepted, step = moment
