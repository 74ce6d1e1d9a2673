"""Values the service passes around; frozen, no behaviour that needs I/O."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class AgencyPolicy:
    """The agency's alerting parameters (defaults: ``shared/notes/domain.md`` §3–4).

    500 m and 7 volunteers follow the only evaluated phased policy (7 of 30 within
    reach) and the common urban radius (GoodSAM NSW/SCAS, Ringh RCT).
    """

    agency_id: UUID
    radius_m: float = 500.0
    limit: int = 7
    position_max_age_s: int = 900
    alert_ttl_s: int = 600
    time_zone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Candidate:
    volunteer_id: int
    distance_m: float
