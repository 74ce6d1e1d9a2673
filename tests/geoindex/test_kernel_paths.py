"""The compiled query paths (geoindex._kernels) against the brute-force scan, path by path.

The property tests reach every path at random; these make sure each one is taken (checked
through the kernel's status) on data shaped like the benchmark's, plus the kernel's building
blocks against numpy.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from geoindex import VolunteerIndex, _kernels
from geoindex import index as index_module

from ._reference import Points, brute_force

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
Paths = collections.Counter[tuple[int, int]]


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Paths:
    """Count ``(status, k)`` of every kernel query (``k``: 1 = in order, for DONE)."""
    seen: Paths = collections.Counter()
    real = index_module._query_kernel

    def spy(*args: object) -> tuple[int, int, int, int, object, object]:
        out = real(*args)  # type: ignore[arg-type]
        seen[out[0], out[3] if out[0] == _kernels.DONE else -1] += 1
        return out

    monkeypatch.setattr(index_module, "_query_kernel", spy)
    return seen


def _city(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Clustered points (a dense centre, a long tail) over ~15 x 15 km, as in the benchmark."""
    k = rng.choice(3, n, p=[0.6, 0.25, 0.15])
    centres = np.array([(52.37, 4.89), (52.35, 4.92), (52.39, 4.84)])
    r_m = rng.lognormal(np.log(900.0), 0.9, n)
    th = rng.uniform(0.0, 2.0 * np.pi, n)
    lat = centres[k, 0] + r_m * np.sin(th) / 111_320.0
    lon = centres[k, 1] + r_m * np.cos(th) / 68_000.0
    tail = rng.random(n) < 0.1
    lat[tail] = rng.uniform(52.30, 52.44, int(tail.sum()))
    lon[tail] = rng.uniform(4.75, 5.00, int(tail.sum()))
    return lat, lon


def _check_queries(
    index: VolunteerIndex,
    points: Points,
    rng: np.random.Generator,
    count: int,
    kwargs: Callable[[], dict[str, object]],
) -> None:
    for _ in range(count):
        lat = float(rng.uniform(52.30, 52.44))
        lon = float(rng.uniform(4.75, 5.00))
        kw = kwargs()
        assert index.nearest(lat, lon, **kw) == brute_force(points, lat, lon, **kw)  # type: ignore[arg-type]


def test_city_queries_take_every_compiled_path(paths: Paths) -> None:
    """Cold cells, one-batch, two-batch (ring 2 in the kernel) and Python-finished queries."""
    rng = np.random.default_rng(5)
    n = 30_000
    lat, lon = _city(n, rng)
    ids = rng.permutation(n) + 1
    index = VolunteerIndex()
    index.bulk_load(ids, lat, lon, [NOW] * n)
    points = {int(v): (float(a), float(b), NOW) for v, a, b in zip(ids, lat, lon, strict=True)}
    index_module._TABLES.clear()  # every query level cell starts cold: MISS, then DONE

    def kwargs() -> dict[str, object]:
        return {
            "radius_m": float(rng.choice([50.0, 400.0, 1_300.0, 5_000.0])),
            "limit": int(rng.choice([1, 10, 30, 100])),
        }

    _check_queries(index, points, rng, 400, kwargs)
    assert paths[_kernels.MISS, -1] > 0
    assert paths[_kernels.DONE, 1] > 300
    assert paths[_kernels.MORE, -1] > 0


