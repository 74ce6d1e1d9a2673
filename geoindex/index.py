"""In-memory index of volunteers' last positions answering "nearest N within a radius".

Layout
------
Each volunteer gets a dense internal slot ``i``; per-slot numpy arrays hold its id, lat, lon and
report time (int64 microseconds since the Unix epoch), plus, for every indexed H3 resolution, its
cell and its position inside that cell's bucket. A bucket (one per non-empty cell per resolution)
owns a contiguous ``(capacity, 3)`` float64 array of unit vectors and an int64 array of slots;
inserts append (capacity doubles), removes swap the last row into the hole. An upsert therefore
costs a few microseconds per resolution and never touches other cells.

Resolutions
-----------
Points are indexed at several resolutions (:data:`DEFAULT_RESOLUTIONS`) and each query picks one
from local density: the finest whose cell containing the query point holds at least
``max(limit, 1) / 3`` volunteers (else the coarsest). Then the 7-cell disk around the query usually
holds the answer in a few hundred candidates, whatever the density: a city centre runs at res 11
(~29 m edges), a suburb at res 9-10, the countryside at res 7-8. One resolution cannot do this:
at 1,000,000 volunteers over 420 km^2 a res-9 disk holds ~1,750 candidates and the dense clusters
several times more, while a res-11 disk in the suburbs needs many rings; both showed in the
benchmark's p99. Measured on ``bench/geoindex.py`` (see the module docstring there).

Search
------
For the chosen resolution, rings around the query cell ``c0`` are processed in at most two
vectorised batches: first the disk of radius 1; then, if needed, every further ring up to the
first ring ``k + 1`` whose lower bound exceeds the current N-th distance (or the radius). Each batch
concatenates the buckets' contiguous arrays and computes squared chords in one pass; only the
top candidates are converted to metres and sorted (by distance, then id).

The stop rule is exact. A geodesic from the query (inside ``c0``) to a point outside the disk of
radius ``k`` must leave the disk; where it does, it enters a cell adjacent to the disk but not in
it, that is, a cell of ring ``k + 1``. So every point outside the disk is at least
``min over ring k+1 of (distance(query, centre) - R)`` away, with ``R`` a proven upper bound on
any cell's circumradius at that resolution (:func:`geoindex._geometry.circumradius_bound_m`).
Pentagons and icosahedron edges need no special case (h3's rings are pentagon-safe and the bound
covers every cell); the antimeridian and poles need none either, as everything is 3-D vectors.
Radii that would need more than :data:`_MAX_RINGS` rings at the coarsest resolution fall back to
a scan of the coarsest buckets with the same per-cell bound.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from . import _h3
from ._geometry import (
    EARTH_RADIUS_M,
    chord2,
    circumradius_bound_m,
    m_to_chord2_cap,
    unit_vector,
    unit_vectors,
)

__all__ = ["DEFAULT_RESOLUTIONS", "Hit", "VolunteerIndex"]

DEFAULT_RESOLUTIONS: Final = (11, 10, 9, 8, 7, 6)
"""H3 resolutions indexed, finest first (chosen by benchmark, see module docstring)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_MAX_RINGS: Final = 40
_TWO_R: Final = 2.0 * EARTH_RADIUS_M
_TIE_SLACK: Final = 1.0 + 1e-12
_SMALL_EXCLUDE: Final = 32
_MIN_CAPACITY: Final = 4
_LEVEL_FACTOR = 2.0

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Hit:
    """One result of :meth:`VolunteerIndex.nearest`."""

    volunteer_id: int
    distance_m: float


# Building Hits through the slot descriptors is ~2x faster than the frozen dataclass __init__.
_new_hit = object.__new__
_set_hit_id = vars(Hit)["volunteer_id"].__set__
_set_hit_d = vars(Hit)["distance_m"].__set__


