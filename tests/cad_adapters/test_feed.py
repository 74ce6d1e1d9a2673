"""Polled-feed mapping: configuration checked, items mapped, bad items set aside."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cad_adapters.errors import CadParseError
from cad_adapters.feed import FeedMapping, parse_feed

MAPPING = FeedMapping.from_config(
    {
        "items": "incidents",
        "fields": {
            "id": "ID",
            "call_type_code": "Type",
            "received_at": "When",
            "lat": "geo.lat",
            "lon": "geo.lon",
            "is_cardiac_arrest": "Arrest",
        },
    }
)


def _feed(*items: Any) -> bytes:
    return json.dumps({"incidents": list(items)}).encode()


def test_items_map_to_reports_with_string_numbers() -> None:
    """Dotted paths reach nested fields; numeric strings are read as numbers."""
    snap = parse_feed(
        _feed(
            {"ID": 7, "Type": "ME", "When": "2026-11-26T10:00:00Z",
             "geo": {"lat": "52.37", "lon": "4.89"}, "Arrest": "yes"}
        ),
        MAPPING,
        source="feed:x",
    )  # fmt: skip
    (report,) = snap.reports
    assert report.source == "feed:x"
    assert report.source_incident_id == "7"
    assert report.location is not None
    assert (report.location.lat, report.location.lon) == (52.37, 4.89)
    assert report.is_cardiac_arrest is True
    assert report.received_at == datetime(2026, 11, 26, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("item", "pointer"),
    [
        ({"Type": "ME", "When": "2026-11-26T10:00:00Z"}, "/incidents/0/ID"),
        ({"ID": "a", "When": "2026-11-26T10:00:00Z"}, "/incidents/0/Type"),
        ({"ID": "a", "Type": "ME", "When": "soon"}, "/incidents/0/When"),
        ({"ID": "a", "Type": "ME", "When": "2026-11-26T10:00:00Z", "geo": {"lat": "NaN", "lon": 1}},
         "/incidents/0/geo/lat"),
        ({"ID": "a", "Type": "ME", "When": "2026-11-26T10:00:00Z", "geo": {"lat": 95, "lon": 1}},
         "/incidents/0/geo/lat"),
        ("not an object", "/incidents/0"),
    ],
)  # fmt: skip
def test_bad_items_are_set_aside_with_their_pointer(item: Any, pointer: str) -> None:
    """One bad item does not sink the feed: it is reported, the others still count."""
    good = {"ID": "ok", "Type": "ME", "When": "2026-11-26T10:00:00Z"}
    snap = parse_feed(_feed(item, good), MAPPING, source="feed:x")
    assert [r.source_incident_id for r in snap.reports] == ["ok"]
    assert [e.pointer for e in snap.rejected] == [pointer]


def test_duplicate_ids_are_refused_after_the_first() -> None:
    """Two entries with one id cannot both be the truth; the first wins, the second is refused."""
    item = {"ID": "d", "Type": "ME", "When": "2026-11-26T10:00:00Z"}
    snap = parse_feed(_feed(item, item), MAPPING, source="feed:x")
    assert len(snap.reports) == 1
    assert len(snap.rejected) == 1


@pytest.mark.parametrize(
    ("config", "pointer"),
    [
        ([], "/mapping"),
        ({"fields": {"id": "ID"}}, "/mapping/fields/call_type_code"),
        ({"fields": {"id": "ID", "call_type_code": "T", "received_at": "W", "colour": "C"}},
         "/mapping/fields/colour"),
        ({"items": 3, "fields": {}}, "/mapping/items"),
    ],
)  # fmt: skip
def test_mapping_configuration_is_checked(config: Any, pointer: str) -> None:
    """A broken mapping is refused when configured, naming the field."""
    with pytest.raises(CadParseError) as raised:
        FeedMapping.from_config(config)
    assert raised.value.pointer == pointer


@pytest.mark.parametrize("body", [b"{}", b'{"incidents": {}}', b"not json", b"[" * 100])
def test_broken_documents_raise(body: bytes) -> None:
    """A feed that is not a list where the mapping says is a failed poll, not an empty one."""
    with pytest.raises(CadParseError):
        parse_feed(body, MAPPING, source="feed:x")


@given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c,
                                                                      max_size=4),
                    max_leaves=15))  # fmt: skip
def test_arbitrary_items_only_raise_cad_parse_error(item: Any) -> None:
    """Whatever a feed holds, parsing yields reports, refusals, or one CadParseError."""
    with contextlib.suppress(CadParseError):
        parse_feed(json.dumps({"incidents": [item]}, allow_nan=True).encode(), MAPPING, source="f")
