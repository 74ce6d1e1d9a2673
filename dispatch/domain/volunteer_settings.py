"""Validation of what an agency's administrators may set on a volunteer (API and CLI)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Final

from cad_adapters import CadParseError, in_supported_range
from dispatch.domain.agency_settings import SettingsError
from dispatch.domain.eligibility import Tier
from dispatch.domain.time_zones import time_zone

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


# RFC 5646 §2.1 "langtag" (well-formed, not checked against the registry); grandfathered
# irregular tags are left out on purpose: no phone sends them.
LANGUAGE_TAG: Final = re.compile(
    r"^[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}"  # language, extlang
    r"(?:-[A-Za-z]{4})?"  # script
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"  # region
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"  # variants
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"  # extensions
    r"(?:-x(?:-[A-Za-z0-9]{1,8})+)?$",  # private use
    re.ASCII,
)
PHONE_E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$", re.ASCII)
IDENTITY_FIELDS: Final = ("display_name", "phone_e164", "language")
MAX_NAME: Final = 200
MAX_LANGUAGE: Final = 35


@dataclass(frozen=True, slots=True)
class Identity:
    display_name: str
    phone_e164: str | None
    language: str


def _printable_name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= MAX_NAME:
        raise SettingsError("/display_name", f"must be a string of 1 to {MAX_NAME} characters")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise SettingsError("/display_name", "must not contain control characters")
    return value.strip()


def validate_identity(data: dict[str, Any]) -> Identity:
    """Name, phone and language of a new volunteer (API and CLI share it)."""
    phone = data.get("phone_e164")
    if phone is not None and (not isinstance(phone, str) or not PHONE_E164.match(phone)):
        raise SettingsError("/phone_e164", "must be an E.164 number like +31612345678")
    language = data.get("language", "en")
    if (
        not isinstance(language, str)
        or len(language) > MAX_LANGUAGE
        or not LANGUAGE_TAG.match(language)
    ):
        raise SettingsError("/language", "must be a BCP 47 language tag like en or nl-NL")
    return Identity(_printable_name(data.get("display_name")), phone, language)


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
        try:
            out["certified_until"] = in_supported_range(stamp, pointer="/certified_until")
        except CadParseError as exc:
            raise SettingsError(exc.pointer, exc.detail) from None
    for name in ("verified", "available", "on_duty", "is_tester"):
        if name in data:
            out[name] = _bool(data, name)
    for name in ("quiet_from", "quiet_until"):
        if name in data:
            out[name] = _time_of_day(data[name], f"/{name}")
    if ("quiet_from" in out) != ("quiet_until" in out):
        missing = "quiet_until" if "quiet_from" in out else "quiet_from"
        raise SettingsError(f"/{missing}", "quiet hours need both ends (or both null)")
    if "quiet_from" in out and (out["quiet_from"] is None) != (out["quiet_until"] is None):
        unset = "quiet_from" if out["quiet_from"] is None else "quiet_until"
        raise SettingsError(f"/{unset}", "quiet hours need both ends set (or both null)")
    if "time_zone" in data:
        out["time_zone"] = time_zone(data["time_zone"]).key
    if "daily_budget" in data:
        budget = data["daily_budget"]
        if budget is not None and (
            isinstance(budget, bool)
            or not isinstance(budget, int | float)
            or not float(budget).is_integer()
            or not 0 <= budget <= 100
        ):
            raise SettingsError("/daily_budget", "must be an integer from 0 to 100, or null")
        out["daily_budget"] = None if budget is None else int(budget)
    return out


PROFILE_SETTINGS: Final = ("on_duty", "quiet_from", "quiet_until", "time_zone", "daily_budget")
"""Settings a volunteer changes about themselves (``PATCH /v1/me``); the rest are the agency's."""


@dataclass(frozen=True, slots=True)
class ProfileChange:
    columns: dict[str, Any]
    preferred: str | None = None
    refused: tuple[str, ...] | None = None
    """None: channel preferences are left as they are."""


def validate_profile_change(data: dict[str, Any]) -> ProfileChange:
    """What a volunteer may change about themselves, checked across fields."""
    columns = validate_volunteer_settings(
        {k: v for k, v in data.items() if k in PROFILE_SETTINGS}, allowed=PROFILE_SETTINGS
    )
    if "display_name" in data:
        columns["display_name"] = _printable_name(data["display_name"])
    if "language" in data:
        language = data["language"]
        if not isinstance(language, str) or not LANGUAGE_TAG.match(language):
            raise SettingsError("/language", "must be a BCP 47 language tag like en or nl-NL")
        columns["language"] = language
    if "tier_requested" in data:
        wanted = data["tier_requested"]
        if wanted is not None and wanted not in (Tier.LAY.value, Tier.PROFESSIONAL.value):
            raise SettingsError("/tier_requested", "must be lay, professional or null")
        columns["tier_requested"] = wanted
    channels = data.get("channels")
    if channels is None:
        return ProfileChange(columns)
    preferred = channels.get("preferred")
    refused = tuple(sorted(set(channels.get("refused", ()))))
    if preferred is not None and preferred in refused:
        raise SettingsError("/channels/preferred", "cannot be a refused channel")
    return ProfileChange(columns, preferred, refused)