def test_city_queries_with_stale_excluded_and_delta(paths: Paths) -> None:
    """Freshness, exclusions (short and long lists) and delta slots (run and pending)."""
    rng = np.random.default_rng(6)
    n = 20_000
    lat, lon = _city(n, rng)
    ages = rng.integers(0, 600, n)
    ats = [NOW - timedelta(seconds=int(a)) for a in ages]
    index = VolunteerIndex()
    index.bulk_load(np.arange(n), lat, lon, ats)
    points = {i: (float(lat[i]), float(lon[i]), ats[i]) for i in range(n)}
    index._pending_max = 64  # a sorted run and pending slots, both non-empty below
    for i in rng.choice(n, 3_000, replace=False).tolist():
        new_lat = float(lat[i] + rng.normal(0, 3e-4))
        new_lon = float(lon[i] + rng.normal(0, 4e-4))
        at = NOW - timedelta(seconds=int(rng.integers(0, 600)))
        index.upsert(i, new_lat, new_lon, at=at)
        points[i] = (new_lat, new_lon, at)
    assert index._run_keys.shape[0] > 0
    assert index._n > index._run_end

    def kwargs() -> dict[str, object]:
        size = int(rng.choice([0, 5, 200]))
        return {
            "radius_m": float(rng.choice([400.0, 1_300.0])),
            "limit": 30,
            "max_age_s": float(rng.choice([60.0, 300.0, math.inf])),
            "now": NOW,
            "exclude": set(rng.integers(0, n, size).tolist()),
        }

    _check_queries(index, points, rng, 300, kwargs)
    assert paths[_kernels.DONE, 1] > 200


def test_chords_too_close_to_order_go_through_the_python_sort(paths: Paths) -> None:
    """Chords within ORDER_GAP of each other: numpy's arcsin decides the order, then ids."""
    index = VolunteerIndex()
    # 40 volunteers ~100 m east, each one ulp of longitude apart: distinct chords, (nearly)
    # equal distances, ids in the reverse order of the chords.
    lons = [0.0009 + i * 2.2e-19 for i in range(40)]
    index.bulk_load(list(range(40, 0, -1)), [0.0] * 40, lons, [NOW] * 40)
    points = {40 - i: (0.0, lons[i], NOW) for i in range(40)}
    for limit in (5, 40):
        got = index.nearest(0.0, 0.0, radius_m=1_000, limit=limit)
        assert got == brute_force(points, 0.0, 0.0, radius_m=1_000, limit=limit)
    assert paths[_kernels.DONE, 0] == 2


def test_cell_table_growth_and_reset_keep_results_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared cell table grows, and is emptied when full, under a live index."""
    monkeypatch.setattr(index_module, "_TABLE_MAX", 300)  # rows; 256 at first, then reset
    monkeypatch.setattr(index_module, "_TABLES", {})
    rng = np.random.default_rng(7)
    n = 5_000
    lat = rng.uniform(52.0, 52.2, n)  # ~600 res-8 cells, the coarsest level: too many to warm
    lon = rng.uniform(4.0, 4.3, n)
    index = VolunteerIndex()
    index.bulk_load(np.arange(n), lat, lon, [NOW] * n)
    points = {i: (float(lat[i]), float(lon[i]), NOW) for i in range(n)}
    resets = 0
    for _ in range(400):
        before = index._table.n
        qlat = float(rng.uniform(52.0, 52.2))
        qlon = float(rng.uniform(4.0, 4.3))
        got = index.nearest(qlat, qlon, radius_m=3_000, limit=10)
        assert got == brute_force(points, qlat, qlon, radius_m=3_000, limit=10)
        resets += index._table.n < before
    assert resets > 0


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 100, 1_000])
def test_merge_sorts_match_numpy(n: int) -> None:
    """The kernels' own sorts (no numpy sort in compiled code) order like numpy's."""
    rng = np.random.default_rng(n)
    keys = rng.integers(-(2**62), 2**62, n).astype(np.int64)
    assert (_kernels._sort_keys_jit(keys.copy()) == np.sort(keys)).all()
    c2 = rng.integers(0, 20, n).astype(np.float64)  # many equal chords: the id decides
    vids = rng.permutation(n).astype(np.int64)
    got_c2, got_v = _kernels._sort_pairs_jit(c2.copy(), vids.copy())
    order = np.lexsort((vids, c2))
    assert (got_c2 == c2[order]).all()
    assert (got_v == vids[order]).all()