class _Bucket:
    """The volunteers of one cell: a ``(4, capacity)`` array of columns (x, y, z, slot).

    The slot (the volunteer's internal index) is stored as float64, exact below 2**53, so one
    concatenation per query gathers coordinates and slots together. Swap-remove on delete.
    """

    __slots__ = ("data", "n", "view")

    def __init__(self, data: F64, n: int) -> None:
        self.data = data
        self.n = n
        self.view = data[:, :n]

    @classmethod
    def empty(cls) -> _Bucket:
        return cls(np.empty((4, _MIN_CAPACITY), dtype=np.float64), 0)

    def append(self, slot: int, x: float, y: float, z: float) -> int:
        n = self.n
        data = self.data
        if n == data.shape[1]:
            grown = np.empty((4, 2 * n), dtype=np.float64)
            grown[:, :n] = data
            self.data = data = grown
        data[:, n] = (x, y, z, slot)
        self.n = n + 1
        self.view = data[:, : n + 1]
        return n

    def pop(self, pos: int) -> int:
        """Remove column ``pos``; return the slot moved into it (or -1 if it was the last)."""
        last = self.n - 1
        data = self.data
        moved = -1
        if pos != last:
            data[:, pos] = data[:, last]
            moved = int(data[3, last])
        self.n = last
        self.view = data[:, :last]
        return moved


def _timestamp_us(at: datetime) -> int:
    """Return ``at`` as integer microseconds since the epoch; ValueError if naive."""
    if not isinstance(at, datetime):
        raise TypeError(f"expected a datetime, got {type(at).__name__}")
    try:
        return (at - _EPOCH) // _ONE_US
    except TypeError:
        raise ValueError(f"datetime must be timezone-aware, got {at!r}") from None


def _check_latlon(lat: float, lon: float) -> None:
    if not (-90.0 <= lat <= 90.0):  # also rejects NaN
        raise ValueError(f"latitude must be a finite number in [-90, 90], got {lat!r}")
    if not (-180.0 <= lon <= 180.0):
        raise ValueError(f"longitude must be a finite number in [-180, 180], got {lon!r}")


def _max_age_us(max_age_s: float) -> int:
    """Largest age in whole microseconds that ``timedelta.total_seconds()`` keeps <= max_age_s.

    ``(now - at).total_seconds()`` is the integer microsecond count divided by 10**6, correctly
    rounded; it is monotone, so the exact integer threshold is found by stepping near the guess.
    """
    d = math.floor(max_age_s * 1_000_000)
    while (d + 1) / 1_000_000 <= max_age_s:
        d += 1
    while d / 1_000_000 > max_age_s:
        d -= 1
    return d


