"""Decisions about an incoming incident snapshot: new, newer, replayed or stale; may it alert?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cad_adapters.models import IncidentReport, IncidentStatus


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
    TEST_INCIDENT = "test_incident"
    NOT_ACTIVE = "not_active"
    NO_LOCATION = "no_location"


def not_alertable_reason(report: IncidentReport) -> NotAlertable | None:
    """None when volunteers may be alerted for ``report``; otherwise the first reason not to.

    Unknown never alerts: only an explicit cardiac-arrest flag (set by the source
    or by the agency's call-type rules) lets volunteers be woken.
    """
    if report.status is not IncidentStatus.ACTIVE:
        return NotAlertable.NOT_ACTIVE
    if report.is_test:
        return NotAlertable.TEST_INCIDENT
    if report.is_cardiac_arrest is None:
        return NotAlertable.UNKNOWN_CALL_TYPE
    if not report.is_cardiac_arrest:
        return NotAlertable.NOT_CARDIAC_ARREST
    if report.location is None:
        return NotAlertable.NO_LOCATION
    return None
