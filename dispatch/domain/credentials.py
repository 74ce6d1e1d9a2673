"""Proof of training: what a credential grants, when it ends, when to remind.

A credential "expires on" a date, as printed on the card. Eligibility ends at 00:00 of
that day in the agency's time zone: the volunteer is not alerted on the expiry day.
What an approved credential grants is a function of the approved set alone, with the
times in it, so eligibility and tier end by themselves at the right moment without any
job having to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

from dispatch.domain.eligibility import Tier


class CredentialKind(StrEnum):
    CPR_BLS = "cpr_bls"
    """A CPR / BLS(-AED) course certificate: lay tier."""
    PROFESSIONAL_LICENCE = "professional_licence"
    """A health professional's licence (nurse, paramedic, physician): professional tier."""


class CredentialState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


REMINDER_DAYS: Final = (30, 7)
NOTICE_HOUR: Final = time(9, 0)
"""Reminders and the expiry notice go out at 09:00 local time, never in the night."""


def expiry_moment(expires_on: date, tz: ZoneInfo) -> datetime:
    """00:00 on the expiry day in the agency's zone (UTC): eligibility ends then.

    ``tz`` comes from ``time_zones``, which refuses a name it does not know: an expiry
    read in a wrong zone would grant or take hours of eligibility without a sign.
    """
    return datetime.combine(expires_on, time(0), tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Approved:
    kind: CredentialKind
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Standing:
    """What the approved credentials grant, written to the volunteer's row."""

    certified_until: datetime | None
    tier: Tier
    professional_until: datetime | None


def standing(approved: Sequence[Approved]) -> Standing:
    """Alertable until the last approved credential ends; professional until the last
    approved licence ends (then lay, while a CPR certificate still holds)."""
    if not approved:
        return Standing(None, Tier.LAY, None)
    licences = [c.expires_at for c in approved if c.kind is CredentialKind.PROFESSIONAL_LICENCE]
    return Standing(
        certified_until=max(c.expires_at for c in approved),
        tier=Tier.PROFESSIONAL if licences else Tier.LAY,
        professional_until=max(licences) if licences else None,
    )


@dataclass(frozen=True, slots=True)
class PlannedNotice:
    key: str
    """Unique per credential and moment, so a notice is queued once however often planned."""
    at: datetime
    days_before: int
    """0 for the notice on the expiry day itself."""


def reminder_plan(
    credential_id: int, expires_on: date, tz: ZoneInfo, now: datetime
) -> list[PlannedNotice]:
    """Reminders 30 and 7 days before the expiry day and the notice on the day, all at
    09:00 local time; moments already past are left out."""
    plan = []
    for days in (*REMINDER_DAYS, 0):
        at = datetime.combine(expires_on - timedelta(days=days), NOTICE_HOUR, tzinfo=tz)
        if at.astimezone(UTC) > now:
            name = f"{days}d" if days else "expired"
            plan.append(
                PlannedNotice(f"credential:{credential_id}:{name}", at.astimezone(UTC), days)
            )
    return plan


def superseded(expires_on: date, later_approved: Sequence[date]) -> bool:
    """Whether a reminder about a credential is moot: one of the same kind that expires
    later has been approved since (a renewal)."""
    return any(other > expires_on for other in later_approved)
