"""In-memory index of volunteers' last positions answering "nearest N within a radius".

Layout
------
Each volunteer occupies one *slot* of a set of parallel numpy arrays: ``_data`` (3 rows: the unit
vector x, y, z), id, lat, lon, report time (int64 us since the epoch) and ``key``, the H3 cell at
the finest indexed resolution ``F``: 64 bytes per slot. Slots ``[0, m)`` (the *main* region) are
sorted by key; slots ``[m, n)`` (the *delta* region) are appended by ``upsert`` since the last
rebuild. H3 indexes of one resolution sort hierarchically (base cell, then one 3-bit digit per
resolution), so the res-``F`` descendants of any coarser cell are one contiguous key range: a
binary search turns a cell at *any* coarser resolution into a slice of the main region. One
sorted array therefore serves every resolution, with no per-cell Python objects. The delta is
searched the same way, with no per-resolution structure either: slots ``[m, run_end)`` are listed
in a sorted *run* (keys and slots, two numpy arrays; one more binary search), the newest
``< _PENDING_MAX`` slots ``[run_end, n)`` are *pending* and tested against the key ranges one by
one. Every ``_PENDING_MAX`` (1,024) updates the pending slots are sorted and merged into the run
(``np.insert``, O(run)).

``upsert`` of a new id appends a slot; moving a volunteer tombstones its old slot (x = NaN, so its
distance is NaN and never passes a ``<=`` test) and appends a new one; ``remove`` tombstones.
When the delta plus tombstones exceed ``max(_MERGE_MIN, m / 8)`` the arrays are compacted: the
main region is already sorted, so only the delta is sorted and merged in (O(n) numpy, ~35 ms at
1M). Measured at 1M (200k moves): ~350k upserts/s; the former design (one ``dict`` of cell ->
slots per query resolution, kept up to date on every upsert, and a full argsort per rebuild) did
~165k/s, 60% of it in the five dicts (cache misses and growth at 1M) and 20% in rebuilds.
``bulk_load`` into an empty index (a start-up rebuild) puts the rows in key order as the main
region at once; into a populated one it appends and rebuilds once. Ids map to slots through a
dense ``int32`` array when ids are small non-negative integers (database sequences) and a
``dict`` for the others (~100 bytes more per such id). With capacity slack, the index takes ~77
bytes per volunteer (tracemalloc, ``bench/geoindex.py``), plus its share of the cell table below
(11-26 bytes per volunteer at 100k-1M, clustered the most).

Resolutions
-----------
Queries run at one of :data:`DEFAULT_RESOLUTIONS` (12, 11, 10, 9, 8; keys at res 12), chosen per
query from local density: the finest whose cell around the query point holds at least
``LEVEL_FACTOR * (limit + excluded)`` (= 2x) volunteers, else the coarsest. The 7-cell disk
around the query then holds the answer in a few hundred to ~2,000 candidates and a cheap bound
proves it complete. At 1,000,000 volunteers over 420 km^2 (bench/geoindex.py) uniform queries
run at res 9 (~1,400 candidates, a res-10 cell holds only ~36 volunteers), at 100,000 at res 8
(~1,200); clustered ones at res 10-11 in the centres and res 8-9 in the tail. This was chosen
when a query was ~20 numpy calls (measured then: (11, 10, 9, 8) gave p99 150-280 us; without res
8, 100k uniform queries needed a second ring batch, p50 75 instead of 36 us). With the compiled
kernel (below) fewer candidates pay a little: a level factor of 1 or 0.75 lowered p50 by 1.5-2.5
us at 1M and at 100k clustered, not at all at 100k uniform, but warming its finer cells makes the
cell table 3-4x larger (~40-75 MB at 1M) and ``bulk_load`` ~1.5 s longer, so 2 stays. In sparse
areas where even the coarsest cell predicts fewer than ``need`` volunteers within the radius, the
query goes straight to the disk covering the radius (one batch instead of two).

Search
------
For the chosen resolution, rings around the query cell ``c0`` are processed in at most two
batches: first the disk of radius 1 (or of radius 2, when the N-th distance predicted from the
cell's count and area exceeds what disk 1 can prove); then, if needed, every further ring up to
the first ring ``k + 1`` whose lower bound exceeds the current N-th distance (or the radius). A
batch takes the cells' key ranges one by one, c0's first: the squared chords of a range's
contiguous slots in one vectorised loop, a max-heap of the N smallest so far, and a range whose
cell centre is too far for any of its points to beat the heap's top is skipped unread. Only the
top candidates (ties within ``TIE_SLACK``) are converted to metres and sorted (by distance, then
id).

The stop rule is exact. Points belong to the coarse cell that is the ancestor of their res-``F``
cell, so a coarse cell's *region* is the union of its descendants' cells; these regions tile the
sphere, and regions that touch are grid neighbours. A geodesic from the query (inside region
``c0``) to a point outside the regions of the disk of radius ``k`` must leave them; where it does,
it enters a region of ring ``k + 1``. So every point outside the disk is at least ``min over ring
k+1 of (distance(query, centre) - R)`` away, with ``R`` an upper bound on the distance from a
cell's centre to any point of its region: the proven circumradius bound
(:func:`geoindex._geometry.circumradius_bound_m`) times ``REGION_FACTOR`` for coarser levels
(descendant regions of an aperture-7 hexagon reach at most sqrt(3)/(sqrt(7) - 1) ~ 1.053 times its
circumradius from its centre; 1.10 is used). The same ``R`` (as a chord, which is shorter than
the arc) bounds the skip of a cell's range. For the disk of radius 1 a cheaper form is tried
first: ``G(c0) - distance(query, centre(c0)) - R`` with ``G(c0)`` the smallest distance between
the centre of ``c0`` and a ring-2 centre (triangle inequality). Pentagons and icosahedron edges
need no special case (h3's rings are pentagon-safe and the bound covers every cell); the
antimeridian and poles need none either, as everything is 3-D vectors. Radii that would need
more than ``MAX_RINGS`` rings at the coarsest resolution fall back to a scan of every slot.

Compiled kernel
---------------
A query used to be ~20 numpy calls; ~2/3 of its time was call overhead, and the p99 is the p50
plus the VM's scheduling pauses, so only fewer Python -> C transitions could lower both. Now one
numba call (:func:`geoindex._kernels.query`) does the common case whole: level choice, the cell
table lookup, the first batch, the stop rule and, when that fails and ring 2 alone is the next
step, that second batch and the merge. Python keeps what needs h3 or is rare: a cell missing from
the table (the kernel says so; ~15-20 us of h3 calls, then the kernel is called again), the sparse
path, batches beyond ring 2 (:func:`geoindex._kernels.batch`, one call each) and the last step of
every query: ``np.arcsin`` and the ``Hit`` objects. That step stays numpy because the reference
distance is numpy's: its arcsin (SVML on AVX-512) and libm's, which compiled code would call,
differ in the last bit for some inputs (9% of those in [0, 0.5]). Everything before is the same
IEEE arithmetic in the same order as the numpy code was (``(dx*dx + dy*dy) + dz*dz``, exact
``sqrt``, ``* 0.5``, ``min``; numba neither fuses to FMA nor reassociates without fastmath). The
kernel sorts by (chord, id) and checks that adjacent chords are equal or 1e-12 apart (far beyond
arcsin's 4 ulp error): then that order is the (distance, id) order and Python needs no sort;
otherwise it sorts. The kernel's own use of distances (the stop rule) goes through libm with a
1e-12 relative slack.

The per-cell facts the kernel reads (for a query-level cell: the key ranges and centres of its
disk's and ring 2's cells, ``G``, ring 3's centres) are a pure function of H3, kept in one numpy
table per fine resolution shared by all indexes (``_CellTable``; ~1.3 KB per cell, an
open-addressing hash finds the row). ``bulk_load`` warms it for the cells queries start from
(every non-empty cell of the coarsest level, cells with >= ``_WARM_COUNT`` volunteers of the
finer ones; 7,000-13,000 cells at 1M, 0.5-0.7 s of h3 calls): without warming (measured with the
former per-cell dicts), 60% of the first 2,000 clustered queries at 1M and 13% at 100k paid the
cold-cell cost, and it set p99.

Measured (bench/geoindex.py data, this module before and after, interleaved runs on the same
2-core VM, 2,000 queries, limit 30): p50 72-85 -> 25-32 us at 100k and 1M, uniform and clustered;
p99 of each query's best of three runs 79-111 -> 29-37 us (the run-by-run p99 is the VM's pauses:
~400/s of 20-200 us). Of the ~26 us at 100k, ~2-3 us is numba's argument handling, ~9 us the
kernel (5 us when run twice in a row: the rest is cache misses after the Python in between) and
~13 us Python, half of it building the 30 ``Hit`` objects. Tried and dropped: a float32 copy of
the unit vectors as a pre-filter (half the memory traffic; 1-2 us slower), binary searches in
lock step or through a cached sample of the keys (no measurable change). The garbage collector
ran 0 times in 2,000-query loops: a query's objects are freed before the next one. Start-up:
importing numba adds ~0.3 s and ~90 MB RSS; the first ``VolunteerIndex()`` loads the compiled
kernels from numba's cache (``__pycache__``) in ~0.2 s (+~55 MB), or compiles them in ~10 s
when the cache is missing or stale, so deployments should build it once (e.g. at image build).
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

from . import _h3, _kernels
from ._geometry import (
    EARTH_RADIUS_M,
    circumradius_bound_m,
    m_to_chord2_cap,
    unit_vector,
    unit_vectors,
)

__all__ = ["DEFAULT_RESOLUTIONS", "Hit", "VolunteerIndex", "point_cell"]

_radians = math.radians
_cos = math.cos
_sin = math.sin
_latlng_to_cell = _h3.latlng_to_cell_fast
_arcsin = np.arcsin

DEFAULT_RESOLUTIONS: Final = (12, 11, 10, 9, 8)
# An H3 index keeps its resolution in bits 52-55.
_H3_RES_SHIFT: Final = 52


def point_cell(lat: float, lon: float) -> int:
    """The cell an index with the default resolutions files ``(lat, lon)`` under.

    Store it beside a position and hand it to :meth:`VolunteerIndex.bulk_load` to skip
    the h3 call per row when rebuilding.
    """
    return _h3.latlng_to_cell(lat, lon, DEFAULT_RESOLUTIONS[0])


"""H3 resolutions a query may run at, finest first (chosen by benchmark, see module docstring)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_MAX_RINGS: Final = _kernels.MAX_RINGS
_REGION_FACTOR: Final = _kernels.REGION_FACTOR
_TWO_R: Final = 2.0 * EARTH_RADIUS_M
_SMALL_EXCLUDE: Final = 32
_MERGE_MIN: Final = 4096
_PENDING_MAX: Final = 1024
_DENSE_MIN: Final = 1 << 16
_TABLE_MAX: Final = 1 << 16  # rows of the cell table (~1.3 KB each)
_WARM_COUNT: Final = 40
_RES_MASK: Final = 0xF << 52
_NAN: Final = math.nan
_NO_CUTOFF: Final = _kernels.NO_CUTOFF
_NO_EXCLUDE: Final = np.empty(0, dtype=np.int64)
_DONE: Final = _kernels.DONE
_MISS: Final = _kernels.MISS
_SPARSE: Final = _kernels.SPARSE
_warm = [False]  # kernels compiled or loaded (first VolunteerIndex())
_CAP2: dict[float, float] = {}  # radius -> m_to_chord2_cap(radius)

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


