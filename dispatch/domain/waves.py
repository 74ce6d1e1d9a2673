"""The wave planner: given an incident's alerts and the clock, what to do now.

Pure: the caller loads the incident's alerts, asks :func:`plan`, carries out
the plan in one transaction, and stores ``next_check_at`` so the ticker comes
back exactly when something is due — a restart loses no deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

from dispatch.domain.alert_states import AlertState
from dispatch.domain.policy import AlertPolicy

WAITING = frozenset({AlertState.QUEUED, AlertState.SENT, AlertState.DELIVERED})
RESPONDING = frozenset({AlertState.ACCEPTED, AlertState.EN_ROUTE, AlertState.ON_SCENE})
# While slots stay unfilled (nobody near yet), look again this often: volunteers move.
RECHECK = timedelta(seconds=15)
# Declined, timed out and cancelled-after-accepting free their slot for the next nearest.
_REPLACEABLE = frozenset({AlertState.DECLINED, AlertState.TIMED_OUT, AlertState.CANCELLED})


class AlertLike(Protocol):
    """What the planner reads of an alert: :class:`AlertView`, or a record of the same
    fields kept by ``dispatch simulate`` (which changes its state in place)."""

    @property
    def alert_id(self) -> UUID: ...

    @property
    def volunteer_id(self) -> int: ...

    @property
    def state(self) -> AlertState: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def wave(self) -> int: ...


@dataclass(frozen=True, slots=True)
class AlertView:
    alert_id: UUID
    volunteer_id: int
    state: AlertState
    created_at: datetime
    wave: int


@dataclass(frozen=True, slots=True)
class Plan:
    wave: int
    radius_m: float
    new_alerts: int
    """How many more volunteers to alert now, nearest first, none alerted before."""
    time_out: tuple[UUID, ...] = ()
    """Waiting alerts whose answer window has passed."""
    stand_down: tuple[UUID, ...] = ()
    """Waiting alerts no longer needed (target reached, or the incident ended)."""
    release: tuple[UUID, ...] = ()
    """Responders to release (the incident ended)."""
    next_check_at: datetime | None = None
    reason: str = ""
    due_at: datetime | None = None
    """``next_check_at`` without the periodic re-look for volunteers who came into range: the
    next moment something is due even if no volunteer moves (``dispatch simulate``, where
    nobody moves during an incident, comes back only then)."""


_SPANS: dict[float, timedelta] = {}


def _span(seconds: float) -> timedelta:
    """``timedelta(seconds=...)``, kept: a policy has a handful of spans and the simulator asks
    the planner millions of times (making a timedelta is a third of a decision)."""
    span = _SPANS.get(seconds)
    if span is None:
        if len(_SPANS) > 1024:
            _SPANS.clear()
        span = _SPANS[seconds] = timedelta(seconds=seconds)
    return span


def _wave_in_force(policy: AlertPolicy, started_at: datetime, now: datetime) -> int:
    # A wave is in force from the very datetime the planner hands out as its deadline (after_s
    # in float seconds would disagree with it below a microsecond: the same check, forever).
    wave = 0
    for index, w in enumerate(policy.waves):
        if started_at + _span(w.after_s) <= now:
            wave = index
    return wave


def _sort(
    alerts: Sequence[AlertLike], now: datetime, answer_window: timedelta
) -> tuple[tuple[UUID, ...], list[AlertLike], int]:
    """In one pass (the simulator calls this millions of times): silent too long, still
    waiting, and how many are responding."""
    expired: list[UUID] = []
    waiting: list[AlertLike] = []
    responding = 0
    for a in alerts:
        if a.state in WAITING:
            if now - a.created_at >= answer_window:
                expired.append(a.alert_id)
            else:
                waiting.append(a)
        elif a.state in RESPONDING:
            responding += 1
    return tuple(expired), waiting, responding


def plan(
    policy: AlertPolicy,
    alerts: Sequence[AlertLike],
    *,
    started_at: datetime,
    now: datetime,
    open_: bool,
    ems_on_scene: bool = False,
    answer_window_s: float | None = None,
) -> Plan:
    """Decide the next step for one incident.

    ``answer_window_s``: how long a silent volunteer keeps their slot, when the service
    knows the delivery chain (see :func:`dispatch.domain.policy.answer_window_s`); else
    the policy's ``not_coming_after_s``.
    """
    wave = _wave_in_force(policy, started_at, now)
    radius = policy.waves[wave].radius_m
    if not open_ or (ems_on_scene and policy.stand_down_on_ems_on_scene):
        return Plan(
            wave,
            radius,
            0,
            stand_down=tuple(a.alert_id for a in alerts if a.state in WAITING),
            release=tuple(a.alert_id for a in alerts if a.state in RESPONDING),
            reason="incident_ended" if not open_ else "ems_on_scene",
        )

    window_s = policy.not_coming_after_s if answer_window_s is None else answer_window_s
    answer_window = _span(window_s)
    timed_out, waiting, responding = _sort(alerts, now, answer_window)

    if responding >= policy.target_accepted:
        return Plan(
            wave,
            radius,
            0,
            time_out=timed_out,
            stand_down=tuple(a.alert_id for a in waiting),
            reason="target_reached",
        )

    stop_at = started_at + _span(policy.stop_after_s)
    if now >= stop_at:
        expiries = [a.created_at + answer_window for a in waiting]
        due = min(expiries) if expiries else None
        return Plan(
            wave,
            radius,
            0,
            time_out=timed_out,
            next_check_at=due,
            reason="alerting_window_over",
            due_at=due,
        )

    live = len(waiting) + responding
    if not policy.replace_declined:
        # Without replacement a declined slot stays used for the rest of the wave.
        live += sum(a.state in _REPLACEABLE and a.wave == wave for a in alerts)
    budget = policy.max_alerted - len(alerts)
    new = max(0, min(policy.waves[wave].live - live, budget))

    deadlines = [a.created_at + answer_window for a in waiting]
    if wave + 1 < len(policy.waves):
        deadlines.append(started_at + _span(policy.waves[wave + 1].after_s))
    if deadlines or new:
        deadlines.append(stop_at)
    due = min(deadlines) if deadlines else None
    if new:
        deadlines.append(now + RECHECK)
    return Plan(
        wave,
        radius,
        new,
        time_out=timed_out,
        next_check_at=min(deadlines) if deadlines else None,
        reason="alerting",
        due_at=due,
    )
