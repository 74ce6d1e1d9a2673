"""In-memory H3 index of volunteers' last known positions (the matching hot path).

``VolunteerIndex`` answers "nearest eligible volunteers within a radius" exactly (it returns what
a brute-force :func:`haversine_m` scan would) in tens of microseconds; see :mod:`geoindex.index`
for the layout and algorithm. It imports only the standard library, h3, numpy and numba (its
query kernels are compiled). The typed H3 helpers are re-exported for planning code that
aggregates by cell (``dispatch simulate``), so h3 stays imported in one place.
"""

from ._geometry import EARTH_RADIUS_M, haversine_m
from ._h3 import cell_to_boundary, cell_to_latlng, get_resolution, grid_disk, latlng_to_cell
from .index import DEFAULT_RESOLUTIONS, Hit, VolunteerIndex, point_cell

__all__ = [
    "DEFAULT_RESOLUTIONS",
    "EARTH_RADIUS_M",
    "Hit",
    "VolunteerIndex",
    "cell_to_boundary",
    "cell_to_latlng",
    "get_resolution",
    "grid_disk",
    "haversine_m",
    "latlng_to_cell",
    "point_cell",
]