def _stable_order(keys: I64) -> I64:
    """``np.argsort(keys, kind="stable")`` for non-negative keys, ~5x faster when it can.

    The keys' varying bits and the row number are packed into one int64, unique, so any
    sort gives the stable order and numpy's fastest (unstable, vectorised) one can be used.
    H3 cells of one city vary in ~24 bits, leaving room for row numbers of any table size.
    """
    n = keys.shape[0]
    if n < 2:
        return np.arange(n, dtype=np.int64)
    low = int(keys.min())
    packed = keys - low
    varying = int(np.bitwise_or.reduce(packed))
    if low < 0 or not varying:
        return np.argsort(keys, kind="stable") if low < 0 else np.arange(n, dtype=np.int64)
    shift = (varying & -varying).bit_length() - 1  # bits below are equal in every key
    row_bits = (n - 1).bit_length()
    if (varying >> shift).bit_length() + row_bits > 63:
        return np.argsort(keys, kind="stable")
    packed >>= shift
    packed <<= row_bits
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    packed &= (1 << row_bits) - 1
    return packed


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
        "_lvl",
        "_m",
        "_merge_at",
        "_merge_min",
        "_n",
        "_nres",
        "_pending_max",
        "_res",
        "_rmaxs",
        "_run_end",
        "_run_keys",
        "_run_slots",
        "_sparse",
        "_table",
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
        # Per-level constants for the query kernel: lo masks, hi masks, and masks, res bits.
        self._lvl: I64 = np.array(
            [
                [~lv.mask for lv in self._levels],
                [lv.mask for lv in self._levels],
                [lv.and_mask for lv in self._levels],
                [lv.res_bits for lv in self._levels],
            ],
            dtype=np.int64,
        )
        self._rmaxs: F64 = np.array([lv.rmax for lv in self._levels], dtype=np.float64)
        self._table = _CellTable.for_resolution(fine)
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
        if not _warm[0]:
            _kernels.warm()  # compile or load from numba's cache now, not in the first query
            _warm[0] = True

    def _alloc(self, cap: int) -> None:
        self._cap = cap
        self._data: F64 = np.empty((3, cap), dtype=np.float64)
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
        dorder = _stable_order(dkeys)
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
        self._install(src, keys, self._ids, self._lat, self._lon, self._ts, self._data)

    def _install(
        self, src: I64, keys: I64, ids: I64, lats: F64, lons: F64, ts: I64, data: F64 | None
    ) -> None:
        """Make rows ``src`` of the given columns (in that order) the whole, sorted main region.

        ``keys`` are their keys (sorted). Without ``data`` the unit vectors are computed from
        the gathered coordinates: element-wise, so the same values as gathering them.
        """
        cnt = src.shape[0]
        cap = max(1024, cnt + cnt // 8 + 1024)
        self._alloc(cap)
        np.take(ids, src, out=self._ids[:cnt])
        np.take(lats, src, out=self._lat[:cnt])
        np.take(lons, src, out=self._lon[:cnt])
        np.take(ts, src, out=self._ts[:cnt])
        if data is None:
            unit_vectors(self._lat[:cnt], self._lon[:cnt], out=self._data[:, :cnt])
        else:
            for r in range(3):
                np.take(data[r], src, out=self._data[r, :cnt])
        self._key[:cnt] = keys
        self._m = self._n = cnt
        self._count = cnt
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
        cells: npt.ArrayLike | None = None,
        *,
        warm: bool = True,
    ) -> None:
        """Upsert many volunteers at once (start-up rebuild fast path).

        Equivalent to calling :meth:`upsert` for each row in order (a later row for the same id
        wins), but vectorised: about a second per million rows.

        Args:
            ids: volunteer ids (list or integer numpy array).
            lats: latitudes in degrees.
            lons: longitudes in degrees.
            ats: timezone-aware datetimes, or a numpy ``datetime64`` array read as UTC.
            cells: optional H3 cells of the points at the index's finest resolution, as
                computed by :func:`point_cell` when the position was stored; 0 (or a cell
                at another resolution) means unknown, and such cells are computed here.
            warm: fill the shared cell table for the loaded cells now; ``False`` leaves it to
                :meth:`warm_cells`, which a caller can run in steps later.

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
        known = np.zeros(n, np.int64) if cells is None else np.asarray(cells, np.int64).ravel()
        if known.shape[0] != n:
            raise ValueError("cells must have one entry per row")
        # Keep the last row per id, as sequential upserts would. A sort finds duplicates
        # at under half the cost of the unique() that drops them (a table's primary key
        # never has any).
        by_id = np.sort(id_arr)
        if (by_id[1:] == by_id[:-1]).any():
            _, rev_first = np.unique(id_arr[::-1], return_index=True)
            keep = np.sort(n - 1 - rev_first)
            id_arr, lat_arr, lon_arr, ts_arr, known = (
                id_arr[keep],
                lat_arr[keep],
                lon_arr[keep],
                ts_arr[keep],
                known[keep],
            )
            n = id_arr.shape[0]
        keys = self._cells(lat_arr, lon_arr, known)
        if not self._n:
            # Empty (a start-up rebuild): the rows become the main region in key order at
            # once, each column gathered once and the unit vectors computed in place; the
            # same slots as appending them and compacting.
            order = _stable_order(keys)
            self._install(order, keys[order], id_arr, lat_arr, lon_arr, ts_arr, None)
        else:
            self._append(id_arr, lat_arr, lon_arr, ts_arr, keys)
        if warm:
            self._warm_cells()

    def _append(self, ids: I64, lats: F64, lons: F64, ts: I64, keys: I64) -> None:
        """Upsert validated rows with distinct ids: append them, then compact."""
        n = ids.shape[0]
        xyz = unit_vectors(lats, lons)
        # Tombstone the current slots of ids already present (validation is over: no raise now).
        if self._count:
            old = np.fromiter((self._slot(v) for v in ids.tolist()), np.int64, n)
            old = old[old >= 0]
            self._data[0, old] = _NAN
            self._count -= old.shape[0]
        start = self._n
        self._grow(start + n)
        end = start + n
        self._data[:, start:end] = xyz
        self._ids[start:end] = ids
        self._lat[start:end] = lats
        self._lon[start:end] = lons
        self._ts[start:end] = ts
        self._key[start:end] = keys
        self._n = end
        self._count += n
        self._rebuild()

    def _cells(
        self,
        lats: npt.NDArray[np.float64],
        lons: npt.NDArray[np.float64],
        known: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.int64]:
        """Finest-level cells of the points: the known ones kept, the rest computed."""
        fine_res = self._res[0]
        usable = (known > 0) & (((known >> _H3_RES_SHIFT) & 0xF) == fine_res)
        keys = np.where(usable, known, 0).astype(np.int64)
        todo = np.flatnonzero(~usable)
        if todo.shape[0]:
            l2c = _h3.latlng_to_cell
            keys[todo] = np.fromiter(
                (
                    l2c(a, b, fine_res)
                    for a, b in zip(lats[todo].tolist(), lons[todo].tolist(), strict=True)
                ),
                dtype=np.int64,
                count=todo.shape[0],
            )
        return keys

    def warm_cells(self, step: int = 2_000) -> Iterator[None]:
        """Fill the cell table as :meth:`bulk_load` does when ``warm=False``, in steps.

        Yields after every ``step`` cells, so a service can spread the work over its event
        loop after it started answering (queries are correct without it, only ~15 us slower
        on a cell's first visit).
        """
        for n, _ in enumerate(self._warm_each(), start=1):
            if n % step == 0:
                yield

    def _warm_cells(self) -> None:
        for _ in self._warm_each():
            pass

    def _warm_each(self) -> Iterator[None]:
        """Fill the cell table for the cells queries will start from (start-up only).

        Queries there then skip ~15 us of h3 calls on their first visit (measured: without this,
        60% of the first 2,000 clustered queries at 1M paid it and p99 doubled). A query starts
        at the finest level whose cell holds ``2 * need`` volunteers, else at the coarsest, so
        the coarsest level is warmed for every non-empty cell and the finer ones for the cells
        holding at least ``_WARM_COUNT`` (limits >= 20). Coarsest first, within half the table.
        """
        keys = self._keys_main
        table = self._table
        budget = _TABLE_MAX // 2
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
                table.add(c, lv)
                yield

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

    def reported_before(self, cutoff: datetime) -> list[int]:
        """Ids of the volunteers whose position was reported before ``cutoff`` (aware)."""
        limit = _timestamp_us(cutoff)
        n = self._n
        live = ~np.isnan(self._data[0, :n])
        stale: list[int] = self._ids[:n][live & (self._ts[:n] < limit)].tolist()
        return stale

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
        cutoff_us = _NO_CUTOFF
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
        excl = _NO_EXCLUDE
        need = limit  # for level and ring predictions; the kernel drops excluded ids itself
        if exclude:
            present = sorted({e for e in exclude if e in self})
            if present:
                excl = np.array(present, dtype=np.int64)
                if len(present) <= _SMALL_EXCLUDE:
                    need = limit + len(present)
        cap2 = _CAP2.get(radius_m)
        if cap2 is None:
            if len(_CAP2) >= 1024:
                _CAP2.clear()
            cap2 = _CAP2[radius_m] = m_to_chord2_cap(radius_m)
        # unit_vector(lat, lon), inlined: the same operations in the same order.
        la = _radians(lat)
        lo = _radians(lon)
        cl = _cos(la)
        q = (cl * _cos(lo), cl * _sin(lo), _sin(la))
        fine: int = _latlng_to_cell(lat, lon, self._fine)
        status, li, c0, k, half, vids = _query_kernel(
            self, fine, q, radius_m, cap2, limit, need, cutoff_us, excl
        )
        if status == _DONE and k:  # the common case: complete, in order, cut to limit
            return _hits_in_order(half, vids, radius_m)
        query = _Query(self, fine, q, radius_m, cap2, limit, need, cutoff_us, excl)
        return query.resume(status, li, c0, k, half, vids)


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


def _centre(cell: int) -> tuple[float, float, float]:
    c = _CENTRES.get(cell)
    if c is None:
        if len(_CENTRES) >= _CENTRES_MAX:
            _CENTRES.clear()
        c = _CENTRES[cell] = unit_vector(*_h3.cell_to_latlng(cell))
    return c


def _cell_range(cell: int, lv: _Level) -> tuple[int, int]:
    """Key range ``[lo, hi)`` of the descendants of ``cell`` (a cell of level ``lv``)."""
    hi = (cell & lv.and_mask) | lv.fine_bits  # digits below res are 7 in a res-level cell
    return hi & ~lv.mask, hi + 1


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


class _CellTable:
    """Per-cell facts the query kernel reads, for one fine resolution (shared by indexes).

    For a query-level cell ``c0``: the key range and centre of each cell of its disk of radius 1
    (c0 first, then by key, so that siblings' ranges touch) and of ring 2, ``G`` (module
    docstring) and the centres of ring 3, in two numpy arrays (row layout:
    ``geoindex._kernels.TI_*``/``TF_*``) found through an open-addressing hash (``tab``). A pure
    function of H3; emptied when it would outgrow ``_TABLE_MAX`` rows.
    """

    __slots__ = ("cap", "cells", "n", "tab", "tf", "ti")

    @staticmethod
    def for_resolution(fine: int) -> _CellTable:
        table = _TABLES.get(fine)
        if table is None:
            table = _TABLES[fine] = _CellTable()
        return table

    def __init__(self) -> None:
        self._reset(256)

    def _reset(self, cap: int) -> None:
        self.cap = cap
        self.n = 0
        self.cells: I64 = np.zeros(cap, dtype=np.int64)
        self.tab: I64 = np.zeros((2 * cap, 2), dtype=np.int64)
        self.ti: I64 = np.zeros((cap, _kernels.TI_WIDTH), dtype=np.int64)
        self.tf: F64 = np.zeros((cap, _kernels.TF_WIDTH), dtype=np.float64)

    def _grow(self) -> None:
        n = self.n
        if 2 * self.cap > _TABLE_MAX:
            self._reset(256)
            return
        old = (self.cells, self.ti, self.tf)
        self._reset(2 * self.cap)
        self.cells[:n] = old[0][:n]
        self.ti[:n] = old[1][:n]
        self.tf[:n] = old[2][:n]
        self.n = n
        put = _kernels.put
        tab = self.tab
        for row, cell in enumerate(old[0][:n].tolist()):
            put(tab, cell, row)

    def add(self, c0: int, lv: _Level) -> None:
        """Compute and store the facts of cell ``c0`` (query level ``lv``) unless present."""
        if _kernels.find(self.tab, c0) >= 0:
            return
        # c0 first: its volunteers are the likely nearest, so the kernel's threshold is tight
        # from the start and farther cells are skipped without being read.
        # The others in key order, so that siblings' ranges touch and share a search.
        disk = [c0, *sorted(c for c in _h3.grid_disk_unordered(c0, 1) if c != c0)]
        ring2 = sorted(_h3.grid_ring_unordered(c0, 2))
        ring3 = _h3.grid_ring_unordered(c0, 3)
        if len(disk) > 7 or len(ring2) > 12 or len(ring3) > 18:  # never, for an H3 grid
            raise AssertionError(f"unexpected ring sizes around {c0:#x}")
        centres = [_centre(c) for c in disk + ring2]
        cx, cy, cz = centres[0]
        best = 4.0
        for x, y, z in centres[len(disk) :]:
            c2 = (x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz)
            best = min(c2, best)
        g = _TWO_R * math.asin(min(1.0, math.sqrt(best) * 0.5))
        if self.n == self.cap:
            self._grow()
        row = self.n
        ti = self.ti[row]
        tf = self.tf[row]
        ti[_kernels.TI_ND] = len(disk)
        ti[_kernels.TI_N2] = len(ring2)
        at = _kernels.TI_CELLS
        ti[at : at + 2 * len(centres)] = [b for c in disk + ring2 for b in _cell_range(c, lv)]
        tf[_kernels.TF_CENTRE : _kernels.TF_CENTRE + 3] = (cx, cy, cz)
        tf[_kernels.TF_G] = g
        at = _kernels.TF_CELLS
        tf[at : at + 3 * len(centres)] = [v for c in centres for v in c]
        tf[_kernels.TF_N3] = len(ring3)
        at = _kernels.TF_RING3
        tf[at : at + 3 * len(ring3)] = [v for c in ring3 for v in _centre(c)]
        self.cells[row] = c0
        _kernels.put(self.tab, c0, row)
        self.n = row + 1


_TABLES: dict[int, _CellTable] = {}  # fine resolution -> its table


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


def _query_kernel(
    index: VolunteerIndex,
    fine: int,
    q: tuple[float, float, float],
    radius_m: float,
    cap2: float,
    limit: int,
    need: int,
    cutoff_us: int,
    excl: I64,
) -> tuple[int, int, int, int, F64, I64]:
    """The common path of a query in one compiled call: :func:`geoindex._kernels.query`."""
    table = index._table
    return _kernels.query(
        index._key,
        index._m,
        index._run_keys,
        index._run_slots,
        index._run_end,
        index._n,
        index._data,
        index._ids,
        index._ts,
        index._lvl,
        index._rmaxs,
        table.tab,
        table.ti,
        table.tf,
        fine,
        q[0],
        q[1],
        q[2],
        radius_m,
        cap2,
        limit,
        need,
        cutoff_us,
        excl,
    )


def _hits_in_order(half: F64, vids: I64, radius_m: float) -> list[Hit]:
    """Hits from a kernel's ``(half, vid)`` known to be in (distance, id) order already.

    The distances are finished here with numpy's ``arcsin``, the reference's.
    """
    dist = _arcsin(half, out=half)
    dist *= _TWO_R
    dl = dist.tolist()
    if dl and dl[-1] > radius_m:  # chords <= cap2 can exceed the radius by ~1e-9
        del dl[bisect.bisect_right(dl, radius_m) :]
    out: list[Hit] = []
    new = _new_hit
    set_id = _set_hit_id
    set_d = _set_hit_d
    for d, vid in zip(dl, vids.tolist(), strict=False):
        hit = new(Hit)
        set_id(hit, vid)
        set_d(hit, d)
        out.append(hit)
    return out


class _Query:
    """The rest of a ``nearest`` call the kernel did not finish: state shared by the batches."""

    __slots__ = (
        "cap2",
        "cutoff_us",
        "excl",
        "fine",
        "index",
        "limit",
        "need",
        "q",
        "radius_m",
    )

    def __init__(
        self,
        index: VolunteerIndex,
        fine: int,
        q: tuple[float, float, float],
        radius_m: float,
        cap2: float,
        limit: int,
        need: int,
        cutoff_us: int,
        excl: I64,
    ) -> None:
        self.index = index
        self.fine = fine
        self.q = q
        self.radius_m = radius_m
        self.cap2 = cap2
        self.limit = limit
        self.need = need
        self.cutoff_us = cutoff_us
        self.excl = excl

    def resume(self, status: int, li: int, c0: int, k1: int, half: F64, vids: I64) -> list[Hit]:
        """Finish a query from the kernel's answer (see :func:`geoindex._kernels.query`)."""
        index = self.index
        while status == _MISS:
            index._table.add(c0, index._levels[li])  # a cold cell: ~15-20 us of h3 calls
            status, li, c0, k1, half, vids = _query_kernel(
                index,
                self.fine,
                self.q,
                self.radius_m,
                self.cap2,
                self.limit,
                self.need,
                self.cutoff_us,
                self.excl,
            )
        if status == _DONE:
            if k1:
                return _hits_in_order(half, vids, self.radius_m)
            return self._finish(self._hits(half, vids))
        fine = self.fine
        levels = index._levels
        last = index._nres - 1
        lv = levels[li]
        rmax = lv.rmax
        if status == _SPARSE:
            # Few volunteers around even at the coarsest level: the disk of radius ``k1`` likely
            # covers the radius; make sure of it with the exact bound.
            k2 = k1
            while self._ring_lb(c0, k2 + 1, lv) <= self.radius_m:
                k2 += 1
                if k2 > _MAX_RINGS:
                    return self._scan_all()
            cells = _h3.grid_disk_unordered(c0, k2)
            return self._finish(self._batch(np.array(_cell_bounds(cells, lv), dtype=np.int64)))
        # The first batch (disk of radius k1) did not prove itself complete.
        hits = self._hits(half, vids)
        bound = self._bound(hits)
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
            return self._finish(self._batch(np.array(_cell_bounds(cells, lv), dtype=np.int64)))
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
        limit = self.limit
        if len(hits) >= limit:
            return min(self.radius_m, hits[limit - 1][0])
        return self.radius_m

    def _finish(self, hits: list[tuple[float, int]]) -> list[Hit]:
        out: list[Hit] = []
        new = _new_hit
        set_id = _set_hit_id
        set_d = _set_hit_d
        for d, vid in hits[: self.limit]:
            hit = new(Hit)
            set_id(hit, vid)
            set_d(hit, d)
            out.append(hit)
        return out

    def _batch(self, bounds: I64, scan_all: bool = False) -> list[tuple[float, int]]:
        """Candidates in the key ranges ``bounds``: the best ``limit`` (plus ties), sorted.

        ``bounds`` is ``[lo0, hi0, lo1, hi1, ...]``, disjoint half-open ranges in any order (or
        every slot, with ``scan_all``); see :func:`geoindex._kernels.batch`.
        """
        index = self.index
        qx, qy, qz = self.q
        half, vids = _kernels.batch(
            index._key,
            index._m,
            index._run_keys,
            index._run_slots,
            index._run_end,
            index._n,
            index._data,
            index._ids,
            index._ts,
            bounds,
            qx,
            qy,
            qz,
            self.cap2,
            self.limit,
            self.cutoff_us,
            self.excl,
            scan_all,
        )
        return self._hits(half, vids)

    def _hits(self, half: F64, vids: I64) -> list[tuple[float, int]]:
        """``(distance, id)`` sorted, within the radius, from a kernel's ``(half, vid)``.

        The distances are finished here with numpy's ``arcsin``, the reference's.
        """
        dist = _arcsin(half, out=half)
        dist *= _TWO_R
        # Already in (chord, id) order, so this sort is one linear pass unless arcsin maps two
        # chords to one distance (then ids decide, as in the reference).
        hits = sorted(zip(dist.tolist(), vids.tolist(), strict=True))
        radius = self.radius_m
        if hits and hits[-1][0] > radius:  # chords <= cap2 can exceed the radius by ~1e-9
            del hits[bisect.bisect_right(hits, (radius, math.inf)) :]
        return hits

    def _scan_all(self) -> list[Hit]:
        """Huge radius: every slot (tombstones have NaN distances and drop out)."""
        return self._finish(self._batch(_NO_EXCLUDE, scan_all=True))
