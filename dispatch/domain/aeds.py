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


def plan_roles(
    responders: Sequence[Responder],
    aeds: Sequence[Aed],
    *,
    patient: tuple[float, float],
    max_detour_m: float,
    direct_share: float = 1 / 3,
) -> dict[UUID, Assignment]:
    """Roles for every live alert; ``aeds`` are the ones open now near the patient."""
    plan: dict[UUID, Assignment] = {}
    if not responders:
        return plan
    by_id = {a.aed_id: a for a in aeds}
    taken: set[int] = set()
    # Responders already fetching an AED keep it while it is still a candidate.
    for r in responders:
        if r.responding and r.current_aed in by_id and r.current_aed not in taken:
            plan[r.alert_id] = Assignment(Role.AED, r.current_aed)
            taken.add(r.current_aed)
    order = sorted(responders, key=lambda r: (not r.responding, r.to_patient_m, str(r.alert_id)))
    direct_needed = max(1, math.ceil(len(responders) * direct_share))
    direct = 0
    nearest = min(responders, key=lambda r: (r.to_patient_m, str(r.alert_id)))
    if nearest.alert_id not in plan:
        plan[nearest.alert_id] = Assignment(Role.CPR)
        direct += 1
    for r in order:
        if r.alert_id in plan:
            continue
        if direct < direct_needed:
            plan[r.alert_id] = Assignment(Role.CPR)
            direct += 1
            continue
        best: tuple[float, int] | None = None
        for aed in aeds:
            if aed.aed_id in taken:
                continue
            route = distance_m(r.lat, r.lon, aed.lat, aed.lon) + distance_m(
                aed.lat, aed.lon, *patient
            )
            detour = route - r.to_patient_m
            if detour <= max_detour_m and (best is None or detour < best[0]):
                best = (detour, aed.aed_id)
        if best is None:
            plan[r.alert_id] = Assignment(Role.CPR)
            direct += 1
        else:
            plan[r.alert_id] = Assignment(Role.AED, best[1])
            taken.add(best[1])
    return plan


@dataclass(frozen=True, slots=True)
class LiveAlert:
    """An alert still in play (waiting or responding) with the role it holds now."""

    alert_id: UUID
    volunteer_id: int
    responding: bool
    role: Role
    aed_id: int | None
    distance_m: float


@dataclass(frozen=True, slots=True)
class RolePlan:
    roles: dict[UUID, Assignment]
    changed: list[tuple[UUID, Assignment]]
    """The assignments that differ from what the alerts hold now."""
    open_aeds: int


def replan_roles(
    live: Sequence[LiveAlert],
    position_of: Callable[[int], tuple[float, float] | None],
    nearby: Sequence[Aed],
    *,
    local: datetime,
    patient: tuple[float, float],
    max_detour_m: float,
) -> RolePlan:
    """Roles for an incident's live alerts, given the AEDs near the patient.

    ``nearby`` are the AEDs within the policy's AED radius; those not open at ``local`` (the
    agency's wall-clock time) are left out. A volunteer whose position is unknown keeps the
    role they have. With no open AED everyone goes straight to the patient.
    """
    open_aeds = [a for a in nearby if is_accessible(a, local)]
    if not open_aeds:
        # What plan_roles decides without AEDs, minus building a Responder per alert.
        cpr = Assignment(Role.CPR)
        roles = {a.alert_id: cpr for a in live if position_of(a.volunteer_id) is not None}
    else:
        responders = []
        for alert in live:
            where = position_of(alert.volunteer_id)
            if where is None:
                continue
            responders.append(
                Responder(
                    alert_id=alert.alert_id,
                    lat=where[0],
                    lon=where[1],
                    to_patient_m=alert.distance_m,
                    responding=alert.responding,
                    current_aed=alert.aed_id if alert.role is Role.AED else None,
                )
            )
        roles = plan_roles(responders, open_aeds, patient=patient, max_detour_m=max_detour_m)
    current = {a.alert_id: (a.role, a.aed_id) for a in live}
    changed = [
        (alert_id, a) for alert_id, a in roles.items() if current[alert_id] != (a.role, a.aed_id)
    ]
    return RolePlan(roles, changed, len(open_aeds))
