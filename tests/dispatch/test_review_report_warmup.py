"""Housekeeping keeps the activations report of each settled calendar month and year
computed, and computes it again after a late change: the next request is answered from the
kept figures, which are the figures the log gives when recomputed row by row."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from dispatch.config import Settings
from dispatch.domain.report_ranges import standard_ranges
from dispatch.web import app_keys as keys
from dispatch.workers.housekeeping import warm_reports
from tests.dispatch.conftest import AgencyFixture, app_client
from tests.dispatch.helpers import wait_until
from tests.dispatch.review_helpers import Responder, Seeded, seed
from tests.dispatch.test_review_report_cache import (
    FIRST,
    SECOND,
    _from_the_log,
    _history,
    _local,
    _numbers,
    _report,
    late_accept,
)

pytestmark = pytest.mark.storage

ZONE = ZoneInfo("Europe/Amsterdam")
LAST_YEAR = datetime.now(UTC).year - 1
YEAR = {"from": f"{LAST_YEAR}-01-01", "to": f"{LAST_YEAR}-12-31"}


def _month(first: date) -> dict[str, str]:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return {"from": first.isoformat(), "to": (following - timedelta(days=1)).isoformat()}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Warm-up rounds are driven by the tests (one test runs the real loop)."""
    return settings.with_overrides(report_warmup_s=0)


async def _seed_history(db: asyncpg.Connection, agency: AgencyFixture) -> dict[str, Any]:
    seeded = await _history(db, agency)
    # And last year, so that a calendar year has something to count.
    v = seeded["volunteers"]
    for month, hour in ((3, 9), (7, 14), (11, 23)):
        await seed(
            db,
            agency.agency_id,
            Seeded(
                _local(date(LAST_YEAR, month, 12), hour),
                responders=[Responder(v[0], sent_s=4.5, accept_s=30), Responder(v[3], sent_s=9)],
                ems_s=410,
            ),
        )
    return seeded


async def _kept_at(db: asyncpg.Connection, agency_id: UUID, params: dict[str, str]) -> Any:
    """When the kept report of the range was computed, if it is valid for the current count."""
    start = datetime.combine(date.fromisoformat(params["from"]), datetime.min.time(), ZONE)
    stop = datetime.combine(
        date.fromisoformat(params["to"]) + timedelta(days=1), datetime.min.time(), ZONE
    )
    return await db.fetchval(
        """
        SELECT c.computed_at FROM activations_cache c
        WHERE c.agency_id = $1 AND c.range_from = $2 AND c.range_to = $3 AND c.warmed
          AND c.changes = coalesce(
              (SELECT k.changes FROM report_changes k WHERE k.agency_id = $1), 0)
        """,
        agency_id,
        start,
        stop,
    )


async def _kept_soon(db: asyncpg.Connection, agency_id: UUID, params: dict[str, str]) -> None:
    """Until the running housekeeping has kept the range's report (for the current count)."""
    await wait_until(
        lambda: _kept_at(db, agency_id, params), every_s=0.05, what=f"report {params} kept"
    )


async def _warm_all(client: Any) -> int:
    total = 0
    while (done := await warm_reports(client.app[keys.POOL])) > 0:
        total += done
    return total


async def _served_kept(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture, params: dict[str, str]
) -> Any:
    """The report of ``params`` as served, checked to be the kept copy, and equal to the
    log recomputed row by row."""
    kept_at = await _kept_at(db, agency.agency_id, params)
    assert kept_at is not None, params
    report = await _report(client, agency, params)
    assert _at(report) == kept_at
    assert _numbers(report) == await _from_the_log(db, agency.agency_id, report)
    return report


