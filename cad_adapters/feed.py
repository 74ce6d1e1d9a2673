"""Polled JSON feeds: a CAD publishes its active incidents as a JSON list; we map fields.

The mapping is configuration, not code, because every CAD names its fields its
own way. Each mapped field is a dotted path into one list item (``"geo.lat"``,
``"units.0.id"``). A feed is a full snapshot: an incident missing from the next
poll has ended (the caller closes it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any, Final

from cad_adapters._time import parse_timestamp
from cad_adapters.errors import CadParseError, UnknownLocation
from cad_adapters.generic import decode_json
from cad_adapters.models import Address, CallType, Coordinates, IncidentReport, PlaceType
from cad_adapters.pidf import checked_coordinates

MAX_ITEMS: Final = 5000
_REQUIRED: Final = ("id", "call_type_code", "received_at")
_OPTIONAL: Final = (
    "call_type_text",
    "lat",
    "lon",
    "address",
    "updated_at",
    "place_type",
    "is_cardiac_arrest",
    "is_test",
)


@dataclass(frozen=True, slots=True)
class FeedMapping:
    """Where each field lives in a feed item. ``items`` is the path to the list ("" = root)."""

    fields: Mapping[str, str]
    items: str = ""

    @classmethod
    def from_config(cls, config: Any) -> FeedMapping:
        """Validate a stored mapping: ``{"items": "incidents", "fields": {"id": "ID", ...}}``."""
        if not isinstance(config, Mapping):
            raise CadParseError("/mapping", "must be an object")
        items = config.get("items", "")
        fields = config.get("fields")
        if not isinstance(items, str):
            raise CadParseError("/mapping/items", "must be a dotted path string")
        if not isinstance(fields, Mapping):
            raise CadParseError("/mapping/fields", "must be an object of field → path")
        for name in _REQUIRED:
            if not isinstance(fields.get(name), str):
                raise CadParseError(f"/mapping/fields/{name}", "is required (a dotted path)")
        for name, path in fields.items():
            if name not in _REQUIRED + _OPTIONAL:
                raise CadParseError(f"/mapping/fields/{name}", "is not a mappable field")
            if not isinstance(path, str) or not path:
                raise CadParseError(f"/mapping/fields/{name}", "must be a dotted path")
        return cls(fields=dict(fields), items=items)


@dataclass(frozen=True, slots=True)
class FeedSnapshot:
    reports: list[IncidentReport]
    rejected: list[CadParseError] = field(default_factory=list)
    """Items refused one by one; the rest of the feed still counts."""


def _get(item: Any, path: str) -> Any:
    value = item
    for part in path.split(".") if path else ():
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _text(value: Any, pointer: str, max_len: int = 200) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CadParseError(pointer, "must be a string or number")
    text = str(value).strip()
    if len(text) > max_len:
        raise CadParseError(pointer, f"must be at most {max_len} characters")
    return text or None


def _coordinate(value: Any, pointer: str) -> float | None:
    # Feeds often send numbers as strings ("52.37"); both are taken, both are checked.
    if value is None or value == "":
        return None
    try:
        number = float(value) if isinstance(value, str | int | float) else math.nan
    except ValueError:
        raise CadParseError(pointer, "must be a decimal number") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise CadParseError(pointer, "must be a finite number")
    return number


def _flag(value: Any, pointer: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "false", "no", "0"}:
        return value.strip().lower() in {"true", "yes", "1"}
    raise CadParseError(pointer, "must be true or false")


def _item(item: Any, index: int, mapping: FeedMapping, source: str, tz: tzinfo) -> IncidentReport:
    here = f"/{mapping.items.replace('.', '/')}/{index}" if mapping.items else f"/{index}"
    if not isinstance(item, Mapping):
        raise CadParseError(here, "must be an object")
    f = mapping.fields

    def value(name: str) -> Any:
        return _get(item, f[name]) if name in f else None

    def at(name: str) -> str:
        return f"{here}/{f[name].replace('.', '/')}" if name in f else here

    incident_id = _text(value("id"), at("id"), 128)
    code = _text(value("call_type_code"), at("call_type_code"), 64)
    if incident_id is None:
        raise CadParseError(at("id"), "is required")
    if code is None:
        raise CadParseError(at("call_type_code"), "is required")
    received_raw = _text(value("received_at"), at("received_at"), 64)
    if received_raw is None:
        raise CadParseError(at("received_at"), "is required")
    received_at = parse_timestamp(received_raw, pointer=at("received_at"), default_tz=tz)
    updated_raw = _text(value("updated_at"), at("updated_at"), 64)
    lat, lon = _coordinate(value("lat"), at("lat")), _coordinate(value("lon"), at("lon"))
    location: Coordinates | None = None
    if lat is not None and lon is not None:
        try:
            location = checked_coordinates(lat, lon, pointer=at("lat"))
        except UnknownLocation:
            location = None
    place_raw = _text(value("place_type"), at("place_type"), 32)
    try:
        place = PlaceType(place_raw.lower()) if place_raw else PlaceType.UNKNOWN
    except ValueError:
        place = PlaceType.UNKNOWN
    address = _text(value("address"), at("address"), 500)
    return IncidentReport(
        source=source,
        source_incident_id=incident_id,
        call_type=CallType(code=code, text=_text(value("call_type_text"), at("call_type_text"))),
        received_at=received_at,
        location=location,
        address=Address(text=address) if address else None,
        place_type=place,
        place_detail=place_raw if place is PlaceType.UNKNOWN else None,
        is_cardiac_arrest=_flag(value("is_cardiac_arrest"), at("is_cardiac_arrest")),
        is_test=bool(_flag(value("is_test"), at("is_test"))),
        source_updated_at=(
            parse_timestamp(updated_raw, pointer=at("updated_at"), default_tz=tz)
            if updated_raw
            else None
        ),
    )


def parse_feed(
    body: bytes, mapping: FeedMapping, *, source: str, default_tz: tzinfo = UTC
) -> FeedSnapshot:
    """One poll's answer → reports. A broken document raises; a broken item is set aside."""
    document = decode_json(body)
    items = _get(document, mapping.items)
    if not isinstance(items, list):
        raise CadParseError(f"/{mapping.items.replace('.', '/')}", "must be a list of incidents")
    if len(items) > MAX_ITEMS:
        raise CadParseError("", f"more than {MAX_ITEMS} incidents in one feed")
    reports: list[IncidentReport] = []
    rejected: list[CadParseError] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            report = _item(item, index, mapping, source, default_tz)
        except CadParseError as exc:
            rejected.append(exc)
            continue
        if report.source_incident_id in seen:
            rejected.append(CadParseError(f"/{index}", "repeats an incident id of this feed"))
            continue
        seen.add(report.source_incident_id)
        reports.append(report)
    return FeedSnapshot(reports, rejected)
