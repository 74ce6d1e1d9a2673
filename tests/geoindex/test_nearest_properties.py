"""Property tests: ``VolunteerIndex.nearest`` equals a brute-force haversine scan, exactly."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoindex import DEFAULT_RESOLUTIONS, EARTH_RADIUS_M, VolunteerIndex, _h3

from ._reference import Points, brute_force

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

# Places where cell geometry is awkward: a city, the antimeridian, both poles, pentagons at the
# resolutions the index uses, and an icosahedron-face-crossing Class III area.
_PENTAGON_CENTRES = [_h3.cell_to_latlng(p) for r in (6, 9, 11) for p in _h3.get_pentagons(r)[::4]]
CENTRES = [
    (52.37, 4.89),
    (0.0, 180.0),
    (-16.5, -179.999),
    (65.0, 179.9995),
    (89.9995, 12.0),
    (-90.0, 0.0),
    (-89.99, -170.0),
    *_PENTAGON_CENTRES,
]
RESOLUTION_SETS = [DEFAULT_RESOLUTIONS, (13, 12), (9,), (15, 12, 8, 4), (10, 7), (11, 10, 9)]


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """Move a point by metres (approximately; exactness does not matter here), kept valid."""
    new_lat = lat + math.degrees(north_m / EARTH_RADIUS_M)
    if new_lat > 90.0:
        new_lat, lon = 180.0 - new_lat, lon + 180.0
    elif new_lat < -90.0:
        new_lat, lon = -180.0 - new_lat, lon + 180.0
    coslat = max(math.cos(math.radians(new_lat)), 1e-6)
    new_lon = lon + math.degrees(east_m / (EARTH_RADIUS_M * coslat))
    new_lon = (new_lon + 180.0) % 360.0 - 180.0
    return max(-90.0, min(90.0, new_lat)), new_lon


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    """A centre, a cloud of volunteers around it (with shared points) and a query."""
    lat0, lon0 = draw(st.sampled_from(CENTRES))
    spread = draw(st.sampled_from([30.0, 300.0, 3_000.0, 20_000.0]))
    n = draw(st.integers(0, 120))
    offsets = st.floats(-spread, spread, allow_nan=False)
    base = [_offset(lat0, lon0, draw(offsets), draw(offsets)) for _ in range(min(n, 40))]
    pts: list[tuple[float, float]] = []
    for _ in range(n):
        if base and draw(st.integers(0, 3)) == 0:
            pts.append(draw(st.sampled_from(base)))  # shared point
        else:
            pts.append(_offset(lat0, lon0, draw(offsets), draw(offsets)))
    ages = st.integers(0, 600)
    ids = draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n, unique=True))
    qlat, qlon = draw(
        st.one_of(
            st.sampled_from(pts) if pts else st.just((lat0, lon0)),
            st.builds(lambda a, b: _offset(lat0, lon0, a, b), offsets, offsets),
        )
    )
    radius = draw(
        st.one_of(
            st.floats(0.0, 2 * spread),
            st.sampled_from([0.0, 400.0, 1_300.0, 5_000.0, 60_000.0, 3_000_000.0]),
        )
    )
    return {
        "points": {
            vid: (lat, lon, NOW - timedelta(seconds=draw(ages)))
            for vid, (lat, lon) in zip(ids, pts, strict=True)
        },
        "query": (qlat, qlon),
        "radius": radius,
        "limit": draw(st.sampled_from([1, 2, 5, 30, 200])),
        "resolutions": draw(st.sampled_from(RESOLUTION_SETS)),
    }


def _load(points: Points, resolutions: tuple[int, ...], *, bulk: bool) -> VolunteerIndex:
    index = VolunteerIndex(resolutions=resolutions)
    if bulk:
        ids = list(points)
        index.bulk_load(
            ids,
            [points[i][0] for i in ids],
            [points[i][1] for i in ids],
            [points[i][2] for i in ids],
        )
    else:
        for vid, (lat, lon, at) in points.items():
            index.upsert(vid, lat, lon, at=at)
    return index


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenarios(), st.booleans())
def test_matches_brute_force(sc: dict, bulk: bool) -> None:  # type: ignore[type-arg]
    """Results equal the brute-force scan (ids, distances bit for bit, order) everywhere."""
    points: Points = sc["points"]
    index = _load(points, sc["resolutions"], bulk=bulk)
    lat, lon = sc["query"]
    got = index.nearest(lat, lon, radius_m=sc["radius"], limit=sc["limit"])
    assert got == brute_force(points, lat, lon, radius_m=sc["radius"], limit=sc["limit"])


@SETTINGS
@given(scenarios(), st.data())
def test_matches_brute_force_with_stale_and_excluded(sc: dict, data: st.DataObject) -> None:  # type: ignore[type-arg]
    """Stale positions (now - at > max_age_s) and excluded ids are skipped, before truncation."""
    points: Points = sc["points"]
    index = _load(points, sc["resolutions"], bulk=False)
    ids = sorted(points)
    exclude = set(data.draw(st.lists(st.sampled_from(ids), max_size=60))) if ids else set()
    if data.draw(st.booleans()):
        exclude |= set(range(40))  # ids that are absent are harmless
    max_age = data.draw(st.sampled_from([None, 0.0, 60.0, 300.0, 599.999999, math.inf]))
    lat, lon = sc["query"]
    kwargs = {"radius_m": sc["radius"], "limit": sc["limit"], "exclude": exclude}
    got = index.nearest(lat, lon, max_age_s=max_age, now=NOW, **kwargs)
    assert got == brute_force(points, lat, lon, max_age_s=max_age, now=NOW, **kwargs)


@SETTINGS
@given(scenarios(), st.data())
def test_matches_brute_force_after_moves_and_removals(sc: dict, data: st.DataObject) -> None:  # type: ignore[type-arg]
    """Moving volunteers (upsert of a known id) and removing them keeps results exact."""
    points = dict(sc["points"])
    index = _load(points, sc["resolutions"], bulk=data.draw(st.booleans()))
    if data.draw(st.booleans()):
        # Re-sort into the main region after every few updates (exercises tombstones + merges).
        index._merge_min = index._merge_at = data.draw(st.integers(1, 8))
    # Sort pending delta slots into the sorted run often (or never): both delta paths.
    index._pending_max = data.draw(st.sampled_from([1, 2, 5, 1_000]))
    ids = sorted(points)
    lat, lon = sc["query"]
    for _ in range(data.draw(st.integers(0, 40))):
        if not ids:
            break
        vid = data.draw(st.sampled_from(ids))
        if data.draw(st.booleans()):
            index.remove(vid)
            points.pop(vid, None)
        else:
            north = data.draw(st.floats(-3_000, 3_000))
            east = data.draw(st.floats(-3_000, 3_000))
            new_lat, new_lon = _offset(lat, lon, north, east)
            at = NOW - timedelta(seconds=data.draw(st.integers(0, 100)))
            index.upsert(vid, new_lat, new_lon, at=at)
            points[vid] = (new_lat, new_lon, at)
    assert len(index) == len(points)
    assert all(index.position(v) == points[v] for v in points)
    got = index.nearest(lat, lon, radius_m=sc["radius"], limit=sc["limit"])
    assert got == brute_force(points, lat, lon, radius_m=sc["radius"], limit=sc["limit"])


def test_dense_city_matches_brute_force() -> None:
    """20,000 volunteers in a city, clustered: 200 random queries match the brute force."""
    rng = np.random.default_rng(3)
    n = 20_000
    lat = 52.37 + rng.normal(0, 0.01, n) * rng.choice([0.2, 1.0, 4.0], n)
    lon = 4.89 + rng.normal(0, 0.015, n) * rng.choice([0.2, 1.0, 4.0], n)
    at = [NOW] * n
    index = VolunteerIndex()
    index.bulk_load(np.arange(n), lat, lon, at)
    points = {i: (float(lat[i]), float(lon[i]), NOW) for i in range(n)}
    for qlat, qlon, radius in zip(
        52.37 + rng.normal(0, 0.03, 200),
        4.89 + rng.normal(0, 0.04, 200),
        rng.choice([50.0, 400.0, 1_300.0, 5_000.0], 200),
        strict=True,
    ):
        got = index.nearest(float(qlat), float(qlon), radius_m=float(radius), limit=30)
        assert got == brute_force(points, float(qlat), float(qlon), radius_m=radius, limit=30)


def test_radius_equal_to_a_distance_is_inclusive() -> None:
    """A volunteer exactly at ``radius_m`` (same float) is returned; ties sort by id."""
    index = VolunteerIndex()
    index.upsert(7, 52.3701, 4.8901, at=NOW)
    index.upsert(3, 52.3701, 4.8901, at=NOW)
    index.upsert(5, 52.3702, 4.8901, at=NOW)
    d = index.nearest(52.37, 4.89, radius_m=1_000, limit=3)
    assert [h.volunteer_id for h in d] == [3, 7, 5]
    exact = index.nearest(52.37, 4.89, radius_m=d[0].distance_m, limit=10)
    assert [h.volunteer_id for h in exact] == [3, 7]


def test_many_volunteers_on_one_point() -> None:
    """500 volunteers sharing one point: limit applies by id order at equal distance."""
    index = VolunteerIndex()
    index.bulk_load(list(range(500, 0, -1)), [10.0] * 500, [20.0] * 500, [NOW] * 500)
    hits = index.nearest(10.0, 20.0, radius_m=0.0, limit=30)
    assert [h.volunteer_id for h in hits] == list(range(1, 31))
    assert all(h.distance_m == 0.0 for h in hits)


def test_empty_index_and_empty_area() -> None:
    """No volunteers, or none within the radius, gives an empty list."""
    index = VolunteerIndex()
    assert index.nearest(0.0, 0.0, radius_m=5_000, limit=30) == []
    index.upsert(1, 52.0, 4.0, at=NOW)
    assert index.nearest(-33.0, 151.0, radius_m=5_000, limit=30) == []
    assert index.nearest(-33.0, 151.0, radius_m=25_000_000, limit=30)[0].volunteer_id == 1
