"""Validation of what an agency's administrators may set on a volunteer (API and CLI)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatch.domain.agency_settings import SettingsError
from dispatch.domain.eligibility import Tier

CERTIFICATE_VALIDITY: Final = timedelta(days=730)
"""BLS/CPR certificates are usually valid two years (AHA, ERC): the default expiry when an
administrator registers a volunteer without giving the certificate's own date."""

FIELDS: Final = (
    "tier",
    "certified_until",
    "verified",
    "available",
    "on_duty",
    "quiet_from",
    "quiet_until",
    "time_zone",
    "daily_budget",
    "is_tester",
)


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body[name]
    if not isinstance(value, bool):
        raise SettingsError(f"/{name}", "must be true or false")
    return value


def _time_of_day(value: Any, pointer: str) -> time | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) != 5:
            raise ValueError(value)
        return time.fromisoformat(value)
    except ValueError:
        raise SettingsError(pointer, "must be a local time like 22:30, or null") from None


def validate_volunteer_settings(data: Any, *, allowed: tuple[str, ...] = FIELDS) -> dict[str, Any]:
    """Column name → value for the named fields; unknown or malformed fields are refused."""
    if not isinstance(data, dict):
        raise SettingsError("", "must be an object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise SettingsError(f"/{unknown[0]}", "is not a known field")
    out: dict[str, Any] = {}
    if "tier" in data:
        try:
            out["tier"] = Tier(data["tier"]).value
        except ValueError:
            raise SettingsError("/tier", "must be lay or professional") from None
    if "certified_until" in data:
        raw = data["certified_until"]
        try:
            stamp = datetime.fromisoformat(raw) if isinstance(raw, str) and len(raw) <= 40 else None
        except ValueError:
            stamp = None
        if stamp is None or stamp.tzinfo is None:
            raise SettingsError("/certified_until", "must be a date-time with an offset")
        out["certified_until"] = stamp.astimezone(UTC)
    for name in ("verified", "available", "on_duty", "is_tester"):
        if name in data:
            out[name] = _bool(data, name)
    for name in ("quiet_from", "quiet_until"):
        if name in data:
            out[name] = _time_of_day(data[name], f"/{name}")
    if ("quiet_from" in out) != ("quiet_until" in out):
        missing = "quiet_until" if "quiet_from" in out else "quiet_from"
        raise SettingsError(f"/{missing}", "quiet hours need both ends (or both null)")
    if "time_zone" in data:
        try:
            if not isinstance(data["time_zone"], str):
                raise ValueError(data["time_zone"])
            ZoneInfo(data["time_zone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError("/time_zone", "must be an IANA time zone") from None
        out["time_zone"] = data["time_zone"]
    if "daily_budget" in data:
        budget = data["daily_budget"]
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int) or not 0 <= budget <= 100
        ):
            raise SettingsError("/daily_budget", "must be an integer from 0 to 100, or null")
        out["daily_budget"] = budget
    return out
