"""What the engine works on and hands back: an incident as every run sees it, responses,
the outcome, and (for tests) each step it took."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from cad_adapters.models import PlaceType
from dispatch.domain.aeds import Aed, Assignment, Distance, distance_m
from dispatch.domain.alert_states import AlertEvent
from dispatch.domain.policy import AlertPolicy
from dispatch.domain.waves import AlertLike
from geoindex import Hit


class Response(NamedTuple):
    """What one alerted volunteer does (times from the alert); a tuple, made once per alert."""

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
    alerts: Sequence[AlertLike]
    roles: list[Assignment]
    accepted: int = 0
    first_on_scene_s: float | None = None
    """Alert start to the first volunteer on scene."""
    first_aed_s: float | None = None
    """Alert start to the first volunteer arriving with an AED."""
    busy: list[tuple[int, float]] = field(default_factory=list)
    """(volunteer, accepted at, s from alert start) for everyone who accepted."""
    steps: list[Step] = field(default_factory=list)
