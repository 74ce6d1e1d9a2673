"""The one way to turn a stored or given time-zone name into a zone.

An unknown name is refused, never read as UTC: a quiet-hours window, an AED's opening
hours or a CAD time without offset an hour or more off would be wrong without a sign.
"""

from __future__ import annotations

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
