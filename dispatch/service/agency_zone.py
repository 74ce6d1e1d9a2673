"""An agency's stored time zone where work goes on without it (background jobs, roles).

A request that needs the zone is refused instead (``AgencyZoneUnknown`` reaches the HTTP
layer as a problem naming the setting); work that serves other agencies or a running
incident skips only what needs the zone, with one warning naming the agency and the value.
"""

from __future__ import annotations

from uuid import UUID
from zoneinfo import ZoneInfo

import structlog

from dispatch.domain.time_zones import AgencyZoneUnknown, agency_time_zone

log = structlog.get_logger(__name__)


def zone_or_skip(
    agency_id: UUID,
    name: str,
    *,
    skipped: str,
    warned: set[tuple[UUID, str]] | None = None,
) -> ZoneInfo | None:
    """The agency's zone; None when this server does not know it, after a warning whose
    event is ``skipped`` (what is left undone), naming the agency and the stored value.

    A job that retries every few seconds passes ``warned``, its own record of what it has
    said: it warns once per agency and value, not a line per round."""
    try:
        return agency_time_zone(agency_id, name)
    except AgencyZoneUnknown:
        if warned is None or (agency_id, name) not in warned:
            log.warning(
                skipped, agency_id=str(agency_id), time_zone=name, reason="unknown_time_zone"
            )
        if warned is not None:
            warned.add((agency_id, name))
        return None
