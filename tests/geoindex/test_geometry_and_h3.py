"""Tests of the distance function, the cell-size bound and the typed h3 wrapper."""

from __future__ import annotations

import math

import numpy as np
import pytest
from h3.api import basic_int as raw_h3

from geoindex import EARTH_RADIUS_M, _h3, haversine_m
from geoindex._geometry import circumradius_bound_m, unit_vector, unit_vectors
from geoindex.index import DEFAULT_RESOLUTIONS, _cell_bounds, _Level


def _trig_haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def test_chord_form_agrees_with_textbook_haversine() -> None:
    """The chord form equals the trigonometric haversine to 1e-6 m over short and long ranges."""
    rng = np.random.default_rng(5)
    lat = rng.uniform(-90, 90, 2_000)
    lon = rng.uniform(-180, 180, 2_000)
    for i in range(0, 2_000, 2):
        for scale in (1e-5, 1e-2, 1.0):
            la2 = float(np.clip(lat[i] + scale * (lat[i + 1] - lat[i]), -90, 90))
            lo2 = float(lon[i] + scale * (lon[i + 1] - lon[i]))
            got = float(haversine_m(float(lat[i]), float(lon[i]), [la2], [lo2])[0])
            assert got == pytest.approx(_trig_haversine(lat[i], lon[i], la2, lo2), abs=1e-6)


def test_scalar_and_vector_unit_vectors_are_bit_identical() -> None:
    """upsert (libm) and bulk_load/reference (numpy) produce the same unit vectors, bit for bit."""
    rng = np.random.default_rng(6)
    lat = rng.uniform(-90, 90, 100_000)
    lon = rng.uniform(-180, 180, 100_000)
    vec = unit_vectors(lat, lon)
    scalar = np.array([unit_vector(a, b) for a, b in zip(lat.tolist(), lon.tolist(), strict=True)])
    assert np.array_equal(vec.T, scalar)


def test_distance_does_not_depend_on_array_position() -> None:
    """A point's distance is the same alone or inside a large array (no blocked arithmetic)."""
    rng = np.random.default_rng(7)
    lat = rng.uniform(52, 53, 1_001)
    lon = rng.uniform(4, 5, 1_001)
    full = haversine_m(52.5, 4.5, lat, lon)
    single = np.array(
        [haversine_m(52.5, 4.5, lat[i : i + 1], lon[i : i + 1])[0] for i in range(1_001)]
    )
    assert np.array_equal(full, single)


def _circumradius_m(cell: int) -> float:
    c = _h3.cell_to_latlng(cell)
    return max(_trig_haversine(*c, *v) for v in _h3.cell_to_boundary(cell))


@pytest.mark.parametrize("res", DEFAULT_RESOLUTIONS)
def test_circumradius_bound_holds(res: int) -> None:
    """No sampled cell (random and around all pentagons) reaches past the per-res bound."""
    bound = circumradius_bound_m(res)
    rng = np.random.default_rng(res)
    cells = [
        _h3.latlng_to_cell(math.degrees(math.asin(z)), lon, res)
        for z, lon in zip(rng.uniform(-1, 1, 3_000), rng.uniform(-180, 180, 3_000), strict=True)
    ]
    cells += [c for p in _h3.get_pentagons(res) for c in _h3.grid_disk(p, 3)]
    worst = max(_circumradius_m(c) for c in cells)
    assert worst <= bound
    assert worst > 0.85 * bound  # the bound is tight enough to be useful


def _random_cells(res: int, n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    cells = [
        _h3.latlng_to_cell(math.degrees(math.asin(z)), lon, res)
        for z, lon in zip(rng.uniform(-1, 1, n), rng.uniform(-180, 180, n), strict=True)
    ]
    return cells + [c for p in _h3.get_pentagons(res) for c in _h3.grid_disk(p, 2)]


@pytest.mark.parametrize(("coarse", "fine"), [(12, 12), (11, 12), (9, 12), (7, 11), (0, 5)])
def test_level_bit_arithmetic_matches_h3(coarse: int, fine: int) -> None:
    """Parent-by-bits equals h3's, and a cell's key range holds exactly its descendants."""
    lv = _Level(coarse, fine)
    cells = _random_cells(fine, 500, coarse)
    for key in cells:
        parent = (key | lv.mask) & lv.and_mask | lv.res_bits
        assert parent == _h3.cell_to_parent(key, coarse)
        lo, hi_plus = _cell_bounds([parent], lv)
        assert lo <= key < hi_plus
        for other in _h3.grid_ring(parent, 1):
            o_lo, o_hi_plus = _cell_bounds([other], lv)
            assert not o_lo <= key < o_hi_plus
    disk = _h3.grid_disk(_h3.cell_to_parent(cells[0], coarse), 1)
    bounds = _cell_bounds(disk, lv)
    assert bounds == sorted(bounds)
    assert len(bounds) % 2 == 0


@pytest.mark.parametrize(("coarse", "fine"), [(11, 12), (10, 12), (9, 12), (5, 8), (3, 8)])
def test_region_bound_holds(coarse: int, fine: int) -> None:
    """Points are within rmax of the centre of their key's ancestor (descendant regions)."""
    lv = _Level(coarse, fine)
    rng = np.random.default_rng(coarse * 100 + fine)
    centres = [_h3.cell_to_latlng(c) for c in _random_cells(coarse, 300, fine)]
    worst = 0.0
    for clat, clon in centres:
        # Points spread over the cell's neighbourhood, so many land near region edges.
        spread = 2.5 * lv.rmax / EARTH_RADIUS_M
        lats = np.clip(clat + np.degrees(rng.uniform(-spread, spread, 40)), -90, 90)
        coslat = max(math.cos(math.radians(clat)), 1e-3)
        lons = clon + np.degrees(rng.uniform(-spread, spread, 40)) / coslat
        lons = (lons + 180.0) % 360.0 - 180.0
        for a, b in zip(lats.tolist(), lons.tolist(), strict=True):
            key = _h3.latlng_to_cell(a, b, fine)
            parent = (key | lv.mask) & lv.and_mask | lv.res_bits
            worst = max(worst, _trig_haversine(a, b, *_h3.cell_to_latlng(parent)) / lv.rmax)
    assert worst <= 1.0


def test_wrapper_returns_sorted_ints_matching_h3() -> None:
    """The wrapper uses basic_int (cells are ints), sorts collections, and matches raw h3."""
    cell = _h3.latlng_to_cell(52.37, 4.89, 9)
    assert isinstance(cell, int)
    assert cell == raw_h3.latlng_to_cell(52.37, 4.89, 9)
    assert _h3.grid_disk(cell, 2) == sorted(raw_h3.grid_disk(cell, 2))
    assert _h3.grid_ring(cell, 2) == sorted(raw_h3.grid_ring(cell, 2))
    assert len(_h3.get_pentagons(5)) == 12
    assert all(_h3.is_pentagon(p) for p in _h3.get_pentagons(5))
    assert _h3.get_resolution(cell) == 9
    assert _h3.is_valid_cell(cell)
    assert len(_h3.get_res0_cells()) == 122


def test_cells_fit_a_signed_bigint() -> None:
    """Every cell index (top bit reserved) round-trips through a signed 64-bit integer."""
    cells = [*_h3.get_res0_cells(), *_h3.get_pentagons(15), _h3.latlng_to_cell(-89.9, 179.9, 15)]
    as_bigint = np.array(cells, dtype=np.int64)
    assert (as_bigint > 0).all()
    assert as_bigint.tolist() == cells
