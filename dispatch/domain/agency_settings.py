"""Validation of an agency's editable settings (admin API and CLI share it)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from cad_adapters.cap_signature import load_certificate
from dispatch.domain.field_error import FieldError
from dispatch.domain.time_zones import time_zone

FIELDS: Final = (
    "position_max_age_s",
    "alert_ttl_s",
    "time_zone",
    "call_type_rules",
    "place_rules",
    "require_signature",
    "intake_rate_per_min",
    "max_incident_age_s",
    "max_clock_skew_s",
    "max_location_uncertainty_m",
    "cap_signing_cert",
    "map_tile_url",
)
"""The agency settings an administrator may change (each is an ``agencies`` column)."""
MOVED_TO_POLICY: Final = ("alert_radius_m", "alert_limit")
"""Radius and count live in the versioned alert policy only (its first wave)."""
_RULE_LISTS: Final = ("codes", "patterns", "text_patterns", "excluded_codes", "excluded_patterns")
_PLACE_LISTS: Final = ("residential", "public")
_MAX_ITEMS: Final = 200


class SettingsError(FieldError):
    """Agency or volunteer settings refused at a field."""


def _strings(value: Any, pointer: str) -> list[str]:
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise SettingsError(pointer, f"must be a list of at most {_MAX_ITEMS} strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not 1 <= len(item) <= 100:
            raise SettingsError(f"{pointer}/{i}", "must be a string of 1 to 100 characters")
    return list(value)


def _object(value: Any, pointer: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SettingsError(pointer, "must be an object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise SettingsError(f"{pointer}/{unknown[0]}", "is not a known field")
    return value


def _number(value: Any, pointer: str, low: float, high: float, *, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(pointer, "must be a number")
    # JSON does not tell 5 from 5.0 (nor does JSON Schema's "integer"): both are whole.
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise SettingsError(pointer, "must be an integer")
    if not math.isfinite(value) or not low <= value <= high:
        raise SettingsError(pointer, f"must be between {low:g} and {high:g}")
    return value


def _signing_cert(value: Any) -> str | None:
    """A PEM certificate to pin for CAP signatures, or None to stop checking them."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SettingsError("/cap_signing_cert", "must be a PEM certificate or null")
    try:
        load_certificate(value)
    except ValueError as exc:
        raise SettingsError("/cap_signing_cert", str(exc)) from None
    return value.strip() + "\n"


# Scheme, host (and port), then a path holding {z}, {x} and {y}; nothing that could break
# out of a Content-Security-Policy source or an attribute.
_TILE_URL: Final = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/[A-Za-z0-9._~/{}?=&%\-]*$")


def _tile_url(value: Any) -> str | None:
    """A map tile URL template for the console's maps, or None for a plain background."""
    if value is None:
        return None
    ok = isinstance(value, str) and len(value) <= 500 and _TILE_URL.match(value) is not None
    if not ok or not all(f"{{{p}}}" in value for p in "zxy"):
        raise SettingsError(
            "/map_tile_url",
            "must be an http(s) URL template like https://tiles.example.org/{z}/{x}/{y}.png",
        )
    return str(value)


def tile_origin(template: str) -> str:
    """The origin a tile URL template loads from (what the console's policy must allow)."""
    parts = urlsplit(template)
    return f"{parts.scheme}://{parts.netloc}"


