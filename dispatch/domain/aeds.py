"""AEDs and the role split: who goes straight to the patient, who fetches an AED first.

Evidence (``shared/notes/domain.md`` §3): HartslagNu aims for a third direct and two
thirds via AEDs, searching AEDs within 500 m of the patient; Region der Lebensretter
sends the two fastest to the patient and the third via an AED; Denmark's first
responder does CPR and the others fetch AEDs. So: the nearest responder always goes
direct (CPR cannot wait), at least a third go direct, and the others fetch an AED
when one is open and the detour is small (``max_detour_m``; HartslagNu's "route at
most 5 % longer" would send almost nobody at walking range, so the bound is in
metres). Each AED is fetched by one volunteer only. A responder already travelling
via an AED keeps it, so roles do not flap as answers come in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import Final
from uuid import UUID

EARTH_RADIUS_M = 6_371_008.8
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Role(StrEnum):
    CPR = "cpr"
    AED = "aed"


@dataclass(frozen=True, slots=True)
class Aed:
    aed_id: int
    name: str
    lat: float
    lon: float
    access_hours: Mapping[str, Sequence[tuple[time, time]]] | None = None
    """Opening hours per weekday (local time); None means always accessible."""
    indoor_description: str | None = None
    access_notes: str | None = None


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def within(aeds: Iterable[Aed], lat: float, lon: float, radius_m: float) -> list[Aed]:
    """The AEDs at most ``radius_m`` from (lat, lon), in the order given."""
    return [a for a in aeds if distance_m(lat, lon, a.lat, a.lon) <= radius_m]


def is_accessible(aed: Aed, local: datetime) -> bool:
    """Whether the AED can be taken at ``local`` (the AED's local wall-clock time)."""
    if aed.access_hours is None:
        return True
    day = DAYS[local.weekday()]
    now = local.time()
    return any(start <= now < end for start, end in aed.access_hours.get(day, ()))


@dataclass(frozen=True, slots=True)
class Responder:
    alert_id: UUID
    lat: float
    lon: float
    to_patient_m: float
    responding: bool
    """Accepted (or further): their role matters more, and an AED role already given sticks."""
    current_aed: int | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    role: Role
    aed_id: int | None = None


_DIRECT: Final = Assignment(Role.CPR)
DIRECT_SHARE: Final = 1 / 3
"""At least this share of live alerts goes straight to the patient."""


def direct_needed(live: int, share: float = DIRECT_SHARE) -> int:
    """How many of ``live`` alerts must go straight to the patient (at least one)."""
    return max(1, math.ceil(live * share))


Distance = Callable[[float, float, float, float], float]


def plan_roles(
    responders: Sequence[Responder],
    aeds: Sequence[Aed],
    *,
    patient: tuple[float, float],
    max_detour_m: float,
    direct_share: float = DIRECT_SHARE,
    distance: Distance = distance_m,
) -> dict[UUID, Assignment]:
    """Roles for every live alert; ``aeds`` are the ones open now near the patient.

    ``distance`` is :func:`distance_m` or a memoised copy of it (the simulator asks about the
    same volunteer–AED pairs many times). Ties in distance go to the lower alert id. A
    responder's ``current_aed`` counts only once they are responding.
    """
    roles = _assign(responders, aeds, patient, max_detour_m, direct_share, distance)
    return {r.alert_id: a for r, a in zip(responders, roles, strict=True)}


def _assign(
    responders: Sequence[Responder],
    aeds: Sequence[Aed],
    patient: tuple[float, float],
    max_detour_m: float,
    direct_share: float,
    distance: Distance,
) -> list[Assignment]:
    """:func:`plan_roles` as a list in the responders' order (kept by index, not by id)."""
    n = len(responders)
    if not n:
        return []
    assigned: list[Assignment | None] = [None] * n
    aed_ids = {a.aed_id for a in aeds}
    taken: set[int] = set()
    # Responders already fetching an AED keep it while it is still a candidate.
    for i, r in enumerate(responders):
        if r.responding and r.current_aed in aed_ids and r.current_aed not in taken:
            assigned[i] = Assignment(Role.AED, r.current_aed)
            taken.add(r.current_aed)

    # UUIDs order as their (fixed-width, lower-case hex) text does, without making the text.
    nearness = [(r.to_patient_m, r.alert_id) for r in responders]
    rank = [(not r.responding, *near) for r, near in zip(responders, nearness, strict=True)]
    needed = direct_needed(n, direct_share)
    direct = 0
    nearest = min(range(n), key=nearness.__getitem__)
    if assigned[nearest] is None:
        assigned[nearest] = _DIRECT
        direct += 1
    # Each AED (id, position, leg to the patient), made once when first needed.
    spots: list[tuple[int, float, float, float]] = []
    for i in sorted(range(n), key=rank.__getitem__):
        if assigned[i] is not None:
            continue
        if direct < needed:
            assigned[i] = _DIRECT
            direct += 1
            continue
        if not spots:
            spots = [(a.aed_id, a.lat, a.lon, distance(a.lat, a.lon, *patient)) for a in aeds]
        r = responders[i]
        lat, lon, to_patient = r.lat, r.lon, r.to_patient_m
        best, best_id = math.inf, 0
        for aed_id, a_lat, a_lon, leg in spots:
            if aed_id in taken:
                continue
            detour = distance(lat, lon, a_lat, a_lon) + leg - to_patient
            if detour <= max_detour_m and detour < best:
                best, best_id = detour, aed_id
        if best == math.inf:  # no open AED within the detour (a found one is finite)
            assigned[i] = _DIRECT
            direct += 1
        else:
            assigned[i] = Assignment(Role.AED, best_id)
            taken.add(best_id)
    return [a or _DIRECT for a in assigned]


@dataclass(frozen=True, slots=True)
class RolePlan:
    assignments: list[Assignment]
    """One per responder, in their order."""
    changed: list[tuple[UUID, Assignment]]
    """The assignments that differ from what the alerts hold now."""
    open_aeds: int


def current_assignment(responder: Responder) -> Assignment:
    """The role a live alert holds now: fetching ``current_aed``, or straight to the patient."""
    aed = responder.current_aed
    return _DIRECT if aed is None else Assignment(Role.AED, aed)


def replan_roles(
    responders: Sequence[Responder],
    nearby: Sequence[Aed],
    *,
    local: datetime,
    patient: tuple[float, float],
    max_detour_m: float,
    distance: Distance = distance_m,
) -> RolePlan:
    """Roles for an incident's live alerts (``current_aed`` set for those fetching one now).

    ``nearby`` are the AEDs within the policy's AED radius; those not open at ``local`` (the
    agency's wall-clock time) are left out. With no open AED everyone goes straight to the
    patient. The service and ``dispatch simulate`` both re-plan through this function.
    """
    open_aeds = [a for a in nearby if is_accessible(a, local)]
    if open_aeds:
        assigned = _assign(responders, open_aeds, patient, max_detour_m, DIRECT_SHARE, distance)
    else:
        # What plan_roles decides without AEDs, minus the work.
        assigned = [_DIRECT] * len(responders)
    changed = [
        (r.alert_id, a)
        for r, a in zip(responders, assigned, strict=True)
        if r.current_aed != a.aed_id
    ]
    return RolePlan(assigned, changed, len(open_aeds))