async def test_settled_months_and_years_are_kept_before_anyone_asks_and_after_a_late_change(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    seeded = await _seed_history(db, agency)
    now, first = await db.fetchrow(
        "SELECT now(), min(received_at) FROM incidents WHERE agency_id = $1", agency.agency_id
    )
    expected = standard_ranges(ZONE, now, first)
    assert await _warm_all(client) == len(expected)
    assert await db.fetchval("SELECT count(*) FROM activations_cache WHERE warmed") == len(expected)
    # Nothing changed: a further round computes nothing.
    assert await warm_reports(client.app[keys.POOL]) == 0

    ranges = [YEAR, _month(FIRST), _month(SECOND)]
    before = [await _served_kept(client, db, agency, params) for params in ranges]
    assert before[0]["total"]["activations"] >= 3
    assert before[1]["total"]["activations"] >= 3

    # Weeks later, the accept of an alert of the first month arrives: every kept report of
    # the agency is invalid, and one housekeeping round later each is kept again.
    await late_accept(db, seeded)
    assert await _kept_at(db, agency.agency_id, _month(FIRST)) is None
    assert await _warm_all(client) == len(expected)
    after = [await _served_kept(client, db, agency, params) for params in ranges]
    assert after[1]["total"]["alerts_accepted"] == before[1]["total"]["alerts_accepted"] + 1
    for old, new in zip(before, after, strict=True):
        assert _at(new) > _at(old)


def _at(report: Any) -> datetime:
    return datetime.fromisoformat(report["computed_at"])


@pytest.fixture
async def warming(settings: Settings, aiohttp_client: Any) -> Any:
    """A client of an app whose housekeeping keeps reports computed, on a short tick."""
    return await app_client(aiohttp_client, settings.with_overrides(report_warmup_s=0.05))


async def test_the_housekeeping_loop_keeps_them_while_the_service_runs(
    db: asyncpg.Connection, agency: AgencyFixture, warming: Any
) -> None:
    client = warming
    await _seed_history(db, agency)
    month = _month(SECOND)
    await _kept_soon(db, agency.agency_id, month)
    await _served_kept(client, db, agency, month)

    await db.execute(
        "UPDATE incidents SET first_ems_on_scene_at = created_at + interval '95 s'"
        " WHERE agency_id = $1 AND received_at >= $2 AND received_at < $3",
        agency.agency_id,
        _local(SECOND, 0),
        _local(SECOND + timedelta(days=20), 0),
    )
    await _kept_soon(db, agency.agency_id, month)
    report = await _served_kept(client, db, agency, month)
    assert report["total"]["median_s_to_first_ems_on_scene"] == 95.0


async def test_a_report_a_request_computed_first_is_kept_as_a_standard_one(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    await _seed_history(db, agency)
    asked = await _report(client, agency, _month(FIRST))
    assert await _kept_at(db, agency.agency_id, _month(FIRST)) is None  # kept, not warmed
    await _warm_all(client)
    assert await _report(client, agency, _month(FIRST)) == asked
    assert await _kept_at(db, agency.agency_id, _month(FIRST)) is not None


def test_standard_ranges_are_the_routes_calendar_ranges_settled_and_newest_first() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    ranges = standard_ranges(ZONE, now, datetime(2023, 6, 5, tzinfo=UTC))
    as_local = [(a.astimezone(ZONE), b.astimezone(ZONE)) for a, b in ranges]
    # February 2026 ended less than two days ago: not yet.
    assert as_local[0] == (
        datetime(2026, 1, 1, tzinfo=ZONE),
        datetime(2026, 2, 1, tzinfo=ZONE),
    )
    assert (datetime(2025, 1, 1, tzinfo=ZONE), datetime(2026, 1, 1, tzinfo=ZONE)) in as_local
    assert (datetime(2023, 1, 1, tzinfo=ZONE), datetime(2024, 1, 1, tzinfo=ZONE)) in as_local
    assert (datetime(2022, 1, 1, tzinfo=ZONE), datetime(2023, 1, 1, tzinfo=ZONE)) not in as_local
    months = [r for r in as_local if r[1] - r[0] < timedelta(days=32)]
    assert len(months) == 23  # March 2024 .. January 2026
    assert months[-1][0] == datetime(2024, 3, 1, tzinfo=ZONE)
    assert [r[1] for r in ranges] == sorted((r[1] for r in ranges), reverse=True)
    assert standard_ranges(ZONE, now, None) == []
