"""The start-up rebuild reads positions as binary columns and indexes them per agency."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import numpy as np
import pytest

from dispatch.service.positions import PositionCache
from dispatch.store.position_arrays import PositionArrays, fresh_position_arrays, parse_copy
from dispatch.store.volunteers import PositionRow
from geoindex import point_cell


async def _volunteer(db: asyncpg.Connection, agency: UUID, *, eligible: bool = True) -> int:
    volunteer_id: int = await db.fetchval(
        "INSERT INTO volunteers (agency_id, display_name, token_hash, verified, available)"
        " VALUES ($1, 'v', $2, $3, true) RETURNING id",
        agency,
        secrets.token_bytes(32),
        eligible,
    )
    return volunteer_id


async def test_columns_match_the_table_and_the_index_answers_per_agency(
    db: asyncpg.Connection,
) -> None:
    agencies = [uuid4(), uuid4()]
    for agency in agencies:
        await db.execute("INSERT INTO agencies (id, name) VALUES ($1, 'a')", agency)
    at = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    expected = {}
    for n in range(6):
        agency = agencies[n % 2]
        volunteer_id = await _volunteer(db, agency)
        lat, lon = 52.37 + n * 1e-4, 4.89 - n * 1e-4
        reported = at - timedelta(seconds=n)
        await db.execute(
            "INSERT INTO volunteer_positions (volunteer_id, agency_id, lat, lon, accuracy_m,"
            " reported_at) VALUES ($1, $2, $3, $4, NULL, $5)",
            volunteer_id,
            agency,
            lat,
            lon,
            reported,
        )
        expected[volunteer_id] = (agency, lat, lon, reported)
    hidden = await _volunteer(db, agencies[0], eligible=False)
    await db.execute(
        "INSERT INTO volunteer_positions VALUES ($1, $2, 52.37, 4.89, 5, now())",
        hidden,
        agencies[0],
    )

    columns = await fresh_position_arrays(db)
    got = {
        int(v): (UUID(bytes=a.tobytes()), float(la), float(lo), r.item().replace(tzinfo=UTC))
        for v, a, la, lo, r in zip(
            columns.volunteer_ids,
            columns.agency_ids,
            columns.lats,
            columns.lons,
            columns.reported_at,
            strict=True,
        )
    }
    assert got == expected, "every eligible row, exact to the microsecond; the hidden one not"

    cache = PositionCache()
    cache.load_arrays(columns)
    assert len(cache) == 6
    for volunteer_id, (agency, lat, lon, _) in expected.items():
        assert cache.position(volunteer_id) == (lat, lon)
        hits = cache.nearest(
            agency, lat, lon, radius_m=5, limit=1, max_age_s=10**9, now=at, exclude=set()
        )
        assert [h.volunteer_id for h in hits] == [volunteer_id]
    other = agencies[1] if expected[next(iter(expected))][0] == agencies[0] else agencies[0]
    first = next(iter(expected))
    assert all(
        h.volunteer_id != first
        for h in cache.nearest(
            other, 52.37, 4.89, radius_m=5_000, limit=10, max_age_s=10**9, now=at, exclude=set()
        )
    ), "an agency's index holds only its own volunteers"


async def test_an_empty_table_rebuilds_nothing(db: asyncpg.Connection) -> None:
    columns = await fresh_position_arrays(db)
    assert len(columns) == 0
    cache = PositionCache()
    cache.load_arrays(columns)
    assert len(cache) == 0


def test_a_stream_that_is_not_the_expected_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="binary COPY"):
        parse_copy(b"id,lat\n1,2\n")
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
    with pytest.raises(ValueError, match="layout"):
        parse_copy(header + b"\x00\x01\x00\x00\x00\x04abcd" + b"\xff\xff")
    assert np.array_equal(parse_copy(header + b"\xff\xff").volunteer_ids, np.array([]))


async def test_positions_are_stored_with_their_cell_and_rebuilt_without_h3(
    db: asyncpg.Connection,
) -> None:
    """The writer stores each position's cell; a row without one (NULL) is computed."""
    from dispatch.store import volunteers as volunteer_store
    from dispatch.store.volunteers import PositionRow
    from geoindex import point_cell

    agency = uuid4()
    await db.execute("INSERT INTO agencies (id, name) VALUES ($1, 'a')", agency)
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    rows = [
        PositionRow(await _volunteer(db, agency), agency, 52.37 + i / 1000, 4.89, None, at)
        for i in range(3)
    ]
    await volunteer_store.upsert_positions(db, rows)
    stored = {
        r["volunteer_id"]: r["cell"]
        for r in await db.fetch("SELECT volunteer_id, cell FROM volunteer_positions")
    }
    assert stored == {r.volunteer_id: point_cell(r.lat, r.lon) for r in rows}

    first = rows[0].volunteer_id
    await db.execute("UPDATE volunteer_positions SET cell = NULL WHERE volunteer_id = $1", first)
    columns = await fresh_position_arrays(db)
    assert sorted(columns.cells.tolist()) == sorted(
        [0, *(cell for volunteer, cell in stored.items() if volunteer != first)]
    )
    cache = PositionCache()
    cache.load_arrays(columns)
    for row in rows:
        hits = cache.nearest(
            agency, row.lat, row.lon, radius_m=5, limit=1, max_age_s=10**9, now=at, exclude=set()
        )
        assert [h.volunteer_id for h in hits] == [row.volunteer_id]