def validate_settings(data: Any) -> dict[str, Any]:
    """Check a partial settings document; returns column name → value to store.

    Accepted fields: ``position_max_age_s``,
    ``alert_ttl_s``, ``time_zone``, ``call_type_rules``, ``place_rules``,
    ``require_signature``, ``intake_rate_per_min``, ``max_incident_age_s``,
    ``max_clock_skew_s``, ``max_location_uncertainty_m``, ``cap_signing_cert`` (a PEM
    certificate CAP alerts must be signed with, or null), ``map_tile_url`` (the console's
    map background, or null).
    """
    if isinstance(data, dict):
        for name in MOVED_TO_POLICY:
            if name in data:
                raise SettingsError(
                    f"/{name}", "set in the alert policy now: its first wave's radius_m and live"
                )
    body = _object(data, "", FIELDS)
    out: dict[str, Any] = {}
    for name, low, high in (
        ("position_max_age_s", 30, 86_400),
        ("alert_ttl_s", 30, 7_200),
        ("intake_rate_per_min", 1, 100_000),
        ("max_incident_age_s", 60, 86_400),
        ("max_clock_skew_s", 0, 3_600),
    ):
        if name in body:
            out[name] = int(_number(body[name], f"/{name}", low, high, integer=True))
    if "max_location_uncertainty_m" in body:
        out["max_location_uncertainty_m"] = float(
            _number(
                body["max_location_uncertainty_m"],
                "/max_location_uncertainty_m",
                10,
                100_000,
                integer=False,
            )
        )
    if "time_zone" in body:
        out["time_zone"] = time_zone(body["time_zone"]).key
    if "require_signature" in body:
        if not isinstance(body["require_signature"], bool):
            raise SettingsError("/require_signature", "must be true or false")
        out["require_signature"] = body["require_signature"]
    if "call_type_rules" in body:
        rules = _object(body["call_type_rules"], "/call_type_rules", (*_RULE_LISTS, "mpds"))
        stored: dict[str, Any] = {
            k: _strings(rules[k], f"/call_type_rules/{k}") for k in _RULE_LISTS if k in rules
        }
        if "mpds" in rules:
            if not isinstance(rules["mpds"], bool):
                raise SettingsError("/call_type_rules/mpds", "must be true or false")
            stored["mpds"] = rules["mpds"]
        out["call_type_rules"] = stored
    if "place_rules" in body:
        places = _object(body["place_rules"], "/place_rules", _PLACE_LISTS)
        out["place_rules"] = {
            k: _strings(places[k], f"/place_rules/{k}") for k in _PLACE_LISTS if k in places
        }
    if "cap_signing_cert" in body:
        out["cap_signing_cert"] = _signing_cert(body["cap_signing_cert"])
    if "map_tile_url" in body:
        out["map_tile_url"] = _tile_url(body["map_tile_url"])
    if not out:
        raise SettingsError("", "name at least one setting to change")
    return out


DELIVERY_FIELDS: Final = ("push_ack_timeout_s", "next_channel_after_s", "critical_alerts")
_OLD_NEXT_CHANNEL: Final = "answer_timeout_s"
"""The first name of ``next_channel_after_s``: still read, never written."""


def validate_delivery_settings(data: Any) -> dict[str, Any]:
    """Check a partial delivery-settings document; returns API name → value.

    ``push_ack_timeout_s``: no device receipt this long after a push starts the next channel;
    ``next_channel_after_s``: no answer this long after a text (or call) starts the next
    (the call after an unanswered text); ``critical_alerts``: iOS critical alerts.
    """
    if isinstance(data, dict) and _OLD_NEXT_CHANNEL in data:
        if "next_channel_after_s" in data:
            raise SettingsError(
                f"/{_OLD_NEXT_CHANNEL}", "is the old name of next_channel_after_s: give one"
            )
        data = {
            **{k: v for k, v in data.items() if k != _OLD_NEXT_CHANNEL},
            "next_channel_after_s": data[_OLD_NEXT_CHANNEL],
        }
    body = _object(data, "", DELIVERY_FIELDS)
    out: dict[str, Any] = {}
    for name in ("push_ack_timeout_s", "next_channel_after_s"):
        if name in body:
            out[name] = int(_number(body[name], f"/{name}", 1, 3600, integer=True))
    if "critical_alerts" in body:
        if not isinstance(body["critical_alerts"], bool):
            raise SettingsError("/critical_alerts", "must be true or false")
        out["critical_alerts"] = body["critical_alerts"]
    return out
