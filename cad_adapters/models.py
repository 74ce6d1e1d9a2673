"""The normalized incident every CAD format is parsed into.

Field names follow ``shared/notes/cad_formats.md`` §0.1. Times are aware UTC;
coordinates are WGS84 decimal degrees already range-checked by the parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "Address",
    "CallType",
    "Coordinates",
    "IncidentReport",
    "IncidentStatus",
    "PlaceType",
    "UnitReport",
    "UnitStatus",
]


class PlaceType(StrEnum):
    PUBLIC = "public"
    RESIDENTIAL = "residential"
    UNKNOWN = "unknown"


class IncidentStatus(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class UnitStatus(StrEnum):
    """Normalized paramedic unit status, in the order a unit normally moves through them."""

    DISPATCHED = "dispatched"
    ACKNOWLEDGED = "acknowledged"
    EN_ROUTE = "en_route"
    STAGED = "staged"
    ON_SCENE = "on_scene"
    PATIENT_CONTACT = "patient_contact"
    TRANSPORTING = "transporting"
    AT_HOSPITAL = "at_hospital"
    AVAILABLE = "available"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Coordinates:
    lat: float
    lon: float
    uncertainty_m: float | None = None


@dataclass(frozen=True, slots=True)
class Address:
    text: str | None = None
    civic: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallType:
    """The call type as the CAD sent it; ``normalized`` is our own code where one is known."""

    code: str
    text: str | None = None
    normalized: str | None = None
    # Added for EIDO/CAP (cad_adapters/eido.py, cap.py): the CAD's own code next to
    # the registry code, and the code list ``code`` belongs to.
    internal_code: str | None = None
    """The CAD's internal call-type code when ``code`` is a registry code (EIDO)."""
    scheme: str | None = None
    """Code list of ``code``: ``"EIDO-IncidentType-Common"``, a CAP eventCode valueName
    such as ``"SAME"``, or ``"CAP-event"`` when only the event text was sent."""


@dataclass(frozen=True, slots=True)
class UnitReport:
    unit_id: str
    status: UnitStatus
    status_raw: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """One CAD snapshot of one incident, normalized.

    ``is_cardiac_arrest`` is tri-state: ``None`` means the source did not say and
    the agency's call-type rules must decide (unknown never alerts).
    ``source_updated_at`` and ``source_version`` order snapshots of the same
    incident; see :meth:`version_key`.
    """

    source: str
    source_incident_id: str
    call_type: CallType
    received_at: datetime
    location: Coordinates | None
    local_incident_number: str | None = None
    is_cardiac_arrest: bool | None = None
    address: Address | None = None
    place_type: PlaceType = PlaceType.UNKNOWN
    place_detail: str | None = None
    dispatched_at: datetime | None = None
    closed_at: datetime | None = None
    status: IncidentStatus = IncidentStatus.ACTIVE
    is_test: bool = False
    source_version: int | None = None
    source_updated_at: datetime | None = None
    units: tuple[UnitReport, ...] = ()
    # Added for EIDO/CAP (cad_adapters/eido.py, cap.py):
    references: tuple[str, ...] = ()
    """Earlier messages this one updates or cancels, as source incident ids
    (CAP: ``"{sender}/{identifier}"`` of each ``<references>`` triple)."""
    agency_id: str | None = None
    """The owning/sending agency as the source names it (EIDO agency ``$id``, CAP sender)."""
    agency_name: str | None = None
    """A display name for the agency where the source gives one (CAP ``senderName``)."""
    location_source: str | None = None
    """Where ``location`` came from, e.g. ``"eido:CurrentIncident"``, ``"cap:circle"``,
    ``"cap:polygon-centroid"``."""

    def version_key(self) -> tuple[datetime, int]:
        """Order of snapshots: the source's update time, then its version counter.

        A snapshot whose key is lower than the stored one is stale; an equal key
        with equal content is a replay.
        """
        return (self.source_updated_at or self.received_at, self.source_version or 0)
