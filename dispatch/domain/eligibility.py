"""Who may be alerted for an incident, and why not.

Each rule is one reason; the first that applies excludes the volunteer, and the
response log counts exclusions per reason (never a list of people).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import Final, Protocol, TypeVar

from cad_adapters.models import PlaceType
from dispatch.domain import time_zones


class Tier(StrEnum):
    LAY = "lay"
    """Trained citizens: public places only (PulsePoint's Public CPR Responder)."""
    PROFESSIONAL = "professional"
    """Verified professionals: also residences (PulsePoint's Verified Responder)."""


class Exclusion(StrEnum):
    UNVERIFIED = "unverified"
    CERTIFICATION = "certification_expired"
    RESIDENCE = "lay_responder_residence"
    UNKNOWN_PLACE = "lay_responder_unknown_place"
    OFF_DUTY = "off_duty"
    QUIET_HOURS = "quiet_hours"
    QUIET_HOURS_ZONE_UNKNOWN = "quiet_hours_zone_unknown"
    BUDGET = "daily_budget_spent"
    NOT_TESTER = "not_a_tester"
    BUSY = "on_another_incident"


@dataclass(frozen=True, slots=True)
class VolunteerProfile:
    volunteer_id: int
    tier: Tier = Tier.LAY
    verified: bool = True
    certified_until: datetime | None = None
    on_duty: bool = True
    quiet_from: time | None = None
    quiet_until: time | None = None
    time_zone: str = "UTC"
    daily_budget: int | None = None
    alerts_today: int = 0
    is_tester: bool = False
    busy: bool = False
    tier_requested: Tier | None = None
    """The volunteer's own wish; "lay" keeps a professional out of homes."""
    professional_until: datetime | None = None
    """When the professional tier granted by a licence lapses (None: it does not)."""

    def tier_at(self, at: datetime) -> Tier:
        """The tier in force at ``at``: the granted one, unless lapsed or asked lower."""
        if self.tier_requested is Tier.LAY or self.tier is Tier.LAY:
            return Tier.LAY
        if self.professional_until is not None and self.professional_until <= at:
            return Tier.LAY
        return Tier.PROFESSIONAL


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    place_type: PlaceType
    is_test: bool
    at: datetime
    lay_unknown_place: bool = False


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """Whether ``local`` falls in [start, end), which may wrap past midnight."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def exclusion(profile: VolunteerProfile, facts: IncidentFacts) -> Exclusion | None:
    """Why ``profile`` must not be alerted for this incident, or None when they may be."""
    if not profile.verified:
        return Exclusion.UNVERIFIED
    if profile.certified_until is None or profile.certified_until <= facts.at:
        return Exclusion.CERTIFICATION
    if profile.tier_at(facts.at) is Tier.LAY:
        if facts.place_type is PlaceType.RESIDENTIAL:
            return Exclusion.RESIDENCE
        if facts.place_type is PlaceType.UNKNOWN and not facts.lay_unknown_place:
            return Exclusion.UNKNOWN_PLACE
    if facts.is_test and not profile.is_tester:
        return Exclusion.NOT_TESTER
    if not profile.on_duty:
        return Exclusion.OFF_DUTY
    if profile.quiet_from is not None and profile.quiet_until is not None:
        try:
            zone = time_zones.time_zone(profile.time_zone)
        except time_zones.UnknownTimeZone:
            # A zone this server's tzdata no longer knows (checked when it was stored):
            # the quiet hours cannot be told, and one volunteer's setting must not stop
            # the incident's matching for everyone else.
            return Exclusion.QUIET_HOURS_ZONE_UNKNOWN
        local = facts.at.astimezone(zone).time()
        if in_quiet_hours(local, profile.quiet_from, profile.quiet_until):
            return Exclusion.QUIET_HOURS
    if profile.daily_budget is not None and profile.alerts_today >= profile.daily_budget:
        return Exclusion.BUDGET
    if profile.busy:
        return Exclusion.BUSY
    return None


UNKNOWN_VOLUNTEER: Final = "unknown_volunteer"
"""The reason counted for a candidate with no profile (e.g. deleted since it was indexed)."""


class Candidate(Protocol):
    """A volunteer found near the incident (``geoindex.Hit`` is one)."""

    @property
    def volunteer_id(self) -> int: ...

    @property
    def distance_m(self) -> float: ...


C = TypeVar("C", bound=Candidate)


def pick_eligible(
    candidates: Iterable[C],
    profile_of: Callable[[int], VolunteerProfile | None],
    facts: IncidentFacts,
    wanted: int,
    excluded: MutableMapping[str, int],
) -> list[C]:
    """The first ``wanted`` candidates (given nearest first) that may be alerted.

    Every candidate passed over is counted in ``excluded`` under its reason; candidates
    after the last one picked are not looked at. The service and ``dispatch simulate``
    both choose through this function, so they cannot disagree about who is alerted.
    """
    chosen: list[C] = []
    if wanted <= 0:
        return chosen
    for candidate in candidates:
        profile = profile_of(candidate.volunteer_id)
        reason = UNKNOWN_VOLUNTEER if profile is None else exclusion(profile, facts)
        if reason is not None:
            excluded[str(reason)] = excluded.get(str(reason), 0) + 1
            continue
        chosen.append(candidate)
        if len(chosen) == wanted:
            break
    return chosen
