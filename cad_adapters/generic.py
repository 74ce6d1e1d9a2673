"""Our own generic JSON incident format, version 1 (``schemas/generic-incident.v1.json``).

The parser enforces the same rules as the JSON Schema by hand: a schema
validator would add a dependency to the hot intake path and still not give us
range checks on NaN (which JSON cannot even carry; Python's decoder accepts it).
A test keeps the two in agreement.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from importlib import resources
from typing import Any, Final

from cad_adapters._time import DATE_PATTERN, OFFSET_PATTERN, in_supported_range
from cad_adapters.errors import CadParseError
from cad_adapters.models import (
    Address,
    CallType,
    Coordinates,
    IncidentReport,
    IncidentStatus,
    PlaceType,
    UnitReport,
    UnitStatus,
)
from cad_adapters.text import first_unstorable, may_hold_unstorable

SOURCE: Final = "generic"
# RFC 3339 (seconds and offset optional) in the supported years: the same pattern the
# schema states, built once for both. Stricter than datetime.fromisoformat, which also takes
# bare dates and spaces.
DATETIME_PATTERN: Final = (
    f"^{DATE_PATTERN}T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{{1,6}})?)?"
    f"{OFFSET_PATTERN}?$"
)
_DATETIME_RE: Final = re.compile(DATETIME_PATTERN)
MAX_DEPTH: Final = 16
_TOP_LEVEL: Final = frozenset(
    {
        "schema_version",
        "incident_id",
        "local_incident_number",
        "version",
        "updated_at",
        "received_at",
        "dispatched_at",
        "closed_at",
        "status",
        "is_test",
        "is_cardiac_arrest",
        "call_type",
        "location",
        "address",
        "place_type",
        "place_detail",
        "units",
    }
)


def schema() -> dict[str, Any]:
    """The JSON Schema this parser implements (also served by the HTTP API)."""
    text = resources.files("cad_adapters.schemas").joinpath("generic-incident.v1.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _reject_constant(name: str) -> Any:
    raise CadParseError("", f"{name} is not a number JSON allows")


def _depth(value: Any, limit: int) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def decode_json(body: bytes) -> Any:
    """Decode a JSON body strictly: UTF-8, no NaN/Infinity, bounded nesting, storable text.

    A string holding NUL or an unpaired surrogate raises with that field's pointer.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise CadParseError("", "body is not UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise CadParseError("", f"document nests deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise CadParseError(
            "", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:  # e.g. integers with thousands of digits
        raise CadParseError("", f"malformed JSON: {exc}") from None
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise CadParseError("", f"document nests deeper than {MAX_DEPTH} levels")
    if may_hold_unstorable(text):
        found = first_unstorable(value)
        if found is not None:
            raise CadParseError(*found)
    return value


