"""Values the service passes around; frozen, no behaviour that needs I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from cad_adapters.call_types import DEFAULT as DEFAULT_CALL_TYPE_RULES
from cad_adapters.call_types import CallTypeRules
from dispatch.domain.policy import AlertPolicy, Wave


@dataclass(frozen=True, slots=True)
class PlaceRules:
    """Words that make an incident's place residential or public when the CAD does not say.

    Matched as whole words, case-insensitively, against the place detail and the
    address text. Residential wins when both match: a lay responder must never be
    sent into a home by mistake.
    """

    residential: frozenset[str] = frozenset()
    public: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class AgencyPolicy:
    """The agency's alerting parameters (defaults: ``shared/notes/domain.md`` §3–4).

    Who is alerted, how far and how many, is the versioned :class:`AlertPolicy` alone.
    """

    agency_id: UUID
    position_max_age_s: int = 900
    alert_ttl_s: int = 600
    time_zone: str = "UTC"
    call_types: CallTypeRules = DEFAULT_CALL_TYPE_RULES
    places: PlaceRules = field(default_factory=PlaceRules)
    require_signature: bool = False
    intake_rate_per_min: int = 600
    max_incident_age_s: int = 1800
    """A new incident received longer ago than this is stored and never alerts: half an
    hour after the call a volunteer cannot change the outcome (domain.md §1), and an old
    item replayed by a feed must not send anyone running."""
    max_clock_skew_s: int = 300
    """How far ahead of our clock a received time may be before the CAD's clock is wrong."""
    max_location_uncertainty_m: float = 250.0
    """A location vaguer than this alerts nobody: at 250 m a responder can still search the
    spot, while a polygon centroid 20 km wide would send them to the wrong street."""
    cap_signing_cert: str | None = None
    """PEM certificate whose key must have signed every CAP alert; None: not checked."""
    push_ack_timeout_s: int = 15
    """The delivery chain's wait for a device receipt before the next channel."""
    next_channel_after_s: int = 45
    """The delivery chain's wait for an answer after a text (or call) before the next."""
    stored_alert_policy: AlertPolicy | None = None
    has_aeds: bool = False
    """Whether the agency has any AED registered (no role planning without one)."""

    @property
    def alert_policy(self) -> AlertPolicy:
        """The newest stored policy (every agency is created with one; the defaults else)."""
        if self.stored_alert_policy is not None:
            return self.stored_alert_policy
        return AlertPolicy()


def first_alert_policy(radius_m: float = 500.0, limit: int = 7) -> AlertPolicy:
    """An agency's first policy: the default waves around its first radius and count.

    Migration 0014 writes the same for agencies that had only the two columns.
    """
    second = Wave(60, max(1300.0, radius_m), max(15, limit))
    return AlertPolicy(waves=(Wave(0, radius_m, limit), second), max_alerted=max(30, second.live))
