"""Unit tests for the VolunteerIndex API: bookkeeping, bulk load and argument validation."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from geoindex import EARTH_RADIUS_M, Hit, VolunteerIndex

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_hit_is_frozen_with_slots() -> None:
    """Hit is an immutable, slotted value object."""
    hit = Hit(1, 2.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.volunteer_id = 2  # type: ignore[misc]
    assert not hasattr(hit, "__dict__")
    assert EARTH_RADIUS_M == 6_371_008.8


def test_upsert_remove_len_contains_position() -> None:
    """upsert inserts or moves, remove deletes (silently if absent), position reports the last."""
    index = VolunteerIndex()
    index.upsert(1, 52.0, 4.0, at=NOW)
    index.upsert(2, 52.1, 4.1, at=NOW)
    index.upsert(1, -33.0, 151.0, at=NOW + timedelta(seconds=5))
    assert len(index) == 2
    assert 1 in index
    assert 3 not in index
    assert index.position(1) == (-33.0, 151.0, NOW + timedelta(seconds=5))
    index.remove(1)
    index.remove(1)
    index.remove(99)
    assert len(index) == 1
    assert index.position(1) is None
    assert index.nearest(-33.0, 151.0, radius_m=1000, limit=5) == []


def test_position_keeps_the_instant_of_other_timezones() -> None:
    """A report time in another timezone comes back as the same instant (in UTC)."""
    index = VolunteerIndex()
    at = datetime(2026, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    index.upsert(1, 0.0, 0.0, at=at)
    got = index.position(1)
    assert got is not None
    assert got[2] == at
    assert got[2].tzinfo == UTC


def test_bulk_load_equals_upserts_and_last_row_wins() -> None:
    """bulk_load (lists or numpy arrays) behaves like upserts in order, duplicates included."""
    rng = np.random.default_rng(0)
    n = 2_000
    ids = rng.integers(0, 1_500, n)
    lats = rng.uniform(59.2, 59.45, n)
    lons = rng.uniform(17.8, 18.3, n)
    ats = [NOW - timedelta(seconds=int(s)) for s in rng.integers(0, 100, n)]
    by_upsert = VolunteerIndex()
    for i, a, b, t in zip(ids.tolist(), lats.tolist(), lons.tolist(), ats, strict=True):
        by_upsert.upsert(i, a, b, at=t)
    by_bulk = VolunteerIndex()
    by_bulk.bulk_load(ids, lats, lons, ats)
    by_list = VolunteerIndex()
    by_list.upsert(int(ids[0]), 0.0, 0.0, at=NOW)  # pre-existing id goes through the slow path
    by_list.bulk_load(ids.tolist(), lats.tolist(), lons.tolist(), ats)
    assert len(by_bulk) == len(by_upsert) == len(by_list)
    for vid in set(ids.tolist()):
        assert by_bulk.position(vid) == by_upsert.position(vid) == by_list.position(vid)
    for q in range(20):
        args = (float(lats[q]), float(lons[q]))
        kw = {"radius_m": 2_000.0, "limit": 30, "max_age_s": 50.0, "now": NOW}
        assert by_bulk.nearest(*args, **kw) == by_upsert.nearest(*args, **kw)  # type: ignore[arg-type]
        assert by_list.nearest(*args, **kw) == by_upsert.nearest(*args, **kw)  # type: ignore[arg-type]


def test_bulk_load_accepts_datetime64_as_utc() -> None:
    """A numpy datetime64 array of report times is read as UTC."""
    index = VolunteerIndex()
    index.bulk_load(
        np.array([1, 2]),
        np.array([1.0, 2.0]),
        np.array([3.0, 4.0]),
        np.array(["2026-05-01T12:00:00", "2026-05-01T12:00:01"], dtype="datetime64[us]"),
    )
    assert index.position(2) == (2.0, 4.0, NOW + timedelta(seconds=1))


def test_stale_boundary_is_exact() -> None:
    """A position exactly max_age_s old is fresh; one microsecond older is stale."""
    index = VolunteerIndex()
    index.upsert(1, 0.0, 0.0, at=NOW - timedelta(seconds=60))
    index.upsert(2, 0.0, 0.0, at=NOW - timedelta(seconds=60, microseconds=1))
    hits = index.nearest(0.0, 0.0, radius_m=1, limit=5, max_age_s=60, now=NOW)
    assert [h.volunteer_id for h in hits] == [1]
    hits = index.nearest(0.0, 0.0, radius_m=1, limit=5, max_age_s=0.1 + 0.2 + 59.7, now=NOW)
    assert [h.volunteer_id for h in hits] == [1]


BAD_COORDS = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        *((v, 0.0) for v in BAD_COORDS),
        *((0.0, v) for v in BAD_COORDS),
        (90.0001, 0.0),
        (-90.5, 0.0),
        (0.0, 180.0001),
        (0.0, -181.0),
    ],
)
def test_invalid_coordinates_raise(lat: float, lon: float) -> None:
    """NaN, infinite or out-of-range coordinates raise ValueError in every entry point."""
    index = VolunteerIndex()
    with pytest.raises(ValueError, match="itude"):
        index.upsert(1, lat, lon, at=NOW)
    with pytest.raises(ValueError, match="itude"):
        index.bulk_load([1, 2], [0.0, lat], [0.0, lon], [NOW, NOW])
    with pytest.raises(ValueError, match="itude"):
        index.nearest(lat, lon, radius_m=10, limit=1)
    assert len(index) == 0


def test_naive_datetimes_raise() -> None:
    """Naive report times and a naive ``now`` raise ValueError."""
    index = VolunteerIndex()
    naive = datetime(2026, 5, 1, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        index.upsert(1, 0.0, 0.0, at=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        index.bulk_load([1], [0.0], [0.0], [naive])
    with pytest.raises(ValueError, match="timezone-aware"):
        index.nearest(0.0, 0.0, radius_m=1, limit=1, max_age_s=5, now=naive)
    assert len(index) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"radius_m": -1.0, "limit": 1}, "radius_m"),
        ({"radius_m": math.nan, "limit": 1}, "radius_m"),
        ({"radius_m": math.inf, "limit": 1}, "radius_m"),
        ({"radius_m": 10.0, "limit": -1}, "limit"),
        ({"radius_m": 10.0, "limit": 0}, "limit"),
        ({"radius_m": 10.0, "limit": 1, "max_age_s": -1.0, "now": NOW}, "max_age_s"),
        ({"radius_m": 10.0, "limit": 1, "max_age_s": math.nan, "now": NOW}, "max_age_s"),
        ({"radius_m": 10.0, "limit": 1, "max_age_s": 5.0}, "now is required"),
    ],
)
def test_invalid_query_arguments_raise(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    """Bad radius, limit or max_age_s (or max_age_s without now) raise ValueError."""
    index = VolunteerIndex()
    index.upsert(1, 0.0, 0.0, at=NOW)
    with pytest.raises(ValueError, match=match):
        index.nearest(0.0, 0.0, **kwargs)


def test_bulk_load_length_mismatch_raises() -> None:
    """Sequences of different lengths raise ValueError and load nothing."""
    index = VolunteerIndex()
    with pytest.raises(ValueError, match="same length"):
        index.bulk_load([1, 2], [0.0], [0.0, 1.0], [NOW, NOW])
    assert len(index) == 0


def test_limit_zero_raises_even_on_an_empty_index() -> None:
    """limit <= 0 is rejected whatever the index holds (it is a caller bug, not 'no one')."""
    with pytest.raises(ValueError, match="limit"):
        VolunteerIndex().nearest(0.0, 0.0, radius_m=10, limit=0)


@pytest.mark.parametrize("resolutions", [(), (9, 9), (8, 9), (16,)])
def test_invalid_resolutions_raise(resolutions: tuple[int, ...]) -> None:
    """Resolutions must be non-empty, strictly decreasing and within 0..15."""
    with pytest.raises(ValueError, match="resolutions"):
        VolunteerIndex(resolutions=resolutions)


def test_dense_and_sparse_ids_and_rebuilds_keep_bookkeeping() -> None:
    """Small, negative and huge ids (dense array vs dict) survive moves, removals and merges."""
    index = VolunteerIndex()
    index._merge_min = index._merge_at = 3  # merge often
    index._pending_max = 2  # and sort the delta into its run often
    ids = [0, 1, 5, 70_000, -3, 2**62, 2**40 + 1, 200_000]
    expected = {}
    for step in range(4):
        for i, vid in enumerate(ids):
            lat, lon = 10.0 + 0.001 * i + step * 1e-4, 20.0
            index.upsert(vid, lat, lon, at=NOW)
            expected[vid] = (lat, lon, NOW)
        index.remove(ids[step])
        expected.pop(ids[step])
        assert len(index) == len(expected)
        assert all(index.position(v) == expected[v] for v in expected)
        assert ids[step] not in index
        assert np.int64(ids[-1]) in index
        assert "x" not in index
    hits = index.nearest(10.0, 20.0, radius_m=10_000, limit=100)
    assert sorted(h.volunteer_id for h in hits) == sorted(expected)


def test_bulk_load_into_a_populated_index_moves_existing_ids() -> None:
    """bulk_load over existing ids replaces their positions (old ones never come back)."""
    index = VolunteerIndex()
    index.bulk_load([1, 2, 3], [0.0, 0.0, 0.0], [0.0, 0.001, 0.002], [NOW] * 3)
    index.upsert(4, 0.0, 0.003, at=NOW)
    index.bulk_load([2, 4, 5], [1.0, 1.0, 1.0], [0.0, 0.001, 0.002], [NOW] * 3)
    assert len(index) == 5
    near_origin = index.nearest(0.0, 0.0, radius_m=1_000, limit=10)
    assert [h.volunteer_id for h in near_origin] == [1, 3]
    assert [h.volunteer_id for h in index.nearest(1.0, 0.0, radius_m=1_000, limit=10)] == [2, 4, 5]


def test_reported_before_lists_only_live_positions_older_than_the_cutoff() -> None:
    from datetime import UTC, datetime, timedelta

    from geoindex import VolunteerIndex

    t0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    index = VolunteerIndex()
    index.upsert(1, 52.37, 4.89, at=t0 - timedelta(minutes=30))
    index.upsert(2, 52.37, 4.89, at=t0 - timedelta(minutes=1))
    index.upsert(3, 52.37, 4.89, at=t0 - timedelta(minutes=40))
    index.upsert(3, 52.38, 4.90, at=t0)  # moved since: its old slot is no longer live
    index.upsert(4, 52.37, 4.89, at=t0 - timedelta(hours=1))
    index.remove(4)
    assert sorted(index.reported_before(t0 - timedelta(minutes=15))) == [1]
    assert sorted(index.reported_before(t0 + timedelta(seconds=1))) == [1, 2, 3]


def test_bulk_load_uses_given_cells_and_computes_unknown_or_foreign_ones() -> None:
    """Stored cells skip the h3 call; 0 or a cell at another resolution is recomputed."""
    from datetime import UTC, datetime

    from geoindex import point_cell
    from geoindex._h3 import latlng_to_cell

    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    lats, lons = [52.37, 52.38, 52.39], [4.89, 4.90, 4.91]
    cells = [point_cell(lats[0], lons[0]), 0, latlng_to_cell(lats[2], lons[2], 9)]
    with_cells = VolunteerIndex()
    with_cells.bulk_load([1, 2, 3], lats, lons, [at] * 3, cells=cells)
    computed = VolunteerIndex()
    computed.bulk_load([1, 2, 3], lats, lons, [at] * 3)
    for lat, lon in zip(lats, lons, strict=True):
        assert with_cells.nearest(lat, lon, radius_m=3000, limit=3, now=at) == computed.nearest(
            lat, lon, radius_m=3000, limit=3, now=at
        )
