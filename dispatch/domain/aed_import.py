"""AED registry imports: CSV and GeoJSON, checked row by row (pure: text in, records out).

CSV columns: ``id, name, lat, lon`` required; ``indoor_description``, ``access_notes``,
``access_hours`` optional. GeoJSON: a FeatureCollection of Points with the same names
as properties. ``access_hours`` is empty or ``24/7`` (always), or JSON such as
``{"mon": [["08:00", "18:00"]], "sat": []}`` (local time; days not listed are closed).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import time
from typing import Any, Final

from dispatch.domain.aeds import DAYS
from dispatch.domain.field_error import FieldError
from dispatch.domain.json_stream import object_members

MAX_ROWS: Final = 50_000


class AedImportError(FieldError):
    """An AED registry file refused at a row and field."""


@dataclass(frozen=True, slots=True)
class AedRecord:
    external_id: str
    name: str
    lat: float
    lon: float
    access_hours: dict[str, list[list[str]]] | None = None
    indoor_description: str | None = None
    access_notes: str | None = None


def parse_hours(raw: Any, pointer: str) -> dict[str, list[list[str]]] | None:
    if raw is None or raw == "" or (isinstance(raw, str) and raw.strip().lower() == "24/7"):
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise AedImportError(pointer, 'must be empty, "24/7" or a JSON object') from None
    if not isinstance(raw, dict) or not set(raw) <= set(DAYS):
        raise AedImportError(pointer, f"must map days ({', '.join(DAYS)}) to [[from, to], ...]")
    hours: dict[str, list[list[str]]] = {}
    for day, spans in raw.items():
        if not isinstance(spans, list):
            raise AedImportError(f"{pointer}/{day}", "must be a list of [from, to]")
        checked = []
        for span in spans:
            try:
                start, end = span
                if time.fromisoformat(start) >= time.fromisoformat(end):
                    raise ValueError(span)
            except (TypeError, ValueError):
                raise AedImportError(
                    f"{pointer}/{day}", 'spans are ["HH:MM", "HH:MM"], from before to'
                ) from None
            checked.append([start, end])
        hours[day] = checked
    return hours


def hours_as_times(
    stored: dict[str, list[list[str]]] | None,
) -> dict[str, list[tuple[time, time]]] | None:
    if stored is None:
        return None
    return {
        d: [(time.fromisoformat(a), time.fromisoformat(b)) for a, b in spans]
        for d, spans in stored.items()
    }


def _text(value: Any, pointer: str, *, required: bool, max_len: int) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise AedImportError(pointer, "is required")
        return None
    if not isinstance(value, str | int):
        raise AedImportError(pointer, "must be text")
    text = str(value).strip()
    if len(text) > max_len:
        raise AedImportError(pointer, f"must be at most {max_len} characters")
    return text


def _coordinate(value: Any, pointer: str, low: float, high: float) -> float:
    try:
        number = (
            float(value)
            if isinstance(value, str | int | float) and not isinstance(value, bool)
            else math.nan
        )
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        raise AedImportError(pointer, f"must be a number between {low:g} and {high:g}")
    return number


def _record(fields: dict[str, Any], pointer: str) -> AedRecord:
    lat = _coordinate(fields.get("lat"), f"{pointer}/lat", -90, 90)
    lon = _coordinate(fields.get("lon"), f"{pointer}/lon", -180, 180)
    if lat == 0 and lon == 0:
        raise AedImportError(f"{pointer}/lat", "0,0 is a placeholder, not an AED's position")
    external_id = _text(fields.get("id"), f"{pointer}/id", required=True, max_len=100)
    name = _text(fields.get("name"), f"{pointer}/name", required=True, max_len=200)
    assert external_id is not None
    assert name is not None
    return AedRecord(
        external_id=external_id,
        name=name,
        lat=lat,
        lon=lon,
        access_hours=parse_hours(fields.get("access_hours"), f"{pointer}/access_hours"),
        indoor_description=_text(
            fields.get("indoor_description"),
            f"{pointer}/indoor_description",
            required=False,
            max_len=500,
        ),
        access_notes=_text(
            fields.get("access_notes"), f"{pointer}/access_notes", required=False, max_len=500
        ),
    )


def iter_csv(text: str) -> Iterator[AedRecord]:
    """The records of a CSV export one by one, so a caller can pace the work."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise AedImportError(f"/line/{line}", "must not contain a NUL character")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"id", "name", "lat", "lon"} - set(reader.fieldnames or ())
    if missing:
        raise AedImportError("/header", f"missing columns: {', '.join(sorted(missing))}")
    seen: set[str] = set()
    for n, row in enumerate(reader, start=2):  # line 1 is the header
        if n - 1 > MAX_ROWS:
            raise AedImportError("", f"more than {MAX_ROWS} rows")
        yield _unique(_record(dict(row), f"/line/{n}"), seen)


