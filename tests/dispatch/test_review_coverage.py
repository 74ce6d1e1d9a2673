"""Coverage by hour of the week: people per resolution-8 cell, small cells never shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from dispatch.store import review as review_store
from dispatch.store import volunteers as volunteer_store
from geoindex import latlng_to_cell, point_cell
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, offset, wait_until
from tests.dispatch.review_helpers import (
    refused_parameters,
    supervised_get,
    supervised_json,
    volunteer,
)

pytestmark = pytest.mark.storage

# Three points far enough apart to sit in three different resolution-8 cells.
A = CENTRE
B = offset(*CENTRE, 3000, 0)
C = offset(*CENTRE, 0, 3000)


def _hour_of_week(at: datetime) -> int:
    return at.weekday() * 24 + at.hour


async def _at(
    db: asyncpg.Connection, agency_id: Any, point: tuple[float, float], at: datetime, **cols: Any
) -> int:
    volunteer_id = await volunteer(db, agency_id, **cols)
    await db.execute(
        "INSERT INTO volunteer_positions (volunteer_id, agency_id, lat, lon, reported_at, cell)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        volunteer_id,
        agency_id,
        *point,
        at,
        point_cell(*point),
    )
    return volunteer_id


async def _coverage(client: Any, agency: AgencyFixture, **params: Any) -> Any:
    return await supervised_json(client, agency, "reports/coverage", params)


async def test_cells_count_people_and_hide_small_cells(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    now = datetime.now(UTC)
    # A fix through the API, stored by the position writer: the real path writes presence.
    reporter, token = await volunteer_store.create_volunteer(
        db, agency_id=agency.agency_id, display_name="Reporter", phone_e164=None
    )
    lat, lon = offset(*A, 30, 30)
    resp = await client.put(
        "/v1/me/location",
        json={"lat": lat, "lon": lon},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 204
    await wait_until(
        lambda: db.fetchval(
            "SELECT count(*) FROM coverage_presence WHERE volunteer_id = $1", reporter
        ),
        timeout_s=5,
        what="the reporter's presence recorded",
    )
    fixed_at = await db.fetchval(
        "SELECT reported_at FROM volunteer_positions WHERE volunteer_id = $1", reporter
    )
    week_ago = fixed_at - timedelta(days=7)
    # A: the reporter and two more in this hour of the week, one of them seen in two weeks
    # (counted once).
    twice = await _at(db, agency.agency_id, A, week_ago - timedelta(days=7))
    await db.execute(
        "UPDATE volunteer_positions SET reported_at = $2 WHERE volunteer_id = $1", twice, week_ago
    )
    await _at(db, agency.agency_id, A, week_ago)
    # Not counted in A: unverified, unavailable, erased, too long ago, another hour, another
    # agency.
    await _at(db, agency.agency_id, A, week_ago, verified=False)
    await _at(db, agency.agency_id, A, week_ago, available=False)
    await _at(db, agency.agency_id, A, week_ago, erased_at=now)
    await _at(db, agency.agency_id, A, fixed_at - timedelta(days=35))
    await _at(db, agency.agency_id, A, week_ago - timedelta(hours=2))
    other = await db.fetchval(
        "INSERT INTO agencies (id, name) VALUES (gen_random_uuid(), 'Other') RETURNING id"
    )
    await _at(db, other, A, week_ago)
    # B: three people; C: two people (suppressed).
    for _ in range(3):
        await _at(db, agency.agency_id, B, week_ago)
    for _ in range(2):
        await _at(db, agency.agency_id, C, week_ago)

    hour = str(_hour_of_week(fixed_at))
    body = await _coverage(client, agency, hour=hour)
    cells = {c["cell"]: c["volunteers"] for c in body["cells"]}
    assert cells == {
        f"{latlng_to_cell(*A, 8):x}": 3,
        f"{latlng_to_cell(*B, 8):x}": 3,
    }
    assert body["suppressed_cells"] == 1
    assert body["minimum_volunteers"] == 3
    assert body["next_cursor"] is None
    shown = body["cells"][0]
    assert len(shown["boundary"]) == 6
    assert "volunteer_id" not in str(body)

    first = await _coverage(client, agency, hour=hour, limit="1")
    second = await _coverage(client, agency, hour=hour, limit="1", cursor=first["next_cursor"])
    assert [c["cell"] for c in first["cells"] + second["cells"]] == sorted(
        cells, key=lambda c: int(c, 16)
    )
    assert (
        second["next_cursor"] is None
        or (
            await _coverage(
                client,
                agency,
                hour=hour,
                limit="1",
                cursor=second["next_cursor"],
            )
        )["cells"]
        == []
    )

    purged = await review_store.purge_presence(db, now - review_store.COVERAGE_WINDOW)
    assert purged == 1

    # The volunteer's export shows their presence rows; erasure takes them away.
    auth = {"Authorization": f"Bearer {token}"}
    exported = await (await client.get("/v1/me/export", headers=auth)).json()
    assert exported["coverage_presence"] == [
        {
            "hour_of_week": _hour_of_week(fixed_at),
            "cell": f"{latlng_to_cell(lat, lon, 8):x}",
            "last_seen_at": fixed_at.isoformat(),
        }
    ]
    assert (await client.delete("/v1/me", headers=auth)).status == 204
    assert not await db.fetchval(
        "SELECT count(*) FROM coverage_presence WHERE volunteer_id = $1", reporter
    )


@pytest.mark.parametrize(
    ("zone", "day", "local", "utc"),
    [
        ("UTC", "2026-01-05", 9, 9),
        ("Europe/Amsterdam", "2026-01-05", 0, 167),
        ("Europe/Amsterdam", "2026-07-06", 0, 166),
        ("Asia/Kolkata", "2026-07-06", 10, 5),
    ],
)
def test_local_hours_of_the_week_map_to_utc(zone: str, day: str, local: int, utc: int) -> None:
    from dispatch.web.handlers_review import utc_hour_of_week

    now = datetime.fromisoformat(day).replace(tzinfo=UTC)
    assert utc_hour_of_week(local, ZoneInfo(zone), now) == utc


@pytest.mark.parametrize(
    "params", [{}, {"hour": "168"}, {"hour": "-1"}, {"hour": "9", "limit": "0"}]
)
async def test_bad_coverage_parameters_are_named(
    client: Any, agency: AgencyFixture, params: dict[str, str]
) -> None:
    resp = await supervised_get(client, agency, "reports/coverage", params)
    assert await refused_parameters(resp) == ["limit" if "limit" in params else "hour"]


async def test_presence_is_written_when_a_fix_enters_another_hour_or_cell(
    db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """Fixes that stay in the volunteer's hour and cell write nothing; a new cell, a new
    hour of the week, or a mark over an hour old does (set-based, once per statement)."""
    start = datetime(2026, 11, 30, 10, 5, tzinfo=UTC)
    volunteer_id = await _at(db, agency.agency_id, A, start)

    async def move(point: tuple[float, float], at: datetime) -> None:
        await db.execute(
            "UPDATE volunteer_positions SET lat = $2, lon = $3, cell = $4, reported_at = $5"
            " WHERE volunteer_id = $1",
            volunteer_id,
            *point,
            point_cell(*point),
            at,
        )

    async def presence() -> dict[tuple[int, int], datetime]:
        rows = await db.fetch(
            "SELECT hour_of_week, cell, last_seen_at FROM coverage_presence"
            " WHERE volunteer_id = $1",
            volunteer_id,
        )
        return {(r["hour_of_week"], r["cell"]): r["last_seen_at"] for r in rows}

    hour = _hour_of_week(start)
    cell_a, cell_b = latlng_to_cell(*A, 8), latlng_to_cell(*B, 8)
    assert await presence() == {(hour, cell_a): start}
    await move(offset(*A, 20, 20), start + timedelta(minutes=30))  # same hour, same cell
    assert await presence() == {(hour, cell_a): start}
    await move(B, start + timedelta(minutes=40))  # another cell
    assert await presence() == {
        (hour, cell_a): start,
        (hour, cell_b): start + timedelta(minutes=40),
    }
    later = start + timedelta(hours=1)  # the next hour of the week, back in A
    await move(A, later)
    assert (await presence())[(hour + 1, cell_a)] == later
