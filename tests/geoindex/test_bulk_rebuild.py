"""A bulk load into an empty index builds the same index as the general path, slot for slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from geoindex import VolunteerIndex, point_cell
from geoindex.index import _stable_order

from ._reference import Points, brute_force

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    keys=hnp.arrays(
        np.int64,
        st.integers(0, 300),
        elements=st.one_of(
            st.integers(0, 2**63 - 1),  # too wide to pack with the row number
            st.integers(0, 40),  # many ties
            st.integers(-5, 5),  # negative keys
            st.sampled_from([0x8C1F05A000001FF, 0x8C1F05A000003FF, 0x8C1F05A0001E1FF]),
        ),
    ),
    shift=st.integers(0, 62),
)
def test_stable_order_is_the_stable_argsort(keys: np.ndarray, shift: int) -> None:
    """The packed sort gives numpy's stable argsort for any keys (it falls back when it must)."""
    expected = np.argsort(keys, kind="stable")
    assert np.array_equal(_stable_order(keys), expected)
    narrow = keys & 0xFFFF
    narrow <<= shift  # equal low bits the packing drops, or too wide to pack
    assert np.array_equal(_stable_order(narrow), np.argsort(narrow, kind="stable"))


def test_stable_order_of_many_city_cells() -> None:
    """A million-row table of one city's cells takes the packed path and keeps ties in order."""
    rng = np.random.default_rng(3)
    n = 200_000
    lats = rng.uniform(59.22, 59.40, 2_000)
    lons = rng.uniform(17.85, 18.21, 2_000)
    cells = np.array([point_cell(a, b) for a, b in zip(lats, lons, strict=True)], np.int64)
    keys = cells[rng.integers(0, cells.shape[0], n)]  # every cell ~100 times: ties everywhere
    assert np.array_equal(_stable_order(keys), np.argsort(keys, kind="stable"))


def _columns(
    n: int, ids_high: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.choice(ids_high, n, replace=False).astype(np.int64)
    ids[: n // 50] *= -1  # a few ids the dense map cannot hold
    lats = rng.uniform(59.22, 59.40, n)
    lons = rng.uniform(17.85, 18.21, n)
    lats[: n // 10] = lats[n // 10 : 2 * (n // 10)]  # shared positions: equal keys
    lons[: n // 10] = lons[n // 10 : 2 * (n // 10)]
    ats = (np.datetime64(NOW.replace(tzinfo=None), "us") - rng.integers(0, 10**9, n)).astype(
        "datetime64[us]"
    )
    cells = np.array([point_cell(a, b) for a, b in zip(lats, lons, strict=True)], np.int64)
    cells[rng.random(n) < 0.05] = 0  # some rows without a stored cell
    return ids, lats, lons, ats, cells


def _general_path() -> VolunteerIndex:
    """An index that is not empty (one tombstoned slot), so bulk_load appends and compacts."""
    index = VolunteerIndex()
    index.upsert(-1, 0.0, 0.0, at=NOW)
    index.remove(-1)
    return index


def _slots(index: VolunteerIndex) -> dict[str, np.ndarray]:
    n = index._n
    return {
        "xyz": index._data[:, :n].copy(),
        "ids": index._ids[:n].copy(),
        "lat": index._lat[:n].copy(),
        "lon": index._lon[:n].copy(),
        "ts": index._ts[:n].copy(),
        "key": index._key[:n].copy(),
    }


@pytest.mark.parametrize(
    ("n", "ids_high", "seed"),
    [(1, 1, 0), (5_000, 5_000, 1), (20_000, 10**6, 2), (3_000, 2**40, 3)],
)
def test_empty_index_bulk_load_matches_the_general_path(n: int, ids_high: int, seed: int) -> None:
    """Slots, keys, id map and answers equal those of appending the rows and compacting."""
    ids, lats, lons, ats, cells = _columns(n, ids_high, seed)
    fast = VolunteerIndex()
    fast.bulk_load(ids, lats, lons, ats, cells)
    general = _general_path()
    general.bulk_load(ids, lats, lons, ats, cells)
    got, want = _slots(fast), _slots(general)
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    assert np.all(np.diff(got["key"]) >= 0)
    assert (fast._m, fast._n, fast._dead, fast._cap, fast._merge_at, len(fast)) == (
        general._m,
        general._n,
        general._dead,
        general._cap,
        general._merge_at,
        len(general),
    )
    for vid in ids.tolist():
        assert fast.position(vid) == general.position(vid)
        assert fast._slot(vid) == general._slot(vid)
    points: Points = {
        vid: (a, b, NOW - timedelta(microseconds=int(age)))
        for vid, a, b, age in zip(
            ids.tolist(),
            lats.tolist(),
            lons.tolist(),
            (np.datetime64(NOW.replace(tzinfo=None), "us") - ats).astype(np.int64).tolist(),
            strict=True,
        )
    }
    rng = np.random.default_rng(seed + 100)
    for _ in range(30):
        lat, lon = float(rng.uniform(59.22, 59.40)), float(rng.uniform(17.85, 18.21))
        kw = {"radius_m": float(rng.uniform(50, 3_000)), "limit": int(rng.integers(1, 40))}
        fresh = {"max_age_s": 5e8, "now": NOW}
        want_hits = brute_force(points, lat, lon, **kw, **fresh)  # type: ignore[arg-type]
        assert fast.nearest(lat, lon, **kw, **fresh) == want_hits  # type: ignore[arg-type]
        assert general.nearest(lat, lon, **kw, **fresh) == want_hits  # type: ignore[arg-type]


def test_an_index_loaded_in_bulk_takes_updates_like_any_other() -> None:
    """After the direct load, upserts, removals and compactions behave as on the general path."""
    ids, lats, lons, ats, cells = _columns(6_000, 6_000, 7)
    fast = VolunteerIndex()
    fast.bulk_load(ids, lats, lons, ats, cells)
    general = _general_path()
    general.bulk_load(ids, lats, lons, ats, cells)
    rng = np.random.default_rng(8)
    for step in range(9_000):  # enough to compact more than once
        vid = int(rng.integers(0, 6_500))
        if step % 7 == 0:
            fast.remove(vid)
            general.remove(vid)
        else:
            lat, lon = float(rng.uniform(59.22, 59.40)), float(rng.uniform(17.85, 18.21))
            fast.upsert(vid, lat, lon, at=NOW)
            general.upsert(vid, lat, lon, at=NOW)
    assert len(fast) == len(general)
    for name, got in _slots(fast).items():
        assert np.array_equal(got, _slots(general)[name], equal_nan=True), name
    for _ in range(20):
        lat, lon = float(rng.uniform(59.22, 59.40)), float(rng.uniform(17.85, 18.21))
        assert fast.nearest(lat, lon, radius_m=800, limit=20) == general.nearest(
            lat, lon, radius_m=800, limit=20
        )