def parse_csv(text: str) -> list[AedRecord]:
    return list(iter_csv(text))


def _feature_record(feature: Any, here: str) -> AedRecord:
    geometry = feature.get("geometry") if isinstance(feature, dict) else None
    if not isinstance(geometry, dict) or geometry.get("type") != "Point":
        raise AedImportError(f"{here}/geometry", "must be a Point")
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or len(coordinates) < 2:
        raise AedImportError(f"{here}/geometry/coordinates", "must be [lon, lat]")
    properties = feature.get("properties") or {}
    if not isinstance(properties, dict):
        raise AedImportError(f"{here}/properties", "must be an object")
    # GeoJSON is [lon, lat] (RFC 7946): the opposite of everything else here.
    fields = {**properties, "lon": coordinates[0], "lat": coordinates[1]}
    fields.setdefault("id", feature.get("id"))
    return _record(fields, here)


def parse_geojson(data: Any) -> list[AedRecord]:
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise AedImportError("/type", "must be a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list) or len(features) > MAX_ROWS:
        raise AedImportError("/features", f"must be a list of at most {MAX_ROWS} features")
    seen: set[str] = set()
    return [_unique(_feature_record(f, f"/features/{i}"), seen) for i, f in enumerate(features)]


def iter_geojson(text: str, vet: Callable[[Any, str], None] | None = None) -> Iterator[AedRecord]:
    """The records of a GeoJSON FeatureCollection one by one, decoding one feature at a time.

    Raises ``JsonSyntaxError`` for text that is not JSON. Nothing is stored
    before the whole file is read, so a late ``type`` is still checked in time.
    ``vet(feature, pointer)`` sees each decoded feature first (the API checks it
    against its schema there) and raises to refuse it.
    """
    kind: Any = None
    seen: set[str] = set()
    listed = False
    for name, value in object_members(text, streamed=frozenset({"features"})):
        if name == "type":
            kind = value
        elif name == "features":
            listed = True
            if not isinstance(value, Iterator):
                raise AedImportError("/features", f"must be a list of at most {MAX_ROWS} features")
            for i, feature in enumerate(value):
                if i >= MAX_ROWS:
                    raise AedImportError(
                        "/features", f"must be a list of at most {MAX_ROWS} features"
                    )
                if vet is not None:
                    vet(feature, f"/features/{i}")
                yield _unique(_feature_record(feature, f"/features/{i}"), seen)
    if kind != "FeatureCollection":
        raise AedImportError("/type", "must be a GeoJSON FeatureCollection")
    if not listed:
        # The schema requires the member; an empty list is an import of nothing, its
        # absence a malformed document.
        raise AedImportError("/features", "is required")


def _unique(record: AedRecord, seen: set[str]) -> AedRecord:
    if record.external_id in seen:
        raise AedImportError("/id", f"AED id {record.external_id!r} appears twice")
    seen.add(record.external_id)
    return record
