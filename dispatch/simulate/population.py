"""Volunteer populations: a density over the incidents' area, densities by area, or positions.

Areas are polygons of (lat, lon) vertices; an H3 cell is its boundary polygon. Points are
drawn uniformly inside each area (a bounding box and a ray-casting test), a Poisson number
of them per area for a density, so two draws of one population differ as two days of a
city do. Areas are measured on a local flat projection (well under 0.1% off at city scale).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from geoindex import EARTH_RADIUS_M, cell_to_boundary, grid_disk, latlng_to_cell

F64 = npt.NDArray[np.float64]
Ring = tuple[tuple[float, float], ...]

AREA_RES: Final = 7
"""H3 resolution of the areas results are reported by (about 5 km² a cell)."""
MAX_VOLUNTEERS: Final = 2_000_000


class PopulationError(ValueError):
    """A population file or setting that cannot be used; says where."""


@dataclass(frozen=True, slots=True)
class Area:
    ring: Ring
    per_km2: float

    @property
    def km2(self) -> float:
        return ring_km2(self.ring)


@dataclass(frozen=True, slots=True)
class Volunteers:
    lat: F64
    lon: F64
    professional: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.lat)


def ring_km2(ring: Ring) -> float:
    lat0 = math.radians(sum(p[0] for p in ring) / len(ring))
    xs = [math.radians(p[1]) * math.cos(lat0) * EARTH_RADIUS_M for p in ring]
    ys = [math.radians(p[0]) * EARTH_RADIUS_M for p in ring]
    twice = sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(ring)))
    return abs(twice) / 2 / 1e6


def inside(ring: Ring, lat: F64, lon: F64) -> npt.NDArray[np.bool_]:
    """Which points lie inside the polygon (even-odd rule)."""
    result = np.zeros(len(lat), dtype=bool)
    n = len(ring)
    for i in range(n):
        (y1, x1), (y2, x2) = ring[i], ring[i - 1]
        crosses = (y1 > lat) != (y2 > lat)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (x2 - x1) * (lat - y1) / (y2 - y1) + x1
        result ^= crosses & (lon < x_at)
    return result


def uniform_in(ring: Ring, count: int, rng: np.random.Generator) -> tuple[F64, F64]:
    """``count`` points uniform in the polygon (uniform in the local projection)."""
    lats = np.array([p[0] for p in ring])
    lons = np.array([p[1] for p in ring])
    got_lat: list[F64] = []
    got_lon: list[F64] = []
    have = 0
    while have < count:
        batch = max(16, int((count - have) * 1.6))
        lat = rng.uniform(lats.min(), lats.max(), batch)
        lon = rng.uniform(lons.min(), lons.max(), batch)
        keep = inside(ring, lat, lon)
        got_lat.append(lat[keep])
        got_lon.append(lon[keep])
        have += int(keep.sum())
    return np.concatenate(got_lat)[:count], np.concatenate(got_lon)[:count]


def cell_ring(cell: int) -> Ring:
    return tuple(cell_to_boundary(cell))


def served_cells(points: Sequence[tuple[float, float]], *, ring: int = 1) -> list[int]:
    """The res-7 cells holding the points plus ``ring`` cells around them (the served area)."""
    cells = {latlng_to_cell(lat, lon, AREA_RES) for lat, lon in points}
    around = {c for cell in cells for c in grid_disk(cell, ring)}
    return sorted(around)


@dataclass(frozen=True, slots=True)
class Population:
    """Where volunteers stand: areas with densities, or fixed positions (then ``areas`` is ())."""

    areas: tuple[Area, ...] = ()
    positions: tuple[F64, F64] | None = None
    tiers: npt.NDArray[np.bool_] | None = None
    """Per fixed position: may go into homes (professional tier)."""
    professional_share: float = 1.0
    scale: float = 1.0
    description: str = ""

    def expected_count(self) -> float:
        if self.positions is not None:
            return len(self.positions[0]) * min(self.scale, 1.0)
        return sum(a.per_km2 * a.km2 for a in self.areas) * self.scale

    def density_km2(self, area_km2: float) -> float:
        return self.expected_count() / area_km2 if area_km2 else 0.0

    def scaled(self, factor: float) -> Population:
        """The same population with ``factor`` times the volunteers (positions: thinned, ≤ 1)."""
        return replace(self, scale=self.scale * factor)

    def draw(self, rng: np.random.Generator) -> Volunteers:
        if self.positions is not None:
            lat, lon = self.positions
            keep = rng.random(len(lat)) < min(self.scale, 1.0)
            tiers = self.tiers if self.tiers is not None else self._tiers(rng, len(lat))
            return Volunteers(lat[keep].copy(), lon[keep].copy(), tiers[keep].copy())
        lats: list[F64] = []
        lons: list[F64] = []
        for area in self.areas:
            count = int(rng.poisson(area.per_km2 * self.scale * area.km2))
            if count:
                lat, lon = uniform_in(area.ring, count, rng)
                lats.append(lat)
                lons.append(lon)
        lat = np.concatenate(lats) if lats else np.empty(0)
        lon = np.concatenate(lons) if lons else np.empty(0)
        if len(lat) > MAX_VOLUNTEERS:
            raise PopulationError(f"more than {MAX_VOLUNTEERS:,} volunteers drawn")
        return Volunteers(lat, lon, self._tiers(rng, len(lat)))

    def _tiers(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.bool_]:
        if self.professional_share >= 1.0:
            return np.ones(n, dtype=bool)
        return rng.random(n) < self.professional_share


def uniform_density(per_km2: float, cells: Sequence[int]) -> Population:
    if not (math.isfinite(per_km2) and per_km2 >= 0):
        raise PopulationError("the density must be a number of volunteers per km² (>= 0)")
    areas = tuple(Area(cell_ring(c), per_km2) for c in cells)
    km2 = sum(a.km2 for a in areas)
    return Population(
        areas=areas,
        description=f"{per_km2:g} volunteers/km² over {len(cells)} H3 res-7 cells "
        f"({km2:.0f} km²) around the incidents",
    )


def _density(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PopulationError(f"{where}: density_per_km2 must be a number") from None
    if not (math.isfinite(number) and 0 <= number <= 100_000):
        raise PopulationError(f"{where}: density_per_km2 must be between 0 and 100000")
    return number


def areas_from_csv(text: str) -> Population:
    """CSV ``h3_cell,density_per_km2`` (a cell of any resolution, hexadecimal)."""
    areas = []
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        where = f"line {line}"
        try:
            cell = int(str(row["h3_cell"]).strip(), 16)
            ring = cell_ring(cell)
        except (KeyError, ValueError, TypeError):
            raise PopulationError(f"{where}: h3_cell must be an H3 cell in hexadecimal") from None
        areas.append(Area(ring, _density(row.get("density_per_km2"), where)))
    if not areas:
        raise PopulationError("the density file holds no rows (h3_cell,density_per_km2)")
    return Population(areas=tuple(areas), description=f"densities for {len(areas)} H3 cells")


def areas_from_geojson(data: Any) -> Population:
    """A FeatureCollection of Polygons/MultiPolygons with a ``density_per_km2`` property."""
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise PopulationError("/features: a GeoJSON FeatureCollection is expected")
    areas = []
    for i, feature in enumerate(data["features"]):
        where = f"/features/{i}"
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict) or not isinstance(props, dict):
            raise PopulationError(f"{where}: a Feature with geometry and properties is expected")
        density = _density(props.get("density_per_km2"), f"{where}/properties")
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        polygons = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else None
        if not isinstance(polygons, list):
            raise PopulationError(f"{where}/geometry: Polygon or MultiPolygon expected")
        for polygon in polygons:
            try:
                ring = tuple((float(lat), float(lon)) for lon, lat, *_ in polygon[0])
            except (TypeError, ValueError, IndexError):
                raise PopulationError(f"{where}/geometry: bad coordinates") from None
            if len(ring) < 4 or not all(-90 <= a <= 90 and -180 <= b <= 180 for a, b in ring):
                raise PopulationError(f"{where}/geometry: a ring needs 4+ valid positions")
            areas.append(Area(ring, density))
    if not areas:
        raise PopulationError("/features: no areas")
    return Population(areas=tuple(areas), description=f"densities for {len(areas)} areas")


def positions_from_csv(text: str) -> Population:
    """An agency's anonymised positions: CSV ``lat,lon`` and optionally ``tier``."""
    lats, lons, tiers = [], [], []
    reader = csv.DictReader(io.StringIO(text))
    for line, row in enumerate(reader, start=2):
        try:
            lat, lon = float(row["lat"]), float(row["lon"])
        except (KeyError, TypeError, ValueError):
            raise PopulationError(f"line {line}: lat and lon must be numbers") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
            raise PopulationError(f"line {line}: lat/lon out of range or (0, 0)")
        tier = (row.get("tier") or "professional").strip().lower()
        if tier not in ("lay", "professional"):
            raise PopulationError(f"line {line}: tier must be lay or professional")
        lats.append(lat)
        lons.append(lon)
        tiers.append(tier == "professional")
    if not lats:
        raise PopulationError("the positions file holds no rows (lat,lon[,tier])")
    has_tiers = "tier" in (reader.fieldnames or ())
    return Population(
        positions=(np.array(lats), np.array(lons)),
        tiers=np.array(tiers, dtype=bool) if has_tiers else None,
        description=f"{len(lats):,} positions from a file",
    )


def load_population_file(name: str, text: str) -> Population:
    """Densities by area (``.geojson``, or CSV with ``h3_cell``) or positions (CSV with lat)."""
    if name.lower().endswith((".geojson", ".json")):
        try:
            return areas_from_geojson(json.loads(text))
        except json.JSONDecodeError as exc:
            raise PopulationError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    header = text.split("\n", 1)[0].lower()
    if "h3_cell" in header:
        return areas_from_csv(text)
    return positions_from_csv(text)
