"""The generic JSON format: the parser and the published JSON Schema agree."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cad_adapters import CadParseError, IncidentStatus, PlaceType, UnitStatus
from cad_adapters.generic import MAX_DEPTH, decode_json, parse_generic, schema

VALIDATOR = jsonschema.Draft202012Validator(
    schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def _doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "incident_id": "CAD-2026-000123",
        "call_type": {"code": "09-E-01", "text": "Cardiac arrest"},
        "received_at": "2026-11-26T14:03:00+01:00",
        "location": {"lat": 52.3731, "lon": 4.8926, "uncertainty_m": 15},
    }
    doc.update(overrides)
    return doc


def test_schema_is_valid_draft_2020_12() -> None:
    """The shipped schema is itself a valid JSON Schema."""
    jsonschema.Draft202012Validator.check_schema(schema())


def test_full_document_parses_to_the_normalized_report() -> None:
    """Every field lands where the normalized model says, times in aware UTC."""
    doc = _doc(
        local_incident_number="123",
        version=3,
        updated_at="2026-11-26T13:05:00Z",
        dispatched_at="2026-11-26T13:04:00Z",
        status="active",
        is_test=False,
        is_cardiac_arrest=True,
        address="Dam 1, Amsterdam",
        place_type="public",
        place_detail="square",
        units=[{"unit_id": "A-12", "status": "en_route", "at": "2026-11-26T13:04:30Z"}],
    )
    VALIDATOR.validate(doc)
    report = parse_generic(json.dumps(doc).encode())
    assert report.source == "generic"
    assert report.source_incident_id == "CAD-2026-000123"
    assert report.received_at == datetime(2026, 11, 26, 13, 3, tzinfo=UTC)
    assert report.location is not None
    assert (report.location.lat, report.location.lon, report.location.uncertainty_m) == (
        52.3731,
        4.8926,
        15,
    )
    assert report.place_type is PlaceType.PUBLIC
    assert report.status is IncidentStatus.ACTIVE
    assert report.is_cardiac_arrest is True
    assert report.units[0].status is UnitStatus.EN_ROUTE
    assert report.version_key() == (datetime(2026, 11, 26, 13, 5, tzinfo=UTC), 3)


def test_naive_times_are_read_in_the_agency_time_zone() -> None:
    """A stamp without offset is local time of the agency, not UTC."""
    cet = timezone(timedelta(hours=1))
    report = parse_generic(_doc(received_at="2026-11-26T14:03:00"), default_tz=cet)
    assert report.received_at == datetime(2026, 11, 26, 13, 3, tzinfo=UTC)


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("missing id", {k: v for k, v in _doc().items() if k != "incident_id"}, "/incident_id"),
    ("location without lon", _doc(location={"lat": 1}), "/location/lon"),
    ("empty id", _doc(incident_id=""), "/incident_id"),
    ("space in id", _doc(incident_id="a b"), "/incident_id"),
    ("id too long", _doc(incident_id="x" * 129), "/incident_id"),
    ("lat too high", _doc(location={"lat": 90.5, "lon": 0.1}), "/location/lat"),
    ("lon too low", _doc(location={"lat": 1, "lon": -180.5}), "/location/lon"),
    ("lat string", _doc(location={"lat": "1", "lon": 2}), "/location/lat"),
    ("extra location field", _doc(location={"lat": 1, "lon": 2, "alt": 3}), "/location/alt"),
    ("negative version", _doc(version=-1), "/version"),
    ("float version", _doc(version=1.5), "/version"),
    ("bool version", _doc(version=True), "/version"),
    ("unknown status", _doc(status="open"), "/status"),
    ("unknown place", _doc(place_type="home"), "/place_type"),
    ("flag as string", _doc(is_test="no"), "/is_test"),
    ("call type without code", _doc(call_type={"text": "x"}), "/call_type/code"),
    ("unit without id", _doc(units=[{"status": "on_scene"}]), "/units/0/unit_id"),
    ("unit bad status", _doc(units=[{"unit_id": "A", "status": "x"}]), "/units/0/status"),
    ("extra top-level field", _doc(priority=1), "/priority"),
    ("schema version 2", _doc(schema_version=2), "/schema_version"),
    ("bad time", _doc(received_at="26/11/2026"), "/received_at"),
    ("date without time", _doc(received_at="2026-11-26"), "/received_at"),
    ("space separator", _doc(received_at="2026-11-26 10:00:00Z"), "/received_at"),
]


@pytest.mark.parametrize(("doc", "pointer"), [pytest.param(d, p, id=n) for n, d, p in INVALID])
def test_parser_and_schema_reject_the_same_documents(doc: dict[str, Any], pointer: str) -> None:
    """What the schema forbids the parser refuses, naming the same field."""
    assert not VALIDATOR.is_valid(doc)
    with pytest.raises(CadParseError) as raised:
        parse_generic(doc)
    assert raised.value.pointer == pointer


@pytest.mark.parametrize(
    "body",
    [b"{", b"NaN", b'{"a": Infinity}', b'{"a": -Infinity}', b"\xff\xfe", b"[" * 10000],
)
def test_decoder_refuses_what_json_cannot_carry(body: bytes) -> None:
    """Broken JSON, NaN/Infinity, bad UTF-8 and absurd nesting fail with CadParseError."""
    with pytest.raises(CadParseError):
        decode_json(body)


def test_nesting_limit_is_exact() -> None:
    """Documents up to MAX_DEPTH levels decode; one more level is refused."""
    ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    decode_json(ok)
    with pytest.raises(CadParseError):
        decode_json(b"[" + ok + b"]")


@given(
    lat=st.floats(allow_nan=True, allow_infinity=True),
    lon=st.floats(allow_nan=True, allow_infinity=True),
)
def test_coordinates_outside_the_globe_never_parse(lat: float, lon: float) -> None:
    """In range is accepted, (0, 0) means unknown, anything else is refused naming the field."""
    doc = _doc(location={"lat": lat, "lon": lon})
    in_range = -90 <= lat <= 90 and -180 <= lon <= 180
    if in_range and lat == 0 and lon == 0:
        assert parse_generic(doc).location is None
        return
    if not in_range:
        with pytest.raises(CadParseError) as raised:
            parse_generic(doc)
        assert raised.value.pointer.startswith("/location")
        return
    report = parse_generic(doc)
    assert report.location is not None
    assert report.location.lat == lat


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_arbitrary_json_only_ever_raises_cad_parse_error(value: Any) -> None:
    """Whatever JSON arrives, the parser answers with a report or a CadParseError."""
    with contextlib.suppress(CadParseError):
        parse_generic(json.dumps(value).encode())