def _random_columns(n: int, agencies: list[UUID], seed: int) -> PositionArrays:
    rng = np.random.default_rng(seed)
    ids = rng.choice(3 * n, n, replace=False).astype(np.int64)
    ids[:3] = [-7, 2**45, 10**12]  # ids the dense map cannot hold
    lats = rng.uniform(59.22, 59.40, n)
    lons = rng.uniform(17.85, 18.21, n)
    picked = rng.integers(0, len(agencies), n)
    raw = np.array([a.bytes for a in agencies], dtype="V16")[picked]
    at = np.datetime64("2026-11-30T12:00:00", "us") - rng.integers(0, 10**9, n)
    cells = np.array([point_cell(a, b) for a, b in zip(lats, lons, strict=True)], np.int64)
    cells[rng.random(n) < 0.05] = 0
    return PositionArrays(ids, raw, lats, lons, at.astype("datetime64[us]"), cells)


@pytest.mark.parametrize("agency_count", [1, 3])
def test_a_bulk_rebuild_equals_upserting_every_row(agency_count: int) -> None:
    """Per agency: the same volunteers, positions and answers as upserts in table order."""
    agencies = [uuid4() for _ in range(agency_count)]
    columns = _random_columns(4_000, agencies, seed=agency_count)
    loaded = PositionCache()
    loaded.load_arrays(columns)
    upserted = PositionCache()
    for i in range(len(columns)):
        upserted.upsert(
            PositionRow(
                int(columns.volunteer_ids[i]),
                UUID(bytes=columns.agency_ids[i].tobytes()),
                float(columns.lats[i]),
                float(columns.lons[i]),
                None,
                columns.reported_at[i].item().replace(tzinfo=UTC),
            )
        )
    assert len(loaded) == len(upserted) == len(columns)
    for vid in columns.volunteer_ids.tolist():
        assert loaded.position(vid) == upserted.position(vid)
        assert loaded.reported_at(vid) == upserted.reported_at(vid)
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    rng = np.random.default_rng(9)
    for _ in range(40):
        lat, lon = float(rng.uniform(59.22, 59.40)), float(rng.uniform(17.85, 18.21))
        agency = agencies[int(rng.integers(0, agency_count))]
        kw = {"radius_m": 1_500.0, "limit": 25, "max_age_s": 5e8, "now": now, "exclude": {1}}
        got = loaded.nearest(agency, lat, lon, **kw)  # type: ignore[arg-type]
        assert got == upserted.nearest(agency, lat, lon, **kw)  # type: ignore[arg-type]
    # Moves between agencies and removals after the rebuild keep each volunteer in one index.
    moved = int(columns.volunteer_ids[5])
    loaded.upsert(PositionRow(moved, uuid4(), 59.3, 18.0, None, now))
    loaded.remove(int(columns.volunteer_ids[6]))
    loaded.remove(int(columns.volunteer_ids[0]))  # a sparse id
    assert len(loaded) == len(columns) - 2
    assert loaded.position(moved) == (59.3, 18.0)
    assert loaded.position(int(columns.volunteer_ids[0])) is None