class VolunteerIndex:
    """Volunteers' last known positions, queried for the nearest ones within a radius.

    Not thread-safe: meant to be owned by one asyncio event loop. See the module docstring for
    the layout and the (exact) search algorithm. Results match a brute-force scan with
    :func:`geoindex.haversine_m` exactly.
    """

    __slots__ = (
        "_buckets",
        "_cap",
        "_cell",
        "_free",
        "_ids",
        "_lat",
        "_lon",
        "_n",
        "_nres",
        "_pos",
        "_res",
        "_rmax_m",
        "_slot_of",
        "_spacing_m",
        "_ts",
    )

    def __init__(self, *, resolutions: Sequence[int] = DEFAULT_RESOLUTIONS) -> None:
        """Create an empty index.

        Args:
            resolutions: H3 resolutions to index, strictly decreasing (finest first). The
                default was chosen by benchmark; other values are for tests and experiments.
        """
        res = tuple(operator.index(r) for r in resolutions)
        if (
            not res
            or any(not 0 <= r <= 15 for r in res)
            or any(a <= b for a, b in itertools.pairwise(res))
        ):
            raise ValueError(f"resolutions must be strictly decreasing values in 0..15: {res}")
        self._res = res
        self._nres = len(res)
        self._rmax_m = tuple(circumradius_bound_m(r) for r in res)
        # Rough distance gained per ring (1.5 edge lengths), only to guess how many rings to add.
        self._spacing_m = tuple(1.5 * circumradius_bound_m(r) / (1.05 * 1.1) for r in res)
        self._buckets: list[dict[int, _Bucket]] = [{} for _ in res]
        self._slot_of: dict[int, int] = {}
        self._free: list[int] = []
        self._n = 0  # high-water mark of used slots
        self._alloc(1024)

    def _alloc(self, cap: int) -> None:
        self._cap = cap
        self._ids: I64 = np.zeros(cap, dtype=np.int64)
        self._lat: F64 = np.zeros(cap, dtype=np.float64)
        self._lon: F64 = np.zeros(cap, dtype=np.float64)
        self._ts: I64 = np.zeros(cap, dtype=np.int64)
        self._cell: I64 = np.zeros((self._nres, cap), dtype=np.int64)
        self._pos: I64 = np.zeros((self._nres, cap), dtype=np.int64)

    def _grow(self, need: int) -> None:
        cap = self._cap
        while cap < need:
            cap *= 2
        if cap == self._cap:
            return
        old = (self._ids, self._lat, self._lon, self._ts, self._cell, self._pos)
        n = self._n
        self._alloc(cap)
        self._ids[:n] = old[0][:n]
        self._lat[:n] = old[1][:n]
        self._lon[:n] = old[2][:n]
        self._ts[:n] = old[3][:n]
        self._cell[:, :n] = old[4][:, :n]
        self._pos[:, :n] = old[5][:, :n]

    # ------------------------------------------------------------------ container protocol

    def __len__(self) -> int:
        """Return the number of volunteers indexed."""
        return len(self._slot_of)

    def __contains__(self, volunteer_id: object) -> bool:
        """Return whether ``volunteer_id`` is indexed."""
        return volunteer_id in self._slot_of

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The H3 resolutions indexed, finest first."""
        return self._res

    # ------------------------------------------------------------------ updates

    def upsert(self, volunteer_id: int, lat: float, lon: float, *, at: datetime) -> None:
        """Insert or move a volunteer.

        Args:
            volunteer_id: the volunteer's id.
            lat: latitude in degrees, finite, in [-90, 90].
            lon: longitude in degrees, finite, in [-180, 180].
            at: when the position was reported; must be timezone-aware.

        Raises:
            ValueError: on NaN/infinite/out-of-range coordinates or a naive datetime.
        """
        vid = operator.index(volunteer_id)
        lat = float(lat)
        lon = float(lon)
        _check_latlon(lat, lon)
        ts = _timestamp_us(at)
        x, y, z = unit_vector(lat, lon)
        res = self._res
        fine = _h3.latlng_to_cell(lat, lon, res[0])
        slot = self._slot_of.get(vid)
        if slot is None:
            if self._free:
                slot = self._free.pop()
            else:
                if self._n == self._cap:
                    self._grow(self._n + 1)
                slot = self._n
                self._n += 1
            self._slot_of[vid] = slot
            self._ids[slot] = vid
            cells = self._cell
            positions = self._pos
            for li in range(self._nres):
                cell = fine if li == 0 else _h3.cell_to_parent(fine, res[li])
                positions[li, slot] = self._bucket_append(li, cell, slot, x, y, z)
                cells[li, slot] = cell
        else:
            cells = self._cell
            positions = self._pos
            for li in range(self._nres):
                cell = fine if li == 0 else _h3.cell_to_parent(fine, res[li])
                old = int(cells[li, slot])
                if old == cell:
                    self._buckets[li][cell].data[:3, int(positions[li, slot])] = (x, y, z)
                else:
                    self._bucket_remove(li, old, int(positions[li, slot]))
                    positions[li, slot] = self._bucket_append(li, cell, slot, x, y, z)
                    cells[li, slot] = cell
        self._lat[slot] = lat
        self._lon[slot] = lon
        self._ts[slot] = ts

    def _bucket_append(self, li: int, cell: int, slot: int, x: float, y: float, z: float) -> int:
        buckets = self._buckets[li]
        bucket = buckets.get(cell)
        if bucket is None:
            bucket = buckets[cell] = _Bucket.empty()
        return bucket.append(slot, x, y, z)

    def _bucket_remove(self, li: int, cell: int, pos: int) -> None:
        buckets = self._buckets[li]
        bucket = buckets[cell]
        moved = bucket.pop(pos)
        if moved >= 0:
            self._pos[li, moved] = pos
        if bucket.n == 0:
            del buckets[cell]

    def remove(self, volunteer_id: int) -> None:
        """Remove a volunteer; no error if absent."""
        slot = self._slot_of.pop(volunteer_id, None)
        if slot is None:
            return
        for li in range(self._nres):
            self._bucket_remove(li, int(self._cell[li, slot]), int(self._pos[li, slot]))
        self._free.append(slot)

    def bulk_load(
        self,
        ids: Sequence[int] | npt.ArrayLike,
        lats: Sequence[float] | npt.ArrayLike,
        lons: Sequence[float] | npt.ArrayLike,
        ats: Sequence[datetime] | npt.ArrayLike,
    ) -> None:
        """Upsert many volunteers at once (start-up rebuild fast path).

        Equivalent to calling :meth:`upsert` for each row in order (a later row for the same id
        wins), but vectorised: about a second per million rows on an empty index.

        Args:
            ids: volunteer ids (list or integer numpy array).
            lats: latitudes in degrees.
            lons: longitudes in degrees.
            ats: timezone-aware datetimes, or a numpy ``datetime64`` array read as UTC.

        Raises:
            ValueError: on mismatched lengths or any invalid row (nothing is loaded then).
        """
        id_arr = np.asarray(ids, dtype=np.int64).ravel()
        lat_arr = np.asarray(lats, dtype=np.float64).ravel()
        lon_arr = np.asarray(lons, dtype=np.float64).ravel()
        n = id_arr.shape[0]
        if isinstance(ats, np.ndarray) and np.issubdtype(ats.dtype, np.datetime64):
            ts_arr = ats.astype("datetime64[us]").astype(np.int64).ravel()
        else:
            ts_arr = np.fromiter(
                (_timestamp_us(a) for a in ats),  # type: ignore[arg-type,union-attr]
                dtype=np.int64,
                count=-1,
            )
        if not (lat_arr.shape[0] == lon_arr.shape[0] == ts_arr.shape[0] == n):
            raise ValueError("ids, lats, lons and ats must have the same length")
        if n == 0:
            return
        bad = ~((lat_arr >= -90.0) & (lat_arr <= 90.0) & (lon_arr >= -180.0) & (lon_arr <= 180.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            _check_latlon(float(lat_arr[i]), float(lon_arr[i]))
        # Keep the last row per id, as sequential upserts would.
        rev_unique, rev_first = np.unique(id_arr[::-1], return_index=True)
        if rev_unique.shape[0] != n:
            keep = np.sort(n - 1 - rev_first)
            id_arr, lat_arr, lon_arr, ts_arr = (
                id_arr[keep],
                lat_arr[keep],
                lon_arr[keep],
                ts_arr[keep],
            )
            n = id_arr.shape[0]
        if self._slot_of:
            present = np.fromiter((i in self._slot_of for i in id_arr.tolist()), bool, n)
            if present.any():
                for j in np.flatnonzero(present).tolist():
                    self.upsert(
                        int(id_arr[j]),
                        float(lat_arr[j]),
                        float(lon_arr[j]),
                        at=_EPOCH + timedelta(microseconds=int(ts_arr[j])),
                    )
                new = ~present
                id_arr, lat_arr, lon_arr, ts_arr = (
                    id_arr[new],
                    lat_arr[new],
                    lon_arr[new],
                    ts_arr[new],
                )
                n = id_arr.shape[0]
                if n == 0:
                    return
        self._bulk_insert(id_arr, lat_arr, lon_arr, ts_arr)

    def _bulk_insert(self, id_arr: I64, lat_arr: F64, lon_arr: F64, ts_arr: I64) -> None:
        n = id_arr.shape[0]
        # Fresh slots at the end (free slots are left for later upserts; simple and rare).
        start = self._n
        self._grow(start + n)
        slots = np.arange(start, start + n, dtype=np.int64)
        self._n = start + n
        self._ids[start : start + n] = id_arr
        self._lat[start : start + n] = lat_arr
        self._lon[start : start + n] = lon_arr
        self._ts[start : start + n] = ts_arr
        self._slot_of.update(zip(id_arr.tolist(), slots.tolist(), strict=True))
        xyz = unit_vectors(lat_arr, lon_arr)
        fine_res = self._res[0]
        l2c = _h3.latlng_to_cell
        fine = np.fromiter(
            (l2c(a, b, fine_res) for a, b in zip(lat_arr.tolist(), lon_arr.tolist(), strict=True)),
            dtype=np.int64,
            count=n,
        )
        for li, res in enumerate(self._res):
            cells = fine if li == 0 else _parent_cells(fine, res)
            self._cell[li, start : start + n] = cells
            order = np.argsort(cells, kind="stable")
            sorted_cells = cells[order]
            sorted_data = np.empty((4, n), dtype=np.float64)
            sorted_data[:3] = xyz[:, order]
            sorted_slots = slots[order]
            sorted_data[3] = sorted_slots
            bounds = np.flatnonzero(sorted_cells[1:] != sorted_cells[:-1]) + 1
            starts = np.concatenate(([0], bounds))
            ends = np.concatenate((bounds, [n]))
            buckets = self._buckets[li]
            pos = self._pos[li]
            pos[sorted_slots] = np.arange(n, dtype=np.int64) - np.repeat(starts, ends - starts)
            group_cells = sorted_cells[starts].tolist()
            _warm_centres(group_cells)
            for cell, a, b in zip(group_cells, starts.tolist(), ends.tolist(), strict=True):
                bucket = buckets.get(cell)
                if bucket is None:
                    size = b - a
                    buf = np.empty((4, max(_MIN_CAPACITY, size + size // 4)), dtype=np.float64)
                    buf[:, :size] = sorted_data[:, a:b]
                    buckets[cell] = _Bucket(buf, size)
                else:
                    for k in range(a, b):
                        x, y, z, s = sorted_data[:, k].tolist()
                        pos[int(s)] = bucket.append(int(s), x, y, z)

    # ------------------------------------------------------------------ reads

    def position(self, volunteer_id: int) -> tuple[float, float, datetime] | None:
        """Return ``(lat, lon, reported_at)`` of a volunteer (time in UTC), or None if absent."""
        slot = self._slot_of.get(volunteer_id)
        if slot is None:
            return None
        return (
            float(self._lat[slot]),
            float(self._lon[slot]),
            _EPOCH + timedelta(microseconds=int(self._ts[slot])),
        )

    def nearest(
        self,
        lat: float,
        lon: float,
        *,
        radius_m: float,
        limit: int,
        max_age_s: float | None = None,
        now: datetime | None = None,
        exclude: Collection[int] = (),
    ) -> list[Hit]:
        """Return the nearest volunteers within ``radius_m`` of ``(lat, lon)``.

        Exactly the volunteers a brute-force scan with :func:`geoindex.haversine_m` finds at
        distance ``<= radius_m``, minus stale ones (``now - at > max_age_s``) and ``exclude``,
        sorted by distance then id, truncated to ``limit``.

        Args:
            lat: latitude in degrees, finite, in [-90, 90].
            lon: longitude in degrees, finite, in [-180, 180].
            radius_m: search radius in metres, finite and >= 0.
            limit: maximum number of hits, >= 0.
            max_age_s: if given (finite or infinite, >= 0), skip positions older than this.
            now: the current time (timezone-aware); required when ``max_age_s`` is given.
            exclude: volunteer ids never to return.

        Raises:
            ValueError: on invalid arguments.
        """
        lat = float(lat)
        lon = float(lon)
        _check_latlon(lat, lon)
        radius_m = float(radius_m)
        if not (0.0 <= radius_m < math.inf):
            raise ValueError(f"radius_m must be finite and >= 0, got {radius_m!r}")
        limit = operator.index(limit)
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        cutoff_us: int | None = None
        if max_age_s is not None:
            max_age_s = float(max_age_s)
            if not max_age_s >= 0.0:
                raise ValueError(f"max_age_s must be >= 0, got {max_age_s!r}")
            if now is None:
                raise ValueError("now is required when max_age_s is given")
            now_us = _timestamp_us(now)
            if max_age_s != math.inf:
                cutoff_us = now_us - _max_age_us(max_age_s)
        elif now is not None:
            _timestamp_us(now)
        if limit == 0 or not self._slot_of:
            return []
        return _Query(self, lat, lon, radius_m, limit, cutoff_us, exclude).run()


def _parent_cells(cells: I64, res: int) -> I64:
    """Vectorised ``cell_to_parent`` (H3 bit layout: res at bits 52-55, 3-bit digits below)."""
    shift = (15 - res) * 3
    cleared = (cells & ~np.int64(0xF << 52)) | np.int64(res << 52)
    out: I64 = cleared | np.int64((1 << shift) - 1)
    return out


# Cell centres (unit vectors), a pure function of H3: shared by all indexes, filled for every
# non-empty cell on bulk load and lazily for the others, cleared when it reaches _CENTRES_MAX.
_CENTRES: dict[int, tuple[float, float, float]] = {}
_CENTRES_MAX: Final = 2_000_000


def _warm_centres(cells: list[int]) -> None:
    """Compute the centres of many cells at once (numpy trig) into the centre cache."""
    cold = [c for c in cells if c not in _CENTRES]
    if not cold:
        return
    if len(_CENTRES) + len(cold) > _CENTRES_MAX:
        _CENTRES.clear()
    c2ll = _h3.cell_to_latlng
    latlng = np.array([c2ll(c) for c in cold], dtype=np.float64).reshape(-1, 2)
    xyz = unit_vectors(latlng[:, 0], latlng[:, 1])
    _CENTRES.update(zip(cold, zip(*xyz.tolist(), strict=True), strict=True))


def _centre(cell: int) -> tuple[float, float, float]:
    c = _CENTRES.get(cell)
    if c is None:
        if len(_CENTRES) >= _CENTRES_MAX:
            _CENTRES.clear()
        c = _CENTRES[cell] = unit_vector(*_h3.cell_to_latlng(cell))
    return c


class _Query:
    """One ``nearest`` call: state shared by the ring batches."""

    __slots__ = (
        "cap2",
        "cutoff_us",
        "excl_arr",
        "excl_set",
        "index",
        "lat",
        "limit",
        "lon",
        "need",
        "q",
        "qa",
        "radius_m",
    )

    def __init__(
        self,
        index: VolunteerIndex,
        lat: float,
        lon: float,
        radius_m: float,
        limit: int,
        cutoff_us: int | None,
        exclude: Collection[int],
    ) -> None:
        self.index = index
        self.lat = lat
        self.lon = lon
        self.q = unit_vector(lat, lon)
        self.qa = np.array(self.q, dtype=np.float64).reshape(3, 1)
        self.radius_m = radius_m
        self.limit = limit
        self.cutoff_us = cutoff_us
        self.cap2 = m_to_chord2_cap(radius_m)
        slot_of = index._slot_of
        self.excl_set: frozenset[int] | set[int] = frozenset()
        self.excl_arr: I64 | None = None
        present = [e for e in exclude if e in slot_of] if exclude else []
        if len(present) > _SMALL_EXCLUDE:
            self.excl_arr = np.unique(np.asarray(present, dtype=np.int64))
            self.need = limit
        else:
            self.excl_set = set(present)
            self.need = limit + len(present)

    def run(self) -> list[Hit]:
        index = self.index
        res = index._res
        last = index._nres - 1
        threshold = max(self.need, 1) * _LEVEL_FACTOR
        fine = _h3.latlng_to_cell(self.lat, self.lon, res[0])
        c0 = fine
        li = 0
        while True:
            bucket = index._buckets[li].get(c0)
            if li == last or (bucket is not None and bucket.n >= threshold):
                break
            li += 1
            c0 = _h3.cell_to_parent(fine, res[li])
        disk1 = _h3.grid_disk_unordered(c0, 1)
        hits = self._batch(index._buckets[li], disk1)
        bound = self._bound(hits)
        rmax = index._rmax_m[li]
        if self._ring_lb(c0, 2, rmax) > bound:
            return self._finish(hits)
        # More rings are needed. Guess the last one from the ring spacing (coarser resolution if
        # too many), then verify the guess with the exact bound.
        restart = False
        while True:
            rmax = index._rmax_m[li]
            k2 = max(2, math.ceil((bound + 2.0 * rmax) / index._spacing_m[li]) - 1)
            if k2 <= _MAX_RINGS:
                break
            if li == last:
                return self._scan_all(li, rmax)
            li += 1
            c0 = _h3.cell_to_parent(fine, res[li])
            restart = True
        while self._ring_lb(c0, k2 + 1, rmax) <= bound:
            k2 += 1
            if k2 > _MAX_RINGS:
                return self._scan_all(li, rmax)
        buckets = index._buckets[li]
        if restart:
            return self._finish(self._batch(buckets, _h3.grid_disk_unordered(c0, k2)))
        inner = set(disk1)
        outer = [c for c in _h3.grid_disk_unordered(c0, k2) if c not in inner]
        hits2 = self._batch(buckets, outer)
        if hits2:
            hits = sorted(hits + hits2)
        return self._finish(hits)

    def _ring_lb(self, c0: int, k: int, rmax: float) -> float:
        """Lower bound (m) on the distance from the query to any point outside disk(c0, k-1)."""
        qx, qy, qz = self.q
        best = 4.0
        for cell in _h3.grid_ring_unordered(c0, k):
            x, y, z = _centre(cell)
            c2 = (x - qx) * (x - qx) + (y - qy) * (y - qy) + (z - qz) * (z - qz)
            best = min(c2, best)
        d = _TWO_R * math.asin(min(1.0, math.sqrt(best) * 0.5))
        # Margin for rounding in the centre and the points' own unit vectors.
        return d - rmax - 1e-3 - 1e-9 * d

    def _bound(self, hits: list[tuple[float, int]]) -> float:
        if len(hits) >= self.need:
            kept = [h for h in hits if h[1] not in self.excl_set] if self.excl_set else hits
            if len(kept) >= self.limit:
                return min(self.radius_m, kept[self.limit - 1][0])
        return self.radius_m

    def _finish(self, hits: list[tuple[float, int]]) -> list[Hit]:
        excl = self.excl_set
        out: list[Hit] = []
        limit = self.limit
        new = _new_hit
        set_id = _set_hit_id
        set_d = _set_hit_d
        for d, vid in hits:
            if excl and vid in excl:
                continue
            hit = new(Hit)
            set_id(hit, vid)
            set_d(hit, d)
            out.append(hit)
            if len(out) == limit:
                break
        return out

    def _batch(self, buckets: dict[int, _Bucket], cells: Iterable[int]) -> list[tuple[float, int]]:
        """Candidates in ``cells``: the best ``need`` (plus ties) within the radius, sorted."""
        got = [b.view for c in cells if (b := buckets.get(c)) is not None]
        if not got:
            return []
        data = got[0] if len(got) == 1 else np.concatenate(got, axis=1)
        c2 = chord2(data, self.qa)
        index = self.index
        cap2 = self.cap2
        if self.cutoff_us is not None or self.excl_arr is not None:
            slots = data[3].astype(np.int64)
            keep = c2 <= cap2
            if self.cutoff_us is not None:
                keep &= index._ts[slots] >= self.cutoff_us
            if self.excl_arr is not None:
                keep &= ~np.isin(index._ids[slots], self.excl_arr)
            sel = np.flatnonzero(keep)
            c2 = c2[sel]
            data = data[:, sel]
        need = self.need
        if c2.shape[0] > need:
            kth = float(np.partition(c2, need - 1)[need - 1]) * _TIE_SLACK
            sel = np.flatnonzero(c2 <= min(kth, cap2))
        else:
            sel = np.flatnonzero(c2 <= cap2)
        if sel.shape[0] == 0:
            return []
        c2 = c2[sel]
        half = np.sqrt(c2, out=c2)
        half *= 0.5
        np.minimum(half, 1.0, out=half)
        dist = np.arcsin(half, out=half)
        dist *= _TWO_R
        radius = self.radius_m
        hits = [
            (d, v)
            for d, v in zip(
                dist.tolist(), index._ids[data[3, sel].astype(np.int64)].tolist(), strict=True
            )
            if d <= radius
        ]
        hits.sort()
        return hits

    def _scan_all(self, li: int, rmax: float) -> list[Hit]:
        """Huge radius: every bucket of resolution ``li`` whose cell may reach the radius."""
        qx, qy, qz = self.q
        radius = self.radius_m
        cells = []
        for cell in self.index._buckets[li]:
            x, y, z = _centre(cell)
            c2 = (x - qx) * (x - qx) + (y - qy) * (y - qy) + (z - qz) * (z - qz)
            d = _TWO_R * math.asin(min(1.0, math.sqrt(c2) * 0.5))
            if d - rmax - 1e-3 - 1e-9 * d <= radius:
                cells.append(cell)
        return self._finish(self._batch(self.index._buckets[li], cells))
