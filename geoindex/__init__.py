"""In-memory H3 index of volunteers' last known positions (the matching hot path).

``VolunteerIndex`` answers "nearest eligible volunteers within a radius" exactly (it returns what
a brute-force :func:`haversine_m` scan would) in tens of microseconds; see :mod:`geoindex.index`
for the layout and algorithm. It imports only the standard library, h3, numpy and numba (its
query kernels are compiled).
"""

from ._geometry import EARTH_RADIUS_M, haversine_m
from .index import DEFAULT_RESOLUTIONS, Hit, VolunteerIndex, point_cell

__all__ = [
    "DEFAULT_RESOLUTIONS",
    "EARTH_RADIUS_M",
    "Hit",
    "VolunteerIndex",
    "haversine_m",
    "point_cell",
]
