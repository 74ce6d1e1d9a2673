"""The feed mapping language against the layouts agencies publish (our own fixtures, written
in those layouts): root paths, item lists by path, transforms, fallbacks, composite ids."""

from __future__ import annotations

import contextlib
import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cad_adapters.errors import CadParseError
from cad_adapters.feed import FeedMapping, check_sample, map_document, parse_feed
from cad_adapters.feed_templates import TEMPLATES, template_mapping
from cad_adapters.models import PlaceType
from tests.cad_adapters.feed_fixtures import DALLAS, feed_fixture

NOW = datetime(2026, 11, 26, 10, 5, tzinfo=UTC)


def _map(document: Any, config: Any, tz: Any = UTC) -> Any:
    mapping = FeedMapping.from_config(config)
    return map_document(document, mapping, source="feed:t", default_tz=tz, now=NOW)


def test_pulsepoint_layout_with_missing_dates_and_string_coordinates() -> None:
    """Active items only; id = agency + ID; `{}` and "null" dates are absent, so the time is
    first sight (and says so); "0.0000000000" is an unknown position, not Null Island."""
    snap = _map(feed_fixture("pulsepoint_incidents.json"), template_mapping("pulsepoint"))
    assert snap.refused == []
    assert [i.report.source_incident_id for i in snap.items] == [
        "EMS0001/1580001001",
        "EMS0001/1580001002",
        "EMS0001/1580001003",
    ]
    assert {(i.report.received_at, i.received_from, i.pinned) for i in snap.items} == {
        (NOW, "first_seen", True)
    }
    located, hidden, crash = (i.report for i in snap.items)
    assert located.location is not None
    assert (located.location.lat, located.location.lon) == (52.3731, 4.8926)
    assert hidden.location is None
    assert located.place_type is PlaceType.PUBLIC
    assert (hidden.place_type, hidden.place_detail) == (PlaceType.UNKNOWN, None)
    assert hidden.address is not None
    assert hidden.address.text == "SAMPLE RD, TESTVILLE, ZZ"
    assert crash.call_type.code == "TC"


def test_socrata_geojson_layout_reads_lon_lat_and_floating_local_times() -> None:
    """features[].geometry.coordinates is [lon, lat]; "2026-11-26T09:58:00.000" has no zone and
    is Seattle time; a feature without geometry is stored without a position."""
    seattle = ZoneInfo("America/Los_Angeles")
    snap = _map(
        feed_fixture("socrata_realtime_911.geojson"), template_mapping("socrata-geojson"), seattle
    )
    first, _, alarm = (i.report for i in snap.items)
    assert first.location is not None
    assert (first.location.lat, first.location.lon) == (47.6083, -122.3354)
    assert first.received_at == datetime(2026, 11, 26, 17, 58, tzinfo=UTC)
    assert first.source_incident_id == "F260100001"
    assert (first.call_type.code, first.call_type.text) == ("Medic Response", "Medic Response")
    assert (alarm.location, alarm.address) == (None, None)
    assert all(i.received_from is None for i in snap.items)


def test_plain_array_layout() -> None:
    snap = _map(feed_fixture("plain_array.json"), template_mapping("json-array"))
    one, two = (i.report for i in snap.items)
    assert one.location is not None
    assert one.call_type.code == "09E01"
    assert two.location is None
    assert two.received_at == datetime(2026, 11, 26, 9, 2, 30, tzinfo=UTC)


def test_dallas_layout_takes_the_document_time_and_joins_the_address() -> None:
    """No time and no position on the items: received_at is the snapshot's own time (marked),
    the address is block + street (an empty block is left out)."""
    snap = _map(feed_fixture("dallas_active_calls.json"), DALLAS)
    assert snap.document_time == datetime(2026, 11, 26, 15, 30, tzinfo=UTC)
    reports = [i.report for i in snap.items]
    assert [r.address.text if r.address else None for r in reports] == [
        "1400 EXAMPLE ST",
        "SAMPLE AVE / TEST BLVD",
        "3300 OTHER RD",
    ]
    assert {(r.received_at, r.location) for r in reports} == {(snap.document_time, None)}
    assert {i.received_from for i in snap.items} == {"document"}


def test_dallas_items_are_refused_with_the_reason_when_the_document_time_is_missing() -> None:
    document = feed_fixture("dallas_active_calls.json")
    del document["summary"]["generated_at"]
    snap = _map(document, DALLAS)
    assert snap.items == []
    assert {(r.error.pointer, r.error.detail) for r in snap.refused} == {
        ("/summary/generated_at", "is required")
    }
    assert [r.incident_id for r in snap.refused] == ["26-0210001", "26-0210002", "26-0210003"]


