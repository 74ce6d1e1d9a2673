"""Timestamp parsing: everything becomes aware UTC; junk is a CadParseError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from cad_adapters._time import parse_timestamp
from cad_adapters.errors import CadParseError

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("2021-04-30T14:43:49.439-04:00", UTC, datetime(2021, 4, 30, 18, 43, 49, 439000, UTC)),
        ("2020-10-29T18:40:04.337Z", UTC, datetime(2020, 10, 29, 18, 40, 4, 337000, UTC)),
        ("2012-05-02T23:21:04-00:00", UTC, datetime(2012, 5, 2, 23, 21, 4, tzinfo=UTC)),
        ("2021-04-30T14:42:00.0-04:00", UTC, datetime(2021, 4, 30, 18, 42, tzinfo=UTC)),
        ("2021-04-30T14:42:00.1234567+0200", UTC, datetime(2021, 4, 30, 12, 42, 0, 123456, UTC)),
        ("2021-04-30 14:42", UTC, datetime(2021, 4, 30, 14, 42, tzinfo=UTC)),
        ("  2024-01-15T08:00:00  ", NY, datetime(2024, 1, 15, 13, 0, tzinfo=UTC)),
        ("2024-07-15T08:00:00", NY, datetime(2024, 7, 15, 12, 0, tzinfo=UTC)),
        # Autumn fold: the first 01:30 (EDT) is taken.
        ("2024-11-03T01:30:00", NY, datetime(2024, 11, 3, 5, 30, tzinfo=UTC)),
        ("2024-01-15T08:00:00", timezone(timedelta(hours=1)), datetime(2024, 1, 15, 7, tzinfo=UTC)),
    ],
)
def test_valid_timestamps(text: str, tz: timezone | ZoneInfo, expected: datetime) -> None:
    """Offsets, Z, fractions of any length and naive local stamps all end up aware UTC."""
    parsed = parse_timestamp(text, pointer="/t", default_tz=tz)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2011-10-24T24:22:00+0000",  # Seattle hour 24
        "2021-02-30T10:00:00Z",
        "2021-W01-1T10:00:00Z",
        "20210430T144349Z",
        "2021-04-30T14:43:49+25:00",
        "2021-04-30T14:43:49 +01:00",
        "0001-01-01T00:00:00+01:00",  # overflows when converted to UTC
        "2024-03-10T02:30:00",  # does not exist in New York (spring forward)
        "null",
        1617000000,
        None,
    ],
)
def test_invalid_timestamps(value: object) -> None:
    """Anything that is not a real ISO 8601 instant is refused, naming the pointer."""
    with pytest.raises(CadParseError) as info:
        parse_timestamp(value, pointer="/alert/sent", default_tz=NY)
    assert info.value.pointer == "/alert/sent"
