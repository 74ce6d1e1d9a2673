"""Great-circle distance and cell-size bounds shared by the index and its brute-force reference.

Distances are great-circle distances on a sphere of radius :data:`EARTH_RADIUS_M`, computed in the
chord form of the haversine formula: with ``p`` and ``q`` the unit vectors of two points,
``d = 2 R asin(|p - q| / 2)`` (``(|p - q| / 2)**2`` is exactly the haversine term ``a``). The chord
form is accurate at every distance and needs no trigonometry per stored point at query time, since
the unit vectors are computed once, on insert.

Every distance the index reports comes from :func:`unit_vector`/:func:`unit_vectors`,
:func:`chord2` and :func:`chord2_to_m`, the same element-wise operations :func:`haversine_m`
uses, so a brute-force scan with :func:`haversine_m` sees bit-identical distances.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "EARTH_RADIUS_M",
    "chord2",
    "chord2_to_m",
    "circumradius_bound_m",
    "haversine_m",
    "m_to_chord2_cap",
    "unit_vector",
    "unit_vectors",
]

EARTH_RADIUS_M: Final = 6_371_008.8
"""Mean Earth radius (IUGG) in metres used for every distance."""

F64 = npt.NDArray[np.float64]

# Largest angular circumradius (cell centre to farthest boundary vertex, radians) over ALL cells,
# computed exhaustively with h3 4.5 for resolutions 0-5 (2,016,842 cells at res 5). Finer
# resolutions are self-similar: the maximum over 200,000 random cells plus the 6-ring
# neighbourhoods of all 12 pentagons at res 6-12 equals R5 * 7**((5 - res) / 2) to 5 significant
# digits (H3 aperture 7). Cell edges are great-circle arcs (straight lines in H3's gnomonic face
# projection) and the extra vertices of cells crossing an icosahedron edge are included, so the
# farthest point of a cell from its centre is a vertex. _SAFETY covers the sampling at res > 5 and
# floating point; tests/geoindex re-check the bound on random cells and around pentagons.
_EXHAUSTIVE_RMAX_RAD: Final = (
    0.21705404480588927,
    0.08315958816951373,
    0.03149360921328753,
    0.011906839724557857,
    0.004500544703856024,
    0.0017010558514597867,
)
_SAFETY: Final = 1.05


def circumradius_bound_m(res: int) -> float:
    """Return an upper bound (metres) on the distance from any cell's centre to any of its points.

    Valid for every cell at resolution ``res`` (0..15), pentagons included.
    """
    if not 0 <= res <= 15:
        raise ValueError(f"H3 resolution must be in 0..15, got {res}")
    if res <= 5:
        rad = _EXHAUSTIVE_RMAX_RAD[res]
    else:
        rad = _EXHAUSTIVE_RMAX_RAD[5] * 7.0 ** ((5 - res) / 2)
    return rad * _SAFETY * EARTH_RADIUS_M


def unit_vector(lat: float, lon: float) -> tuple[float, float, float]:
    """Return the unit vector (x, y, z) of a point given in degrees.

    Uses the same operations, in the same order, as :func:`unit_vectors` (libm and numpy agree
    bit for bit on these; a test asserts it).
    """
    la = math.radians(lat)
    lo = math.radians(lon)
    cl = math.cos(la)
    return (cl * math.cos(lo), cl * math.sin(lo), math.sin(la))


def unit_vectors(lats: npt.ArrayLike, lons: npt.ArrayLike, out: F64 | None = None) -> F64:
    """Return a ``(3, n)`` array of unit vectors (rows x, y, z) for points given in degrees.

    ``out``, if given, is a ``(3, n)`` array to fill (and return) instead of a new one.
    """
    la = np.radians(np.asarray(lats, dtype=np.float64).ravel())
    lo = np.radians(np.asarray(lons, dtype=np.float64).ravel())
    cl = np.cos(la)
    if out is None:
        out = np.empty((3, la.shape[0]), dtype=np.float64)
    np.cos(lo, out=out[0])
    out[0] *= cl
    np.sin(lo, out=out[1])
    out[1] *= cl
    np.sin(la, out=out[2])
    return out


def chord2(xyz: F64, q: F64) -> F64:
    """Return squared chord lengths between the columns of ``xyz`` and the unit vector ``q``.

    ``xyz`` has the x, y, z rows first (extra rows are ignored); ``q`` has shape ``(3, 1)``.
    Element-wise (per column ``(dx*dx + dy*dy) + dz*dz``), so a point's value does not depend on
    which array it sits in.
    """
    diff = xyz[:3] - q
    np.multiply(diff, diff, out=diff)
    out: F64 = diff[0] + diff[1]
    out += diff[2]
    return out


def chord2_to_m(c2: F64) -> F64:
    """Convert squared chord lengths (unit sphere) to great-circle metres."""
    half = np.sqrt(c2)
    half *= 0.5
    np.minimum(half, 1.0, out=half)
    out: F64 = np.arcsin(half)
    out *= 2.0 * EARTH_RADIUS_M
    return out


def m_to_chord2_cap(distance_m: float) -> float:
    """Return a squared chord no smaller than that of ``distance_m`` (a safe pre-filter)."""
    angle = distance_m / EARTH_RADIUS_M
    if angle >= math.pi:
        return 4.5
    c = 2.0 * math.sin(angle / 2.0)
    return c * c * (1.0 + 1e-9) + 1e-300


def haversine_m(lat: float, lon: float, lats: npt.ArrayLike, lons: npt.ArrayLike) -> F64:
    """Return great-circle distances in metres from ``(lat, lon)`` to each ``(lats[i], lons[i])``.

    This is the reference distance of :class:`~geoindex.VolunteerIndex`: ``nearest`` returns
    exactly the points a brute-force scan with this function finds within the radius.
    """
    q = np.array(unit_vector(lat, lon), dtype=np.float64).reshape(3, 1)
    return chord2_to_m(chord2(unit_vectors(lats, lons), q))