@pytest.mark.parametrize(
    ("spec", "raw", "expected"),
    [
        ("When", "2026-11-26T10:00:00+02:00", datetime(2026, 11, 26, 8, tzinfo=UTC)),
        ("When", "2026-11-26 10:00:00", datetime(2026, 11, 26, 9, tzinfo=UTC)),
        ({"path": "When", "format": "epoch_s"}, 1795680000, datetime(2026, 11, 26, 8, tzinfo=UTC)),
        ({"path": "When", "format": "epoch_s"}, "1795680000.5",
         datetime(2026, 11, 26, 8, 0, 0, 500000, tzinfo=UTC)),
        ({"path": "When", "format": "epoch_ms"}, 1795680000000,
         datetime(2026, 11, 26, 8, tzinfo=UTC)),
        ({"path": "When", "format": "%m/%d/%Y %I:%M:%S %p"}, "11/26/2026 10:04:00 PM",
         datetime(2026, 11, 26, 21, 4, tzinfo=UTC)),
        ({"path": "When", "format": "%m/%d/%Y %I:%M:%S %p %z"}, "11/26/2026 10:04:00 PM +0000",
         datetime(2026, 11, 26, 22, 4, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_time_formats_with_and_without_zone(spec: Any, raw: Any, expected: datetime) -> None:
    """Without a zone a time is the agency's local time (Amsterdam here, UTC+1 in November)."""
    config = {"fields": {"id": "ID", "call_type_code": "T", "received_at": spec}}
    snap = _map([{"ID": "1", "T": "X", "When": raw}], config, ZoneInfo("Europe/Amsterdam"))
    assert [i.report.received_at for i in snap.items] == [expected]


@pytest.mark.parametrize(
    ("spec", "raw", "detail"),
    [
        ({"path": "When", "format": "%d.%m.%Y %H:%M"}, "29.03.2026 02:30", "does not exist"),
        ({"path": "When", "format": "%d.%m.%Y %H:%M"}, "2026-03-29", "does not match"),
        ({"path": "When", "format": "epoch_ms"}, 1795680000, "out of range"),
        ({"path": "When", "format": "epoch_s"}, True, "decimal number"),
        ({"path": "When", "format": "%Y-%m-%d %z"}, "0001-01-01 +0100", "between the years"),
        ({"path": "When", "fallback": ["@first_seen"]}, "soon", "not an ISO 8601"),
    ],
)
def test_unreadable_times_refuse_the_item(spec: Any, raw: Any, detail: str) -> None:
    """A value that is there but unreadable refuses the item (no silent fallback)."""
    config = {"fields": {"id": "ID", "call_type_code": "T", "received_at": spec}}
    snap = _map([{"ID": "1", "T": "X", "When": raw}], config, ZoneInfo("Europe/Amsterdam"))
    assert [(r.error.pointer, r.incident_id) for r in snap.refused] == [("/0/When", "1")]
    assert detail in snap.refused[0].error.detail


def test_fallbacks_in_order_and_named_unknown_values() -> None:
    """Absent, empty, `{}` or a named unknown value falls through to the next source; the
    timeline is told which one gave the time."""
    config = {
        "fields": {
            "id": "ID",
            "call_type_code": "T",
            "received_at": {"path": "Call", "unknown": ["null", 0],
                            "fallback": ["Entry", "$.meta.at", "@first_seen"]},
            "lat": {"path": "Lat", "unknown": [0, "n/a"]},
            "lon": {"path": "Lon", "unknown": [0]},
        }
    }  # fmt: skip
    document = {
        "meta": {"at": "2026-11-26T09:00:00Z"},
        "items": [
            {"ID": "a", "T": "X", "Call": "2026-11-26T08:00:00Z", "Lat": "52.1", "Lon": "4.1"},
            {"ID": "b", "T": "X", "Call": "null", "Entry": "2026-11-26T08:30:00Z", "Lat": 0},
            {"ID": "c", "T": "X", "Call": 0, "Entry": {}, "Lat": "n/a", "Lon": "4.1"},
        ],
    }
    snap = _map(document, {**config, "items": "items"})
    got = [(i.report.received_at.hour, i.received_from, i.report.location) for i in snap.items]
    assert [g[:2] for g in got] == [(8, None), (8, "Entry"), (9, "$.meta.at")]
    assert [g[2] is None for g in got] == [False, True, True]
    del document["meta"]
    snap = _map(document, {**config, "items": "items"})
    assert snap.items[2].received_from == "first_seen"
    assert snap.items[2].report.received_at == NOW


def test_composite_ids_need_every_part_unless_partial() -> None:
    config = {
        "fields": {
            "id": {"join": ["Agency", "ID"], "sep": ":"},
            "call_type_code": "T",
            "received_at": "When",
        }
    }
    when = "2026-11-26T10:00:00Z"
    snap = _map(
        [{"Agency": "A", "ID": 7, "T": "X", "When": when}, {"ID": 8, "T": "X", "When": when}],
        config,
    )
    assert [i.report.source_incident_id for i in snap.items] == ["A:7"]
    assert [(r.error.pointer, r.error.detail, r.incident_id) for r in snap.refused] == [
        ("/1/Agency", "is required", None)
    ]


def test_value_map_translates_before_reading() -> None:
    config = {
        "fields": {
            "id": "ID",
            "call_type_code": "T",
            "received_at": "When",
            "is_cardiac_arrest": {"path": "CPR", "map": {"Y": True, "N": False, "?": None}},
        }
    }
    items = [
        {"ID": str(i), "T": "X", "When": "2026-11-26T10:00:00Z", "CPR": v}
        for i, v in enumerate(["Y", "N", "?"])
    ]
    snap = _map(items, config)
    assert [i.report.is_cardiac_arrest for i in snap.items] == [True, False, None]


BASE = {"id": "ID", "call_type_code": "T", "received_at": "W"}


@pytest.mark.parametrize(
    ("config", "pointer"),
    [
        ({"fields": {**BASE, "lat": {"path": "x", "format": "iso"}, "lon": "y"}},
         "/mapping/fields/lat/format"),
        ({"fields": {**BASE, "id": "@first_seen"}}, "/mapping/fields/id"),
        ({"fields": {**BASE, "received_at": "@document_time"}}, "/mapping/document_time"),
        ({"fields": {**BASE, "lat": {"join": ["a", "b"]}, "lon": "y"}}, "/mapping/fields/lat/join"),
        ({"fields": {**BASE, "id": {"path": "ID", "colour": 1}}}, "/mapping/fields/id/colour"),
        ({"fields": {**BASE, "id": "a..b"}}, "/mapping/fields/id"),
        ({"fields": {**BASE, "id": {"path": "a", "join": ["b", "c"]}}}, "/mapping/fields/id"),
        ({"fields": {**BASE, "received_at": {"path": "W", "fallback": ["a"] * 5}}},
         "/mapping/fields/received_at/fallback"),
        ({"fields": {**BASE, "received_at": {"path": "W", "format": "%Q"}}},
         "/mapping/fields/received_at/format"),
        ({"fields": {**BASE, "received_at": {"path": "W", "fallback": [{"path": "a",
          "fallback": []}]}}}, "/mapping/fields/received_at/fallback/0/fallback"),
        ({"fields": {**BASE, "lat": "y"}}, "/mapping/fields/lat"),
        ({"fields": {**BASE, "id": {"path": "ID", "unknown": [{}]}}}, "/mapping/fields/id/unknown"),
        ({"fields": {**BASE, "id": {"path": "ID", "sep": "/"}}}, "/mapping/fields/id/sep"),
        ({"fields": BASE, "document_time": {"path": "t", "fallback": []}},
         "/mapping/document_time/fallback"),
        ({"fields": BASE, "colour": "red"}, "/mapping/colour"),
        ({"fields": {**BASE, "id": "x" * 201}}, "/mapping/fields/id"),
    ],
)  # fmt: skip
def test_mapping_configuration_errors_name_the_option(config: Any, pointer: str) -> None:
    with pytest.raises(CadParseError) as raised:
        FeedMapping.from_config(config)
    assert raised.value.pointer == pointer


def test_stored_mappings_of_the_first_format_keep_working() -> None:
    """Top-level keys the first format ignored are still ignored when polling (not at add)."""
    legacy = {"items": "list", "fields": BASE, "note": "set up in 2025"}
    mapping = FeedMapping.from_config(legacy, strict=False)
    snap = parse_feed(
        b'{"list": [{"ID": 1, "T": "X", "W": "2026-11-26T10:00:00Z"}]}', mapping, source="f"
    )
    assert [r.source_incident_id for r in snap.reports] == ["1"]


def test_every_template_is_a_valid_mapping() -> None:
    for name in TEMPLATES:
        FeedMapping.from_config(template_mapping(name))
    changed = template_mapping("pulsepoint", {"fields": {"address": None, "is_test": "T"}})
    assert "address" not in changed["fields"]
    assert changed["fields"]["is_test"] == "T"
    assert "address" in TEMPLATES["pulsepoint"]["fields"], "the template itself is not changed"


def _check(document: Any, config: Any) -> Any:
    mapping = FeedMapping.from_config(config)
    return check_sample(document, mapping, source="feed:t", default_tz=UTC, now=NOW)


def test_sample_check_refuses_paths_that_match_nothing() -> None:
    """A root path missing from the document and an item path found in no item are named."""
    document = feed_fixture("dallas_active_calls.json")
    document["meta"] = document.pop("summary")
    broken = {**DALLAS, "fields": {**DALLAS["fields"], "call_type_code": "nature_of_cal"}}
    result = _check(document, broken)
    assert result.problems[:2] == [
        "fields/call_type_code: path 'nature_of_cal' matches nothing in the sample's 3 items",
        "document_time: path '$.summary.generated_at' matches nothing in the sample document",
    ]
    assert "every one of the sample's 3 items is refused" in result.problems[2]
    assert _check(feed_fixture("dallas_active_calls.json"), DALLAS).problems == []


def test_sample_check_of_an_empty_feed_says_what_it_could_not_check() -> None:
    result = _check({"summary": {"generated_at": "2026-11-26T09:30:00Z"}, "incidents": []}, DALLAS)
    assert result.problems == []
    assert result.notes == ["the sample lists no incidents, so item paths could not be checked"]
    with pytest.raises(CadParseError) as raised:
        _check({"summary": {}}, DALLAS)
    assert raised.value.pointer == "/incidents"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
        max_leaves=15,
    ),
    st.sampled_from(sorted(TEMPLATES)),
)
def test_arbitrary_items_only_refuse_items(item: Any, name: str) -> None:
    """Whatever an item holds, a template maps it or refuses it; nothing else escapes."""
    mapping = FeedMapping.from_config(template_mapping(name))
    items_path = TEMPLATES[name]["items"]
    document: Any = [item]
    for step in reversed(items_path.split(".") if items_path else []):
        document = {step: document}
    with contextlib.suppress(CadParseError):
        snap = map_document(document, mapping, source="f", now=NOW)
        assert len(snap.items) + len(snap.refused) == 1


def test_seattle_rows_in_the_socrata_geojson_layout(shared_dir: Path) -> None:
    """The 1,991 rows of the published Seattle excerpt, laid out as the GeoJSON export: the
    template (with the CSV's time pattern) maps every row or refuses it with a reason;
    "(0, 0)" positions are no position, never Null Island."""
    rows = list(
        csv.DictReader(
            (
                shared_dir
                / "cad_samples/seattle_fire_911/seattle_real_time_fire_911_calls_excerpt.csv"
            )
            .read_text()
            .splitlines()
        )
    )
    features = []
    for row in rows:
        geometry = None
        if row["Latitude"]:
            point = [float(row["Longitude"]), float(row["Latitude"])]
            geometry = {"type": "Point", "coordinates": point}
        elif row["Report Location"] == "(0, 0)":
            geometry = {"type": "Point", "coordinates": [0, 0]}
        properties = {
            "address": row["Address"],
            "type": row["Type"],
            "datetime": row["Datetime"],
            "incident_number": row["Incident Number"],
        }
        features.append({"type": "Feature", "geometry": geometry, "properties": properties})
    csv_time = {"path": "properties.datetime", "format": "%m/%d/%Y %I:%M:%S %p %z"}
    config = template_mapping("socrata-geojson", {"fields": {"received_at": csv_time}})
    snap = _map({"type": "FeatureCollection", "features": features}, config)
    assert len(snap.items) + len(snap.refused) == len(rows)
    time_refused = [r for r in snap.refused if "does not match the format" in r.error.detail]
    assert all(r.error.pointer.endswith("/properties/datetime") for r in time_refused)
    assert len(time_refused) == sum(1 for r in rows if not r["Datetime"][:1].isdigit())
    assert {r.error.detail for r in snap.refused if r not in time_refused} == {
        "repeats an incident id of this feed"
    }
    located = [i.report.location for i in snap.items if i.report.location is not None]
    assert all(47.4 < p.lat < 47.8 and -122.5 < p.lon < -122.2 for p in located)
    unlocated = {i.report.source_incident_id for i in snap.items if i.report.location is None}
    zero = {r["Incident Number"] for r in rows if r["Report Location"] == "(0, 0)"}
    assert unlocated == zero
    assert len(snap.items) == len({r["Incident Number"] for r in rows}) - len(
        [r for r in snap.refused if "match" in r.error.detail]
    )
