"""Which months of the response log must exist, and which may go.

The log is partitioned by calendar month in UTC (migration 0019). Housekeeping keeps a
partition ready for this month and the next few, so inserts never wait for one, and drops
a partition only once every row it can hold is older than the retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

MONTHS_AHEAD: Final = 3
"""Partitions kept ready beyond the current month: a stopped housekeeper has three months
before an insert lands in the default partition."""

MIN_RETENTION_DAYS: Final = 31
"""Shorter than a month would drop the log of incidents supervisors are still reviewing and
keep nothing a monthly partition could not already hold."""


@dataclass(frozen=True, slots=True)
class Month:
    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        return f"response_log_{self.start:%Y_%m}"


def month_of(at: datetime) -> Month:
    """The UTC calendar month holding ``at``."""
    utc = at.astimezone(UTC)
    start = datetime(utc.year, utc.month, 1, tzinfo=UTC)
    return Month(start, _next_start(start))


def _next_start(start: datetime) -> datetime:
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def months_needed(now: datetime, ahead: int = MONTHS_AHEAD) -> list[Month]:
    """This month and the ``ahead`` months after it."""
    months = [month_of(now)]
    for _ in range(ahead):
        months.append(Month(months[-1].end, _next_start(months[-1].end)))
    return months


def retention_cutoff(now: datetime, retention_days: int) -> datetime | None:
    """Rows stamped before this may be dropped; None keeps everything (retention 0)."""
    if retention_days <= 0:
        return None
    return now - timedelta(days=retention_days)


def covered(month: Month, ranges: list[tuple[datetime | None, datetime | None]]) -> bool:
    """Whether a range partition (None: unbounded on that side) already holds the month."""
    return any(
        (lower is None or lower <= month.start) and (upper is None or month.start < upper)
        for lower, upper in ranges
    )
