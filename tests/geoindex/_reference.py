"""Brute-force reference scan the index must match exactly."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

import numpy as np

from geoindex import Hit, haversine_m

Points = Mapping[int, tuple[float, float, datetime]]


def brute_force(
    points: Points,
    lat: float,
    lon: float,
    *,
    radius_m: float,
    limit: int,
    max_age_s: float | None = None,
    now: datetime | None = None,
    exclude: Collection[int] = (),
) -> list[Hit]:
    """Scan every point with the reference distance; the spec ``nearest`` must match exactly."""
    if not points or limit == 0:
        return []
    ids = list(points)
    lats = np.array([points[i][0] for i in ids])
    lons = np.array([points[i][1] for i in ids])
    dist = haversine_m(lat, lon, lats, lons).tolist()
    rows = []
    for vid, d in zip(ids, dist, strict=True):
        if d > radius_m or vid in exclude:
            continue
        if max_age_s is not None:
            assert now is not None
            if (now - points[vid][2]).total_seconds() > max_age_s:
                continue
        rows.append((d, vid))
    rows.sort()
    return [Hit(vid, d) for d, vid in rows[:limit]]
