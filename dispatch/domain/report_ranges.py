"""The activations report's standard ranges, which housekeeping keeps computed.

A supervisor asking for a month or a year asks for a calendar month or year in the agency's
time zone (``from=2025-01-01&to=2025-12-31``). Those ranges are built here exactly as the
route builds them from dates, so a kept report's key is the key a request looks up.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

MONTHS_KEPT: Final = 24
"""Calendar months whose report is kept computed: those that ended in this many months."""
YEARS_KEPT: Final = 10
"""Calendar years whose report is kept computed (a report covers at most 3,660 days)."""
SETTLED: Final = timedelta(days=2)
"""A range is kept only once it ended this long ago (the rule of migration 0018)."""

Range = tuple[datetime, datetime]


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    # As the route reads a date: its first instant in the agency's zone.
    return datetime.combine(day, time(), tz).astimezone(UTC)


def _month(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def standard_ranges(tz: ZoneInfo, now: datetime, first_received: datetime | None) -> list[Range]:
    """The settled calendar years and months worth keeping, newest first, years before
    months of the same end (the year is the costly one to compute on request).

    Only ranges that reach the agency's first incident: an agency's reports before it had
    any are never asked for, and would each cost a computation after every change.
    """
    if first_received is None:
        return []
    local_now = now.astimezone(tz)
    first = first_received.astimezone(tz)
    ranges: list[Range] = []
    for year in range(local_now.year - 1, max(first.year, local_now.year - YEARS_KEPT) - 1, -1):
        ranges.append((_midnight(date(year, 1, 1), tz), _midnight(date(year + 1, 1, 1), tz)))
    this_month = local_now.year * 12 + local_now.month - 1
    oldest = max(first.year * 12 + first.month - 1, this_month - MONTHS_KEPT)
    for index in range(this_month - 1, oldest - 1, -1):
        ranges.append((_midnight(_month(index), tz), _midnight(_month(index + 1), tz)))
    settled = [r for r in ranges if r[1] <= now - SETTLED]
    return sorted(settled, key=lambda r: (r[1], r[1] - r[0]), reverse=True)
