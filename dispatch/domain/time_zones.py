"""The one way to turn a stored or given time-zone name into a zone.

An unknown name is refused, never read as UTC: a quiet-hours window, an AED's opening
hours or a CAD time without offset an hour or more off would be wrong without a sign.
That holds for a name read back from the database too: a written setting was checked, but
a tzdata update can drop a zone (or a row was edited by hand), and then every use that
needs it refuses (:class:`AgencyZoneUnknown`) instead of computing in a wrong zone.
"""

from __future__ import annotations

from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatch.domain.field_error import FieldError


class UnknownTimeZone(FieldError):
    """A name that is not an IANA time zone this machine knows."""


def time_zone(name: object, *, pointer: str = "/time_zone") -> ZoneInfo:
    """The IANA zone called ``name``; :class:`UnknownTimeZone` (at ``pointer``) otherwise."""
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        # A folder name ("Europe") is an OSError when zones come from the tzdata wheel.
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise UnknownTimeZone(pointer, "must be an IANA time zone like Europe/Amsterdam")


class AgencyZoneUnknown(Exception):
    """An agency's stored ``time_zone`` is not a zone this machine knows (any more).

    Not a :class:`FieldError`: the request or job that needs it is not at fault. The HTTP
    layer answers 500 problem+json naming the setting and the value; a background job skips
    the agency with a warning.
    """

    def __init__(self, agency_id: UUID, name: object) -> None:
        super().__init__(f"agency {agency_id}: time_zone {name!r} is unknown here")
        self.agency_id = agency_id
        self.name = name


def agency_time_zone(agency_id: UUID, name: object) -> ZoneInfo:
    """The zone of an agency's stored ``time_zone``; :class:`AgencyZoneUnknown` otherwise."""
    try:
        return time_zone(name)
    except UnknownTimeZone:
        raise AgencyZoneUnknown(agency_id, name) from None
