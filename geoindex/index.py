"""In-memory index of volunteers' last positions answering "nearest N within a radius".

Layout
------
Each volunteer occupies one *slot* of a set of parallel numpy arrays: ``_data`` (4 rows: the unit
vector x, y, z and the slot number itself as float64), id, lat, lon, report time (int64 us since
the epoch) and ``key``, the H3 cell at the finest indexed resolution ``F``. Slots ``[0, m)`` (the
*main* region) are sorted by key; slots ``[m, n)`` (the *delta* region) are appended by
``upsert`` since the last rebuild. H3 indexes of one resolution sort hierarchically (base cell,
then one 3-bit digit per resolution), so the res-``F`` descendants of any coarser cell are one
contiguous key range: a single ``np.searchsorted`` turns a list of cells at *any* coarser
resolution into slices of the main region. One sorted array therefore serves every resolution,
with no per-cell Python objects. The delta is searched the same way, with no per-resolution
structure either: slots ``[m, run_end)`` are listed in a sorted *run* (keys and slots, two numpy
arrays; one more ``searchsorted``), the newest ``< _PENDING_MAX`` slots ``[run_end, n)`` are
*pending* and tested against the key ranges in one vectorised pass. Every ``_PENDING_MAX`` (1,024)
updates the pending slots are sorted and merged into the run (``np.insert``, O(run)).

``upsert`` of a new id appends a slot; moving a volunteer tombstones its old slot (x = NaN, so its
distance is NaN and never passes a ``<=`` test) and appends a new one; ``remove`` tombstones.
When the delta plus tombstones exceed ``max(_MERGE_MIN, m / 8)`` the arrays are compacted: the
main region is already sorted, so only the delta is sorted and merged in (O(n) numpy, ~35 ms at
1M). Measured at 1M (200k moves): ~350k upserts/s; the former design (one ``dict`` of cell ->
slots per query resolution, kept up to date on every upsert, and a full argsort per rebuild) did
~165k/s, 60% of it in the five dicts (cache misses and growth at 1M) and 20% in rebuilds; query
cost with a large delta is the same or lower (p50 64 vs 71 us with 90k delta slots), ~+4 us with
a small one. ``bulk_load`` appends and rebuilds once. Ids map to slots
through a dense ``int32`` array when ids are small non-negative integers (database sequences) and
a ``dict`` for the others (~100 bytes more per such id). Index memory at 1,000,000 volunteers:
see ``bench/geoindex.py`` (tracemalloc); the arrays are 72 bytes per slot plus the id array.

Resolutions
-----------
Queries run at one of :data:`DEFAULT_RESOLUTIONS` (12, 11, 10, 9, 8; keys at res 12), chosen per
query from local density: the finest whose cell around the query point holds at least
``_LEVEL_FACTOR * (limit + excluded)`` (= 2x) volunteers (one ``searchsorted`` gives all the
counts), else the coarsest. The 7-cell disk around the query then holds the answer in a few hundred
to ~2,000 candidates and a cheap bound proves it complete. At 1,000,000 volunteers over 420 km^2
(bench/geoindex.py) uniform queries run at res 9 (~1,300 candidates, a res-10 cell holds only ~29
volunteers); clustered ones at res 10-11 in the centres (res-11 cells hold up to ~290) and res 8-9
in the tail. Measured alternatives (same machine, noisy): (11, 10, 9, 8) gave p99 150-280 us (dense
disks of ~2,000 candidates); without res 8, 100,000 uniform volunteers (240/km^2) needed a second
ring batch on most queries (p50 75 us instead of 36 us); a level factor of 1 or 1.5 instead of 2
raised p99 (more second batches). In sparse areas where even the coarsest cell predicts fewer than
``need`` volunteers within the radius, the query goes straight to the disk covering the radius (one
batch instead of two). A query costs ~30 us warm (p50 ~40 us in the bench), ~20 numpy calls plus
1-3 h3 calls; most of it is call overhead (more candidates per call barely change it: a
level factor of 1, i.e. ~3x fewer candidates, did not lower p50 and raised p99 by ~30 us).

Search
------
For the chosen resolution, rings around the query cell ``c0`` are processed in at most two
vectorised batches: first the disk of radius 1 (or of radius 2, when the N-th distance predicted
from the cell's count and area exceeds what disk 1 can prove: a second batch costs ~25 us of fixed
overhead, one batch of 19 cells less; this took the 3% of 100k clustered queries that needed two
batches, the p99 tail, down to 0.3%); then, if needed, every further ring up to the first ring
``k + 1`` whose lower bound exceeds the current N-th distance (or the radius). Each batch
concatenates slices of the main region (and any delta slots) and computes squared chords in one
pass; only the top candidates are converted to metres and sorted (by distance, then id).

The stop rule is exact. Points belong to the coarse cell that is the ancestor of their res-``F``
cell, so a coarse cell's *region* is the union of its descendants' cells; these regions tile the
sphere, and regions that touch are grid neighbours. A geodesic from the query (inside region
``c0``) to a point outside the regions of the disk of radius ``k`` must leave them; where it does,
it enters a region of ring ``k + 1``. So every point outside the disk is at least ``min over ring
k+1 of (distance(query, centre) - R)`` away, with ``R`` an upper bound on the distance from a
cell's centre to any point of its region: the proven circumradius bound
(:func:`geoindex._geometry.circumradius_bound_m`) times ``_REGION_FACTOR`` for coarser levels
(descendant regions of an aperture-7 hexagon reach at most sqrt(3)/(sqrt(7) - 1) ~ 1.053 times its
circumradius from its centre; 1.10 is used). For the disk of radius 1 a cached, cheaper form is
tried first: ``G(c0) - distance(query, centre(c0)) - R`` with ``G(c0)`` the smallest distance
between the centre of ``c0`` and a ring-2 centre (triangle inequality); these per-cell facts (and
the disk's key bounds, and the cells, key bounds and centres of rings 2, 3, ...) are a pure
function of H3, cached across indexes. ``bulk_load`` warms the disk cache for the cells queries
start from (every non-empty cell of the coarsest level, cells with >= ``_WARM_COUNT`` volunteers
of the finer ones; with their rings 2 and 3; ~0.5 s at 1M; ~50 MB, so index plus caches are
137 B/volunteer at 1M clustered): a cold cell costs ~15-20 us of h3 calls; without warming, 60%
of the first 2,000 clustered queries at 1M (res-10/11 cells) and 13% at 100k (rings 2-3) paid
it, and it set p99. Pentagons and
icosahedron edges need no special case (h3's rings are pentagon-safe and the bound covers every
cell); the antimeridian and poles need none either, as everything is 3-D vectors. Radii that
would need more than :data:`_MAX_RINGS` rings at the coarsest resolution fall back to a scan of
every slot.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Collection, Sequence
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

_radians = math.radians
_cos = math.cos
_sin = math.sin
_latlng_to_cell = _h3.latlng_to_cell_fast

DEFAULT_RESOLUTIONS: Final = (12, 11, 10, 9, 8)
"""H3 resolutions a query may run at, finest first (chosen by benchmark, see module docstring)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_MAX_RINGS: Final = 40
_TWO_R: Final = 2.0 * EARTH_RADIUS_M
_TIE_SLACK: Final = 1.0 + 1e-12
_SMALL_EXCLUDE: Final = 32
_LEVEL_FACTOR: Final = 2.0
_REGION_FACTOR: Final = 1.10
_MERGE_MIN: Final = 4096
_PENDING_MAX: Final = 1024
_DENSE_MIN: Final = 1 << 16
_WARM_COUNT: Final = 40
_RING2_FACTOR: Final = 1.5
_RES_MASK: Final = 0xF << 52
_NAN: Final = math.nan

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
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