class _Fields:
    """Typed access to one JSON object, every error naming its JSON Pointer."""

    def __init__(self, data: Any, pointer: str, allowed: frozenset[str]) -> None:
        if not isinstance(data, dict):
            raise CadParseError(pointer, "must be an object")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise CadParseError(f"{pointer}/{unknown[0]}", "is not a known field")
        self.data: Mapping[str, Any] = data
        self.pointer = pointer

    def at(self, name: str) -> str:
        return f"{self.pointer}/{name}"

    def text(self, name: str, *, required: bool = False, max_len: int = 200) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise CadParseError(self.at(name), "is required")
            return None
        if not isinstance(value, str):
            raise CadParseError(self.at(name), "must be a string")
        if required and not value.strip():
            raise CadParseError(self.at(name), "must not be empty")
        if len(value) > max_len:
            raise CadParseError(self.at(name), f"must be at most {max_len} characters")
        return value

    def number(self, name: str, low: float, high: float, *, required: bool = False) -> float | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise CadParseError(self.at(name), "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CadParseError(self.at(name), "must be a number")
        number = float(value)
        if not math.isfinite(number) or not low <= number <= high:
            raise CadParseError(self.at(name), f"must be between {low:g} and {high:g}")
        return number

    def boolean(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise CadParseError(self.at(name), "must be true or false")
        return value

    def time(self, name: str, default_tz: tzinfo, *, required: bool = False) -> datetime | None:
        value = self.text(name, required=required, max_len=64)
        if value is None:
            return None
        try:
            if not _DATETIME_RE.match(value):
                raise ValueError(value)
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise CadParseError(self.at(name), "must be an RFC 3339 date-time") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=default_tz)
        return in_supported_range(stamp, pointer=self.at(name))

    def choice(self, name: str, choices: type[Any], default: Any) -> Any:
        value = self.data.get(name)
        if value is None:
            return default
        try:
            return choices(value)
        except ValueError:
            allowed = ", ".join(c.value for c in choices)
            raise CadParseError(self.at(name), f"must be one of {allowed}") from None


def _location(data: Any) -> Coordinates | None:
    """The incident's position; None when absent or the (0, 0) "unknown" placeholder."""
    if data is None:
        return None
    fields = _Fields(data, "/location", frozenset({"lat", "lon", "uncertainty_m"}))
    lat = fields.number("lat", -90, 90, required=True)
    lon = fields.number("lon", -180, 180, required=True)
    assert lat is not None
    assert lon is not None
    uncertainty = fields.number("uncertainty_m", 0, 100_000)
    if lat == 0 and lon == 0:
        return None
    return Coordinates(lat, lon, uncertainty)


def _units(data: Any, default_tz: tzinfo) -> tuple[UnitReport, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise CadParseError("/units", "must be an array")
    if len(data) > 100:
        raise CadParseError("/units", "must hold at most 100 units")
    units = []
    for i, item in enumerate(data):
        fields = _Fields(item, f"/units/{i}", frozenset({"unit_id", "status", "at"}))
        unit_id = fields.text("unit_id", required=True, max_len=64)
        assert unit_id is not None
        raw_status = fields.text("status", required=True, max_len=32)
        status = fields.choice("status", UnitStatus, UnitStatus.UNKNOWN)
        units.append(UnitReport(unit_id, status, raw_status, fields.time("at", default_tz)))
    return tuple(units)


def parse_generic(body: bytes | Mapping[str, Any], *, default_tz: tzinfo = UTC) -> IncidentReport:
    """Parse one generic-JSON incident snapshot; raises :class:`CadParseError` naming the field."""
    data = decode_json(body) if isinstance(body, bytes) else body
    fields = _Fields(data, "", _TOP_LEVEL)
    schema_version = data.get("schema_version", 1)
    if schema_version != 1 or isinstance(schema_version, bool):
        raise CadParseError("/schema_version", "only version 1 is supported")
    incident_id = fields.text("incident_id", required=True, max_len=128)
    assert incident_id is not None
    if not all(0x21 <= ord(c) <= 0x7E for c in incident_id):
        raise CadParseError("/incident_id", "must be printable ASCII without spaces")

    call_fields = _Fields(data.get("call_type"), "/call_type", frozenset({"code", "text"}))
    code = call_fields.text("code", required=True, max_len=64)
    assert code is not None

    version = data.get("version")
    if version is not None:
        # 7 and 7.0 are the same JSON number (and the same "integer" to JSON Schema).
        if (
            isinstance(version, bool)
            or not isinstance(version, int | float)
            or not float(version).is_integer()
            or not 0 <= version < 2**53
        ):
            raise CadParseError("/version", "must be a non-negative integer")
        version = int(version)

    received_at = fields.time("received_at", default_tz, required=True)
    assert received_at is not None
    address_text = fields.text("address", max_len=500)
    return IncidentReport(
        source=SOURCE,
        source_incident_id=incident_id,
        local_incident_number=fields.text("local_incident_number", max_len=64),
        call_type=CallType(code=code, text=call_fields.text("text")),
        is_cardiac_arrest=fields.boolean("is_cardiac_arrest"),
        location=_location(data.get("location")),
        address=Address(text=address_text) if address_text else None,
        place_type=fields.choice("place_type", PlaceType, PlaceType.UNKNOWN),
        place_detail=fields.text("place_detail"),
        received_at=received_at,
        dispatched_at=fields.time("dispatched_at", default_tz),
        closed_at=fields.time("closed_at", default_tz),
        status=fields.choice("status", IncidentStatus, IncidentStatus.ACTIVE),
        is_test=bool(fields.boolean("is_test")),
        source_version=version,
        source_updated_at=fields.time("updated_at", default_tz),
        units=_units(data.get("units"), default_tz),
    )
