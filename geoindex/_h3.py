"""Typed wrapper over :mod:`h3.api.basic_int`, the only module in the project that imports h3.

Cells are plain Python ``int`` (H3 indexes are unsigned 64-bit integers whose top bit is reserved
and zero, so every cell also fits a signed Postgres ``BIGINT``). h3 returns collections in no
guaranteed order; the collection helpers here return sorted lists so callers and tests are
deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

from h3.api import basic_int as _h3

__all__ = [
    "cell_to_boundary",
    "cell_to_latlng",
    "cell_to_parent",
    "get_pentagons",
    "get_res0_cells",
    "get_resolution",
    "grid_disk",
    "grid_ring",
    "is_pentagon",
    "is_valid_cell",
    "latlng_to_cell",
]


def latlng_to_cell(lat: float, lng: float, res: int) -> int:
    """Return the cell at resolution ``res`` containing the point ``(lat, lng)`` in degrees."""
    return cast(int, _h3.latlng_to_cell(lat, lng, res))


latlng_to_cell_fast: Final[Callable[[float, float, int], int]] = _h3.latlng_to_cell
"""h3's own :func:`latlng_to_cell`, without this module's wrapper call (for the hot paths)."""


def cell_to_latlng(cell: int) -> tuple[float, float]:
    """Return the centre ``(lat, lng)`` of ``cell`` in degrees."""
    return cast(tuple[float, float], _h3.cell_to_latlng(cell))


def cell_to_boundary(cell: int) -> tuple[tuple[float, float], ...]:
    """Return the boundary vertices ``(lat, lng)`` of ``cell`` in degrees, in h3's order.

    Cells crossing an icosahedron edge have extra (distortion) vertices; all are returned.
    """
    return cast(tuple[tuple[float, float], ...], _h3.cell_to_boundary(cell))


def cell_to_parent(cell: int, res: int) -> int:
    """Return the ancestor of ``cell`` at the coarser resolution ``res``."""
    return cast(int, _h3.cell_to_parent(cell, res))


def get_resolution(cell: int) -> int:
    """Return the resolution (0..15) of ``cell``."""
    return cast(int, _h3.get_resolution(cell))


def is_valid_cell(cell: int) -> bool:
    """Return whether ``cell`` is a valid H3 cell index."""
    return bool(_h3.is_valid_cell(cell))


def is_pentagon(cell: int) -> bool:
    """Return whether ``cell`` is one of the 12 pentagons of its resolution."""
    return bool(_h3.is_pentagon(cell))


def grid_disk(cell: int, k: int) -> list[int]:
    """Return the cells within grid distance ``k`` of ``cell`` (including it), sorted."""
    return sorted(_h3.grid_disk(cell, k))


def grid_disk_unordered(cell: int, k: int) -> list[int]:
    """Like :func:`grid_disk` but in h3's (unspecified) order, for hot paths that do not care."""
    return cast(list[int], _h3.grid_disk(cell, k))


def grid_ring(cell: int, k: int) -> list[int]:
    """Return the cells at grid distance exactly ``k`` from ``cell``, sorted (pentagon-safe)."""
    return sorted(_h3.grid_ring(cell, k))


def grid_ring_unordered(cell: int, k: int) -> list[int]:
    """Like :func:`grid_ring` but in h3's (unspecified) order, for hot paths that do not care."""
    return cast(list[int], _h3.grid_ring(cell, k))


def get_pentagons(res: int) -> list[int]:
    """Return the 12 pentagon cells at resolution ``res``, sorted."""
    return sorted(_h3.get_pentagons(res))


def get_res0_cells() -> list[int]:
    """Return the 122 base cells, sorted."""
    return sorted(_h3.get_res0_cells())
