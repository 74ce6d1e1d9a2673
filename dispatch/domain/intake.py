"""Decisions about an incoming incident snapshot: new, newer, replayed or stale; may it alert?"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from cad_adapters.models import IncidentReport, IncidentStatus, PlaceType, UnitReport, UnitStatus
from dispatch.domain.models import AgencyPolicy, PlaceRules


class IntakeStatus(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class StoredVersion:
    version_key: tuple[datetime, int]
    content_hash: bytes
    status: IncidentStatus


class VersionConflict(Exception):
    """Same source version, different content: the sender must bump its version."""


def classify(
    stored: StoredVersion | None, report: IncidentReport, content_hash: bytes
) -> IntakeStatus:
    """How a snapshot relates to what is stored for the same (agency, source, incident id)."""
    key = report.version_key()
    if stored is None:
        return IntakeStatus.CREATED
    if key < stored.version_key:
        return IntakeStatus.STALE
    if key == stored.version_key:
        if content_hash == stored.content_hash:
            return IntakeStatus.UNCHANGED
        raise VersionConflict(
            "a different document with the same version was already accepted; "
            "send a higher version or a later updated_at"
        )
    if report.status is IncidentStatus.CANCELLED and stored.status is not IncidentStatus.CANCELLED:
        return IntakeStatus.CANCELLED
    return IntakeStatus.UPDATED


class NotAlertable(StrEnum):
    """Why an incident sends no alerts (recorded in the response log)."""

    NOT_CARDIAC_ARREST = "not_cardiac_arrest"
    UNKNOWN_CALL_TYPE = "unknown_call_type"
    NOT_ACTIVE = "not_active"
    NO_LOCATION = "no_location"
    TOO_OLD = "too_old"
    IN_FUTURE = "in_future"
    LOCATION_IMPRECISE = "location_imprecise"
    RECEIVED_TIME_UNKNOWN = "received_time_unknown"


def not_alertable_reason(report: IncidentReport) -> NotAlertable | None:
    """None when volunteers may be alerted for ``report``; otherwise the first reason not to.

    Unknown never alerts: only an explicit cardiac-arrest flag (set by the source
    or by the agency's call-type rules) lets volunteers be woken. Test incidents are
    alertable, but only volunteers enrolled as testers are eligible for them.
    """
    if report.status is not IncidentStatus.ACTIVE:
        return NotAlertable.NOT_ACTIVE
    if report.is_cardiac_arrest is None:
        return NotAlertable.UNKNOWN_CALL_TYPE
    if not report.is_cardiac_arrest:
        return NotAlertable.NOT_CARDIAC_ARREST
    if report.location is None:
        return NotAlertable.NO_LOCATION
    return None


def timing_block(
    received_at: datetime, now: datetime, *, max_age_s: float, max_skew_s: float
) -> NotAlertable | None:
    """Whether an incident received at ``received_at`` may still start alerting ``now``.

    Checked once, when alerting would start; the answer is then kept, so a later
    snapshot of an old incident cannot wake anyone either.
    """
    age_s = (now - received_at).total_seconds()
    if age_s > max_age_s:
        return NotAlertable.TOO_OLD
    if -age_s > max_skew_s:
        return NotAlertable.IN_FUTURE
    return None


def start_block(
    received_at: datetime, now: datetime, *, imprecise: bool, max_age_s: float, max_skew_s: float
) -> NotAlertable | None:
    """Why an alertable incident must not start alerting ``now``: too old, dated in the
    future, or located too vaguely (the service at intake, ``dispatch simulate`` per call)."""
    blocked = timing_block(received_at, now, max_age_s=max_age_s, max_skew_s=max_skew_s)
    if blocked is None and imprecise:
        return NotAlertable.LOCATION_IMPRECISE
    return blocked


def location_imprecise(uncertainty_m: float | None, max_uncertainty_m: float) -> bool:
    """A location whose stated uncertainty exceeds the agency's limit (unstated: precise)."""
    return uncertainty_m is not None and uncertainty_m > max_uncertainty_m


_WORD = re.compile(r"[A-Z0-9]+")


def derive_place_type(report: IncidentReport, rules: PlaceRules) -> PlaceType:
    """The CAD's place type, or the agency's word rules applied to place detail and address."""
    if report.place_type is not PlaceType.UNKNOWN:
        return report.place_type
    text = " ".join(
        t for t in (report.place_detail, report.address.text if report.address else None) if t
    )
    words = set(_WORD.findall(text.upper()))
    if words & {w.upper() for w in rules.residential}:
        return PlaceType.RESIDENTIAL
    if words & {w.upper() for w in rules.public}:
        return PlaceType.PUBLIC
    return PlaceType.UNKNOWN


def apply_agency_rules(report: IncidentReport, agency: AgencyPolicy) -> IncidentReport:
    """Settle what the source left open with the agency's rules.

    An explicit ``is_cardiac_arrest`` from the source stands; otherwise the
    agency's call-type rules decide, and no match stays unknown (never alerts).
    """
    is_arrest = report.is_cardiac_arrest
    if is_arrest is None:
        is_arrest = agency.call_types.matches(report.call_type.code, report.call_type.text)
    return replace(
        report, is_cardiac_arrest=is_arrest, place_type=derive_place_type(report, agency.places)
    )


def changed_units(
    stored: Mapping[str, tuple[UnitStatus, datetime | None]], units: Sequence[UnitReport]
) -> list[UnitReport]:
    """Units whose status is new or different from the last snapshot (full snapshots repeat).

    A snapshot whose unit time is older than the stored one is history, not news.
    """
    changes = []
    for unit in units:
        previous = stored.get(unit.unit_id)
        if previous is not None:
            status, at = previous
            if status is unit.status:
                continue
            if at is not None and unit.at is not None and unit.at < at:
                continue
        changes.append(unit)
    return changes


EMS_ON_SCENE: frozenset[UnitStatus] = frozenset({UnitStatus.ON_SCENE, UnitStatus.PATIENT_CONTACT})