def _digit_mask(coarse: int, fine: int) -> int:
    """Bits of the H3 digits of resolutions ``coarse + 1 .. fine``."""
    mask = 0
    for r in range(coarse + 1, fine + 1):
        mask |= 7 << ((15 - r) * 3)
    return mask


class VolunteerIndex:
    """Volunteers' last known positions, queried for the nearest ones within a radius.

    Not thread-safe: meant to be owned by one asyncio event loop. See the module docstring for
    the layout and the (exact) search algorithm. Results match a brute-force scan with
    :func:`geoindex.haversine_m` exactly.
    """

    __slots__ = (
        "_cap",
        "_count",
        "_data",
        "_dead",
        "_dense",
        "_fine",
        "_ids",
        "_key",
        "_keys_main",
        "_lat",
        "_levels",
        "_lon",
        "_m",
        "_merge_at",
        "_merge_min",
        "_n",
        "_nres",
        "_pending_max",
        "_res",
        "_run_end",
        "_run_keys",
        "_run_slots",
        "_sel_hi",
        "_sel_lo",
        "_sparse",
        "_ts",
    )

    def __init__(self, *, resolutions: Sequence[int] = DEFAULT_RESOLUTIONS) -> None:
        """Create an empty index.

        Args:
            resolutions: H3 resolutions a query may run at, strictly decreasing (finest first;
                positions are keyed at the finest). The default was chosen by benchmark; other
                values are for tests and experiments.
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
        fine = res[0]
        self._levels = tuple(_Level(r, fine) for r in res)
        self._sel_lo = [~lv.mask for lv in self._levels]
        self._sel_hi = [lv.mask for lv in self._levels]
        self._run_keys: I64 = np.empty(0, dtype=np.int64)  # sorted keys of delta [m, run_end)
        self._run_slots: I64 = np.empty(0, dtype=np.int64)  # their slots, in key order
        self._run_end = 0  # delta slots [run_end, n) are pending: unsorted, scanned by queries
        self._pending_max = _PENDING_MAX
        self._fine = fine
        self._dense: I32 = np.full(0, -1, dtype=np.int32)
        self._sparse: dict[int, int] = {}
        self._count = 0  # live volunteers
        self._dead = 0  # tombstoned slots in the main region
        self._m = 0  # main (sorted) region is [0, m)
        self._n = 0  # delta region is [m, n)
        self._merge_min = _MERGE_MIN
        self._merge_at = _MERGE_MIN
        self._alloc(1024)
        self._keys_main = self._key[:0]

    def _alloc(self, cap: int) -> None:
        self._cap = cap
        self._data: F64 = np.empty((4, cap), dtype=np.float64)
        self._ids: I64 = np.empty(cap, dtype=np.int64)
        self._lat: F64 = np.empty(cap, dtype=np.float64)
        self._lon: F64 = np.empty(cap, dtype=np.float64)
        self._ts: I64 = np.empty(cap, dtype=np.int64)
        self._key: I64 = np.empty(cap, dtype=np.int64)

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, self._cap + self._cap // 2, 1024)
        old = (self._data, self._ids, self._lat, self._lon, self._ts, self._key)
        n = self._n
        self._alloc(cap)
        self._data[:, :n] = old[0][:, :n]
        self._ids[:n] = old[1][:n]
        self._lat[:n] = old[2][:n]
        self._lon[:n] = old[3][:n]
        self._ts[:n] = old[4][:n]
        self._key[:n] = old[5][:n]
        self._keys_main = self._key[: self._m]

    # ------------------------------------------------------------------ id -> slot

    def _slot(self, vid: int) -> int:
        """Return the slot of ``vid`` or -1."""
        if 0 <= vid < self._dense.shape[0]:
            return int(self._dense[vid])
        return self._sparse.get(vid, -1)

    def _set_slot(self, vid: int, slot: int) -> None:
        dense = self._dense
        if 0 <= vid < dense.shape[0]:
            dense[vid] = slot
            return
        if 0 <= vid < max(_DENSE_MIN, 2 * (self._count + 1)):
            self._grow_dense(max(vid + 1, 2 * dense.shape[0]))
            self._dense[vid] = slot
            return
        self._sparse[vid] = slot

    def _grow_dense(self, size: int) -> None:
        dense = np.full(size, -1, dtype=np.int32)
        dense[: self._dense.shape[0]] = self._dense
        sparse = self._sparse
        move = [v for v in sparse if 0 <= v < size]
        for v in move:
            dense[v] = sparse.pop(v)
        self._dense = dense

    def _clear_slot(self, vid: int) -> None:
        if 0 <= vid < self._dense.shape[0]:
            self._dense[vid] = -1
        else:
            del self._sparse[vid]

    # ------------------------------------------------------------------ container protocol

    def __len__(self) -> int:
        """Return the number of volunteers indexed."""
        return self._count

    def __contains__(self, volunteer_id: object) -> bool:
        """Return whether ``volunteer_id`` is indexed."""
        try:
            vid = operator.index(volunteer_id)  # type: ignore[arg-type]
        except TypeError:
            return False
        return self._slot(vid) >= 0

    @property
    def resolutions(self) -> tuple[int, ...]:
        """The H3 resolutions queries may run at, finest first."""
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
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            _check_latlon(lat, lon)
        if type(at) is datetime and at.tzinfo is not None:
            ts = (at - _EPOCH) // _ONE_US
        else:
            ts = _timestamp_us(at)
        # unit_vector(lat, lon), inlined: the same operations in the same order.
        la = _radians(lat)
        lo = _radians(lon)
        cl = _cos(la)
        x = cl * _cos(lo)
        y = cl * _sin(lo)
        z = _sin(la)
        key = _latlng_to_cell(lat, lon, self._fine)
        dense = self._dense
        slot = int(dense[vid]) if 0 <= vid < dense.shape[0] else self._sparse.get(vid, -1)
        data = self._data
        if slot >= 0:
            data[0, slot] = _NAN  # tombstone the old slot (main or delta)
            self._dead += 1
        else:
            self._count += 1
        new = self._n
        if new == self._cap:
            self._grow(new + 1)
            data = self._data
            dense = self._dense
        self._n = new + 1
        data[0, new] = x
        data[1, new] = y
        data[2, new] = z
        data[3, new] = new
        self._ids[new] = vid
        self._lat[new] = lat
        self._lon[new] = lon
        self._ts[new] = ts
        self._key[new] = key
        if 0 <= vid < dense.shape[0]:
            dense[vid] = new
        else:
            self._set_slot(vid, new)
        if new - self._m + self._dead >= self._merge_at:
            self._rebuild()
        elif new - self._run_end >= self._pending_max:
            self._merge_pending()

    def remove(self, volunteer_id: int) -> None:
        """Remove a volunteer; no error if absent."""
        vid = operator.index(volunteer_id)
        slot = self._slot(vid)
        if slot < 0:
            return
        self._clear_slot(vid)
        self._count -= 1
        self._data[0, slot] = _NAN
        self._dead += 1
        if self._n - self._m + self._dead > self._merge_at:
            self._rebuild()

    def _merge_pending(self) -> None:
        """Sort the pending delta slots into the run (O(run) numpy, every ``_pending_max``)."""
        lo = self._run_end
        hi = self._n
        keys = self._key[lo:hi]
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        order += lo
        at = np.searchsorted(self._run_keys, keys, side="right")
        self._run_keys = np.insert(self._run_keys, at, keys)
        self._run_slots = np.insert(self._run_slots, at, order)
        self._run_end = hi

    def _rebuild(self) -> None:
        """Compact live slots into one region sorted by key; empty the delta."""
        n = self._n
        m = self._m
        alive = ~np.isnan(self._data[0, :n])
        # The main region is sorted already: sort only the (small) delta and merge it in,
        # O(n) instead of an O(n log n) argsort of everything (~3x faster at 1M).
        main = np.flatnonzero(alive[:m])
        delta = np.flatnonzero(alive[m:])
        delta += m
        dkeys = self._key[delta]
        dorder = np.argsort(dkeys, kind="stable")
        delta = delta[dorder]
        dkeys = dkeys[dorder]
        mkeys = self._key[main]
        cnt = main.shape[0] + delta.shape[0]
        at = np.searchsorted(mkeys, dkeys, side="right")
        at += np.arange(delta.shape[0])
        src = np.empty(cnt, dtype=np.int64)
        keys = np.empty(cnt, dtype=np.int64)
        in_main = np.ones(cnt, dtype=bool)
        in_main[at] = False
        src[at] = delta
        src[in_main] = main
        keys[at] = dkeys
        keys[in_main] = mkeys
        old = (self._data, self._ids, self._lat, self._lon, self._ts)
        cap = max(1024, cnt + cnt // 8 + 1024)
        self._alloc(cap)
        data = self._data
        for r in range(3):
            np.take(old[0][r], src, out=data[r, :cnt])
        data[3, :cnt] = np.arange(cnt, dtype=np.float64)
        np.take(old[1], src, out=self._ids[:cnt])
        np.take(old[2], src, out=self._lat[:cnt])
        np.take(old[3], src, out=self._lon[:cnt])
        np.take(old[4], src, out=self._ts[:cnt])
        self._key[:cnt] = keys
        del old
        self._m = self._n = cnt
        self._dead = 0
        self._keys_main = self._key[:cnt]
        self._merge_at = max(self._merge_min, cnt >> 3)
        self._run_keys = self._run_keys[:0]
        self._run_slots = self._run_slots[:0]
        self._run_end = cnt
        self._reindex_ids()

    def _reindex_ids(self) -> None:
        """Rebuild the id -> slot maps from the (freshly compacted) slots."""
        cnt = self._n
        ids = self._ids[:cnt]
        slots = np.arange(cnt, dtype=np.int32)
        hi = int(ids.max()) if cnt else -1
        size = self._dense.shape[0]
        if hi >= size and hi < max(_DENSE_MIN, 2 * cnt + 2):
            size = hi + 1
        self._dense = np.full(size, -1, dtype=np.int32)
        in_dense = (ids >= 0) & (ids < size)
        self._dense[ids[in_dense]] = slots[in_dense]
        if in_dense.all():
            self._sparse = {}
        else:
            out = ~in_dense
            self._sparse = dict(zip(ids[out].tolist(), slots[out].tolist(), strict=True))

    def bulk_load(
        self,
        ids: Sequence[int] | npt.ArrayLike,
        lats: Sequence[float] | npt.ArrayLike,
        lons: Sequence[float] | npt.ArrayLike,
        ats: Sequence[datetime] | npt.ArrayLike,
    ) -> None:
        """Upsert many volunteers at once (start-up rebuild fast path).

        Equivalent to calling :meth:`upsert` for each row in order (a later row for the same id
        wins), but vectorised: about a second per million rows.

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
        fine_res = self._res[0]
        l2c = _h3.latlng_to_cell
        keys = np.fromiter(
            (l2c(a, b, fine_res) for a, b in zip(lat_arr.tolist(), lon_arr.tolist(), strict=True)),
            dtype=np.int64,
            count=n,
        )
        xyz = unit_vectors(lat_arr, lon_arr)
        # Tombstone the current slots of ids already present (validation is over: no raise now).
        if self._count:
            old = np.fromiter((self._slot(v) for v in id_arr.tolist()), np.int64, n)
            old = old[old >= 0]
            self._data[0, old] = _NAN
            self._count -= old.shape[0]
        start = self._n
        self._grow(start + n)
        end = start + n
        self._data[:3, start:end] = xyz
        self._ids[start:end] = id_arr
        self._lat[start:end] = lat_arr
        self._lon[start:end] = lon_arr
        self._ts[start:end] = ts_arr
        self._key[start:end] = keys
        self._n = end
        self._count += n
        self._rebuild()
        self._warm_disks()

    def _warm_disks(self) -> None:
        """Fill the disk cache for the cells queries will start from (start-up only).

        Queries there then skip ~15 us of h3 calls on their first visit (measured: without this,
        60% of the first 2,000 clustered queries at 1M paid it and p99 doubled). A query starts
        at the finest level whose cell holds ``2 * need`` volunteers, else at the coarsest, so
        the coarsest level is warmed for every non-empty cell and the finer ones for the cells
        holding at least ``_WARM_COUNT`` (limits >= 20). Coarsest first, within half the cache.
        """
        keys = self._keys_main
        budget = _DISKS_MAX // 2
        for i in range(self._nres - 1, -1, -1):
            lv = self._levels[i]
            cells, counts = np.unique(
                (keys | lv.mask) & lv.and_mask | lv.res_bits, return_counts=True
            )
            if i < self._nres - 1:
                cells = cells[counts >= _WARM_COUNT]
            if cells.shape[0] > budget:
                return
            budget -= cells.shape[0]
            for c in cells.tolist():
                _disk_info(c, lv)
                _ring_info(c, 2, lv)  # the ring-2 bound and batch (8% of 100k clustered queries)
                _ring_info(c, 3, lv)  # ring 3's bound after a ring-2 batch (another 5%)

    # ------------------------------------------------------------------ reads

    def position(self, volunteer_id: int) -> tuple[float, float, datetime] | None:
        """Return ``(lat, lon, reported_at)`` of a volunteer (time in UTC), or None if absent."""
        slot = self._slot(operator.index(volunteer_id))
        if slot < 0:
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
            limit: maximum number of hits, >= 1.
            max_age_s: if given (finite or infinite, >= 0), skip positions older than this.
            now: the current time (timezone-aware); required when ``max_age_s`` is given.
            exclude: volunteer ids never to return.

        Raises:
            ValueError: on invalid arguments.
        """
        lat = float(lat)
        lon = float(lon)
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            _check_latlon(lat, lon)
        radius_m = float(radius_m)
        if not (0.0 <= radius_m < math.inf):
            raise ValueError(f"radius_m must be finite and >= 0, got {radius_m!r}")
        limit = operator.index(limit)
        if limit <= 0:
            raise ValueError(f"limit must be >= 1, got {limit}")
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
        if not self._count:
            return []
        return _Query(self, lat, lon, radius_m, limit, cutoff_us, exclude).run()


class _Level:
    """Constants of one query resolution ``res`` over keys at resolution ``fine``."""

    __slots__ = ("and_mask", "fine_bits", "mask", "res", "res_bits", "rmax")

    def __init__(self, res: int, fine: int) -> None:
        self.res = res
        self.mask = _digit_mask(res, fine)  # digits res+1..fine of a key
        self.and_mask = ~_RES_MASK
        self.res_bits = res << 52
        self.fine_bits = fine << 52
        # Region radius: the cell's circumradius bound, widened for descendant regions.
        self.rmax = circumradius_bound_m(res) * (1.0 if res == fine else _REGION_FACTOR)


# Pure functions of H3 (independent of any index), bounded caches shared by all indexes.
_CENTRES: dict[int, tuple[float, float, float]] = {}
_CENTRES_MAX: Final = 200_000
# (cell, fine resolution) -> (key bounds of the 7-cell disk, disk cells, centre xyz, G in metres)
_DISKS: dict[tuple[int, int], tuple[I64, list[int], float, float, float, float]] = {}
_DISKS_MAX: Final = 100_000


def _centre(cell: int) -> tuple[float, float, float]:
    c = _CENTRES.get(cell)
    if c is None:
        if len(_CENTRES) >= _CENTRES_MAX:
            _CENTRES.clear()
        c = _CENTRES[cell] = unit_vector(*_h3.cell_to_latlng(cell))
    return c


def _cell_bounds(cells: Sequence[int], lv: _Level) -> list[int]:
    """Key bounds ``[lo0, hi0 + 1, lo1, hi1 + 1, ...]`` of the cells' descendants, merged.

    Sorted by key; ranges that touch (sibling cells) are merged.
    """
    and_mask = lv.and_mask
    fine_bits = lv.fine_bits
    not_mask = ~lv.mask
    out: list[int] = []
    for c in sorted(cells):
        hi = (c & and_mask) | fine_bits  # digits below res are 7 in a res-level cell
        lo = hi & not_mask
        if out and out[-1] == lo:
            out[-1] = hi + 1
        else:
            out.append(lo)
            out.append(hi + 1)
    return out


def _disk_info(c0: int, lv: _Level) -> tuple[I64, list[int], float, float, float, float]:
    """Cached facts about the disk of radius 1 around ``c0`` (see module docstring)."""
    ck = (c0, lv.fine_bits)
    info = _DISKS.get(ck)
    if info is None:
        disk = _h3.grid_disk_unordered(c0, 1)
        bounds = np.array(_cell_bounds(disk, lv), dtype=np.int64)
        cx, cy, cz = _centre(c0)
        best = 4.0
        for cell in _h3.grid_ring_unordered(c0, 2):
            x, y, z = _centre(cell)
            c2 = (x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz)
            best = min(c2, best)
        g = _TWO_R * math.asin(min(1.0, math.sqrt(best) * 0.5))
        if len(_DISKS) >= _DISKS_MAX:
            _DISKS.clear()
        info = _DISKS[ck] = (bounds, disk, cx, cy, cz, g)
    return info


# (cell, k, fine resolution) -> (ring cells, key bounds of their descendants, centres)
_RINGS: dict[tuple[int, int, int], tuple[list[int], I64, list[tuple[float, float, float]]]] = {}
_RINGS_MAX: Final = 100_000


def _ring_info(
    c0: int, k: int, lv: _Level
) -> tuple[list[int], I64, list[tuple[float, float, float]]]:
    """Cached ring ``k`` around ``c0``: its cells, their key bounds and their centres."""
    ck = (c0, k, lv.fine_bits)
    info = _RINGS.get(ck)
    if info is None:
        cells = _h3.grid_ring_unordered(c0, k)
        bounds = np.array(_cell_bounds(cells, lv), dtype=np.int64)
        if len(_RINGS) >= _RINGS_MAX:
            _RINGS.clear()
        info = _RINGS[ck] = (cells, bounds, [_centre(c) for c in cells])
    return info


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
        self.excl_set: frozenset[int] | set[int] = frozenset()
        self.excl_arr: I64 | None = None
        present = [e for e in exclude if e in index] if exclude else []
        if len(present) > _SMALL_EXCLUDE:
            self.excl_arr = np.unique(np.asarray(present, dtype=np.int64))
            self.need = limit
        else:
            self.excl_set = set(present)
            self.need = limit + len(present)

    def run(self) -> list[Hit]:
        index = self.index
        levels = index._levels
        last = index._nres - 1
        fine = _h3.latlng_to_cell(self.lat, self.lon, index._res[0])
        li = last
        nl = last + 1
        sparse = False
        pos: list[int] = []
        if index._m:
            # Counts of the main region in the query's cell at every level, in one call.
            pos = np.searchsorted(
                index._keys_main,
                [fine & m for m in index._sel_lo] + [(fine | m) + 1 for m in index._sel_hi],
            ).tolist()
            threshold = self.need * _LEVEL_FACTOR
            sparse = True
            for i in range(nl):
                if pos[nl + i] - pos[i] >= threshold:
                    li = i
                    sparse = False
                    break
        lv = levels[li]
        c0 = (fine | lv.mask) & lv.and_mask | lv.res_bits
        if sparse:
            # Few volunteers around even at the coarsest level: if the radius, not the N-th
            # distance, will likely bound the search (expected count within the radius, from the
            # cell's count and area, below ``need``), go straight to the disk that covers it.
            rmax = lv.rmax
            area = 2.6 * (rmax / _REGION_FACTOR / 1.05) ** 2
            expected = (pos[2 * last + 1] - pos[last]) * math.pi * self.radius_m**2 / area
            k2 = math.ceil((self.radius_m + 2.0 * rmax) / (1.5 * rmax / (1.05 * 1.1))) - 2
            if expected < self.need and 2 <= k2 <= _MAX_RINGS:
                while self._ring_lb(c0, k2 + 1, lv) <= self.radius_m:
                    k2 += 1
                    if k2 > _MAX_RINGS:
                        return self._scan_all()
                cells = _h3.grid_disk_unordered(c0, k2)
                return self._finish(self._batch(_cell_bounds(cells, lv)))
        bounds, _, cx, cy, cz, g = _disk_info(c0, lv)
        rmax = lv.rmax
        qx, qy, qz = self.q
        dq2 = (qx - cx) * (qx - cx) + (qy - cy) * (qy - cy) + (qz - cz) * (qz - cz)
        dq = _TWO_R * math.asin(min(1.0, math.sqrt(dq2) * 0.5))
        lb = g - dq - rmax - 2e-3 - 2e-9 * g
        k1 = 1
        lb2: float | None = None  # ring 2's exact bound, once computed
        if lb < self.radius_m and pos:
            # Will the N-th distance (estimated from the cell's count and area) exceed what the
            # disk of radius 1 proves? Then take ring 2 in the first batch: one batch of 19
            # cells costs less than two (a second batch is ~25 us of fixed numpy overhead).
            density = (pos[nl + li] - pos[li]) / (2.6 * (rmax / _REGION_FACTOR / 1.05) ** 2)
            if self.need > _RING2_FACTOR * density * math.pi * lb * max(lb, 0.0):
                lb2 = self._ring_lb(c0, 2, lv)  # the exact (and tighter) bound of ring 2
                lb = max(lb, lb2)
            if self.need > _RING2_FACTOR * density * math.pi * lb * max(lb, 0.0):
                ring2 = _ring_info(c0, 2, lv)
                bounds = np.concatenate((bounds, ring2[1]))
                k1 = 2
        hits = self._batch(bounds)
        bound = self._bound(hits)
        if k1 == 1:
            if lb > bound:
                return self._finish(hits)
            if lb2 is None and self._ring_lb(c0, 2, lv) > bound:
                return self._finish(hits)
        elif self._ring_lb(c0, 3, lv) > bound:
            return self._finish(hits)
        # More rings are needed. Guess the last one from the ring spacing (coarser resolution if
        # too many), then verify the guess with the exact bound.
        restart = False
        spacing = 1.5 * rmax / (1.05 * 1.1)
        while True:
            k2 = max(k1 + 1, math.ceil((bound + 2.0 * rmax) / spacing) - 1)
            if k2 <= _MAX_RINGS:
                break
            if li == last:
                return self._scan_all()
            li += 1
            lv = levels[li]
            rmax = lv.rmax
            spacing = 1.5 * rmax / (1.05 * 1.1)
            c0 = (fine | lv.mask) & lv.and_mask | lv.res_bits
            restart = True
        while self._ring_lb(c0, k2 + 1, lv) <= bound:
            k2 += 1
            if k2 > _MAX_RINGS:
                return self._scan_all()
        if restart:
            cells = _h3.grid_disk_unordered(c0, k2)
            return self._finish(self._batch(_cell_bounds(cells, lv)))
        # The rings k1+1..k2 from the cache: bounds need not be merged across rings.
        rings = [_ring_info(c0, k, lv)[1] for k in range(k1 + 1, k2 + 1)]
        hits2 = self._batch(rings[0] if len(rings) == 1 else np.concatenate(rings))
        if hits2:
            hits = sorted(hits + hits2)
        return self._finish(hits)

    def _ring_lb(self, c0: int, k: int, lv: _Level) -> float:
        """Lower bound (m) on the distance from the query to any point outside disk(c0, k-1)."""
        qx, qy, qz = self.q
        best = 4.0
        rmax = lv.rmax
        for x, y, z in _ring_info(c0, k, lv)[2]:
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

    def _batch(self, bounds: Sequence[int] | I64) -> list[tuple[float, int]]:
        """Candidates in the key ranges ``bounds``: the best ``need`` (plus ties), sorted.

        ``bounds`` is ``[lo0, hi0, lo1, hi1, ...]``, disjoint half-open ranges in any order.
        """
        index = self.index
        data = index._data
        got: list[F64] = []
        if index._m:
            pos = np.searchsorted(index._keys_main, bounds).tolist()
            it = iter(pos)
            got = [data[:, a:b] for a, b in zip(it, it, strict=True) if b > a]
        n = index._n
        if n > index._m:
            extra: list[I64] = []
            run_keys = index._run_keys
            if run_keys.shape[0]:
                run_slots = index._run_slots
                it = iter(np.searchsorted(run_keys, bounds).tolist())
                extra = [run_slots[a:b] for a, b in zip(it, it, strict=True) if b > a]
            lo = index._run_end
            if n > lo:
                # Pending slots: a key is in a range iff an odd number of the (sorted, disjoint)
                # bounds are <= it.
                inside = np.searchsorted(np.sort(bounds), index._key[lo:n], side="right")
                inside &= 1
                sel = np.flatnonzero(inside)
                if sel.shape[0]:
                    sel += lo
                    extra.append(sel)
            if extra:
                got.append(data[:, extra[0] if len(extra) == 1 else np.concatenate(extra)])
        if not got:
            return []
        return self._select(got[0] if len(got) == 1 else np.concatenate(got, axis=1))

    def _select(self, data: F64) -> list[tuple[float, int]]:
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
        lim = cap2
        if c2.shape[0] > need:
            kth = float(np.partition(c2, need - 1)[need - 1]) * _TIE_SLACK
            if kth < cap2:  # False for NaN (fewer than need live candidates)
                lim = kth
        sel = np.flatnonzero(c2 <= lim)
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

    def _scan_all(self) -> list[Hit]:
        """Huge radius: every slot (tombstones have NaN distances and drop out)."""
        index = self.index
        return self._finish(self._select(index._data[:, : index._n]))
