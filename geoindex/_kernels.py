"""Compiled (numba) kernels of :class:`geoindex.VolunteerIndex` queries.

:func:`query` does a whole common-case query in one call (level choice, the first ring batches,
the exact stop rule); :func:`batch` is one ring batch for the rarer paths that
:mod:`geoindex.index` finishes in Python. See the module docstring of :mod:`geoindex.index` for
the algorithm and for why it is compiled.

Exactness: the arithmetic is the former numpy path's, operation for operation. Squared chords
are ``(dx * dx + dy * dy) + dz * dz`` with ``dx = x - qx`` (numba neither contracts to FMA nor
reassociates without ``fastmath``), and ``sqrt``, ``* 0.5`` and ``min`` are exact IEEE
operations. ``arcsin`` is *not* done here: numpy's (SVML on AVX-512 machines) and libm's, which
compiled code calls, differ in the last bit for some inputs (0.3% of those in [0, 0.01], 9% in
[0, 0.5], measured), and the reference distance is numpy's, so callers finish the distances with
``np.arcsin``. Where a kernel needs a distance itself (the stop rule) it uses libm's with a
relative slack of 1e-12, far above their differences; results leave sorted by (chord, id), with a
flag saying whether that is certainly the (distance, id) order too (:func:`_in_order`).

The jitted functions keep their Python signatures (:func:`_jit` is typed as the identity), so
the rest of the package stays ``mypy --strict`` clean; :func:`warm` compiles or loads them from
numba's on-disk cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

from ._geometry import EARTH_RADIUS_M

__all__ = ["batch", "find", "put", "query", "warm"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
_F = TypeVar("_F", bound=Callable[..., object])

NO_CUTOFF: Final = -(2**63)
"""``cutoff`` meaning "no freshness filter" (every int64 timestamp is >= it)."""
TIE_SLACK: Final = 1.0 + 1e-12
"""Chords within this factor of the N-th smallest are kept, so rounding cannot drop a tie."""
ORDER_GAP: Final = 1.0 + 1e-12
"""Chords this far apart certainly give distinct numpy distances (see :func:`_in_order`)."""
TWO_R: Final = 2.0 * EARTH_RADIUS_M
LEVEL_FACTOR: Final = 2.0
REGION_FACTOR: Final = 1.10
RING2_FACTOR: Final = 1.5
MAX_RINGS: Final = 40
_RUN: Final = 32  # insertion-sorted run length of the merge sorts
HASH_MUL: Final = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64 (Fibonacci hashing)

# query() statuses.
DONE: Final = 0
MISS: Final = 1
SPARSE: Final = 2
MORE: Final = 3

# Per-cell table rows: int64 ``ti`` and float64 ``tf``, for a query-level cell c0. ``ti``: the
# number of cells of the disk of radius 1 (c0 first), of ring 2, then the key range [lo, hi) of
# each of those cells (disk first). ``tf``: c0's centre, G (module docstring of geoindex.index),
# the centre of each disk and ring-2 cell (same order), then the number of ring-3 cells and their
# centres. A disk has <= 7 cells, ring k <= 6k.
TI_ND: Final = 0
TI_N2: Final = 1
TI_CELLS: Final = 2
TI_WIDTH: Final = 2 + 2 * 19
TF_CENTRE: Final = 0
TF_G: Final = 3
TF_CELLS: Final = 4
TF_N3: Final = 4 + 3 * 19
TF_RING3: Final = TF_N3 + 1
TF_WIDTH: Final = TF_RING3 + 3 * 18


def _jit(func: _F) -> _F:
    """``numba.njit`` (no GIL, no bounds checks), cached on disk when a cache dir is writable.

    Typed as the identity: callers see (and mypy checks) the Python signature.
    """
    try:
        jitted = numba.njit(func, cache=True, nogil=True, error_model="numpy", boundscheck=False)
    except RuntimeError:  # no writable cache location: compile in every process
        jitted = numba.njit(func, nogil=True, error_model="numpy", boundscheck=False)
    return cast(_F, jitted)


def _lower(a: I64, lo: int, hi: int, v: int) -> int:
    """First index in ``[lo, hi)`` with ``a[i] >= v`` (``np.searchsorted`` side="left")."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


_lower_jit = _jit(_lower)


def _level(
    key: I64, m: int, fine: int, lo_masks: I64, hi_masks: I64, threshold: float
) -> tuple[int, int, bool]:
    """Pick the query level: ``(level, count in its cell, sparse)``.

    Level ``i``'s cell around the res-``F`` key ``fine`` holds the main-region keys in
    ``[fine & lo_masks[i], (fine | hi_masks[i]) + 1)``. The level is the first (finest) whose
    count is ``>= threshold``, else the coarsest, ``sparse``.
    """
    last = lo_masks.shape[0] - 1
    for i in range(last):
        a = _lower_jit(key, 0, m, fine & lo_masks[i])
        b = _lower_jit(key, a, m, (fine | hi_masks[i]) + 1)
        if b - a >= threshold:
            return i, b - a, False
    a = _lower_jit(key, 0, m, fine & lo_masks[last])
    b = _lower_jit(key, a, m, (fine | hi_masks[last]) + 1)
    return last, b - a, b - a < threshold


_level_jit = _jit(_level)


def _sort_keys(a: I64) -> I64:
    """Sort ``a`` (in place; returned): insertion sorts of short runs, then bottom-up merges."""
    n = a.shape[0]
    for lo in range(0, n, _RUN):
        for i in range(lo + 1, min(lo + _RUN, n)):
            v = a[i]
            j = i
            while j > lo and a[j - 1] > v:
                a[j] = a[j - 1]
                j -= 1
            a[j] = v
    if n <= _RUN:
        return a
    b = np.empty(n, dtype=np.int64)
    width = _RUN
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            for k in range(lo, hi):
                if j >= hi or (i < mid and a[i] <= a[j]):
                    b[k] = a[i]
                    i += 1
                else:
                    b[k] = a[j]
                    j += 1
        a, b = b, a
        width *= 2
    return a


_sort_keys_jit = _jit(_sort_keys)


def _sort_pairs(c2: F64, v: I64) -> tuple[F64, I64]:
    """Sort by (chord, id) (in place or not; returned), as :func:`_sort_keys` does."""
    n = c2.shape[0]
    for lo in range(0, n, _RUN):
        for i in range(lo + 1, min(lo + _RUN, n)):
            c = c2[i]
            x = v[i]
            j = i
            while j > lo and (c2[j - 1] > c or (c2[j - 1] == c and v[j - 1] > x)):
                c2[j] = c2[j - 1]
                v[j] = v[j - 1]
                j -= 1
            c2[j] = c
            v[j] = x
    if n <= _RUN:
        return c2, v
    c2b = np.empty(n, dtype=np.float64)
    vb = np.empty(n, dtype=np.int64)
    width = _RUN
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i = lo
            j = mid
            for k in range(lo, hi):
                if j >= hi or (i < mid and (c2[i] < c2[j] or (c2[i] == c2[j] and v[i] < v[j]))):
                    c2b[k] = c2[i]
                    vb[k] = v[i]
                    i += 1
                else:
                    c2b[k] = c2[j]
                    vb[k] = v[j]
                    j += 1
        c2, c2b = c2b, c2
        v, vb = vb, v
        width *= 2
    return c2, v


_sort_pairs_jit = _jit(_sort_pairs)


def _delta(
    key: I64, run_keys: I64, run_slots: I64, run_end: int, n: int, cells: I64, nb: int
) -> I64:
    """Delta slots whose key is in one of the ranges ``cells[:nb]`` (``[lo0, hi0, ...]``).

    The ranges are disjoint (they may touch), in any order. The delta is the sorted run
    (``run_keys``, ``run_slots``) and the pending slots ``[run_end, n)``.
    """
    nrun = run_keys.shape[0]
    if n == run_end and nrun == 0:
        return np.empty(0, dtype=np.int64)
    total = n - run_end
    for r in range(nb >> 1):
        a = _lower_jit(run_keys, 0, nrun, cells[2 * r])
        total += _lower_jit(run_keys, a, nrun, cells[2 * r + 1]) - a
    extra = np.empty(total, dtype=np.int64)
    ne = 0
    for r in range(nb >> 1):
        a = _lower_jit(run_keys, 0, nrun, cells[2 * r])
        b = _lower_jit(run_keys, a, nrun, cells[2 * r + 1])
        for t in range(a, b):
            extra[ne] = run_slots[t]
            ne += 1
    if n > run_end:
        # Pending slots: a key is in a range iff an odd number of the sorted bounds are <= it
        # (touching ranges put hi and the next lo at the same value: still right).
        sb = _sort_keys_jit(cells[:nb].copy())
        for s in range(run_end, n):
            k = key[s]
            lo = 0
            hi = nb
            while lo < hi:  # first bound > k (side="right")
                mid = (lo + hi) >> 1
                if sb[mid] <= k:
                    lo = mid + 1
                else:
                    hi = mid
            if lo & 1:
                extra[ne] = s
                ne += 1
    return extra[:ne]


_delta_jit = _jit(_delta)


def _select(
    key: I64,
    m: int,
    cells: I64,
    nb: int,
    centres: F64,
    rch: float,
    extra: I64,
    xyz: F64,
    ids: I64,
    ts: I64,
    qx: float,
    qy: float,
    qz: float,
    cap2: float,
    thr0: float,
    need: int,
    cutoff: int,
    excl: I64,
) -> tuple[F64, I64]:
    """The best ``need`` candidates plus ties: ``(chord2, vid)`` sorted by (chord2, vid).

    Candidates are the main-region slots with a key in the ranges ``cells[:nb]`` (``[lo0, hi0,
    ...]``, disjoint) and the slots ``extra``. They must have a squared chord ``<= cap2``
    (tombstones, x = NaN, never do), ``ts >= cutoff`` and an id not in the sorted array
    ``excl``. Of those, the ones whose squared chord is ``<=`` the ``need``-th smallest times
    ``TIE_SLACK`` are kept (all of them if there are at most ``need``); chords above ``thr0``
    (a previous batch's such limit) are dropped. If ``centres`` holds a centre per range and
    ``rch`` bounds the chord from it to the range's points, a range none of whose points can be
    kept is skipped without being read (ranges go in the order given: nearest first is best).
    """
    # A max-heap keeps the ``need`` smallest chords seen so far. A candidate above (heap top) *
    # TIE_SLACK can never be kept (the top only decreases), so it is not even stored.
    c2buf = np.empty(64, dtype=np.float64)
    sbuf = np.empty(64, dtype=np.int64)
    span_c2 = np.empty(256, dtype=np.float64)
    span_t = np.empty(256, dtype=np.int64)
    heap = np.empty(min(need, 64), dtype=np.float64)
    hn = 0
    cnt = 0
    thr = min(cap2, thr0)  # and min(., heap top * TIE_SLACK) once the heap is full
    skip = centres.shape[0] > 0
    nex = excl.shape[0]
    x = xyz[0]
    y = xyz[1]
    z = xyz[2]
    nr = nb >> 1
    for j in range(nr + 1):
        if j < nr:
            if skip:
                dx = centres[3 * j] - qx
                dy = centres[3 * j + 1] - qy
                dz = centres[3 * j + 2] - qz
                gap = math.sqrt(dx * dx + dy * dy + dz * dz) - rch
                if gap > 0.0 and gap * gap > thr:
                    continue
            a = _lower_jit(key, 0, m, cells[2 * j])
            b = _lower_jit(key, a, m, cells[2 * j + 1])
            if b - a > span_c2.shape[0]:
                span_c2 = np.empty(2 * (b - a), dtype=np.float64)
                span_t = np.empty(2 * (b - a), dtype=np.int64)
            # Contiguous slots: all chords in a vectorised loop, then the indices of those
            # <= thr without branches (most are not, and which ones is hard to predict).
            xs = x[a:b]
            ys = y[a:b]
            zs = z[a:b]
            for t in range(b - a):
                dx = xs[t] - qx
                dy = ys[t] - qy
                dz = zs[t] - qz
                span_c2[t] = dx * dx + dy * dy + dz * dz
            nt = 0
            for t in range(b - a):
                span_t[nt] = t
                nt += span_c2[t] <= thr  # False for NaN (tombstones)
        else:
            a = 0
            nt = extra.shape[0]
        for u in range(nt):
            if j < nr:
                t = span_t[u]
                c2 = span_c2[t]
                s = a + t
            else:
                s = extra[u]
                dx = x[s] - qx
                dy = y[s] - qy
                dz = z[s] - qz
                c2 = dx * dx + dy * dy + dz * dz
            if not c2 <= thr:  # thr only decreases; NaN fails
                continue
            if cutoff != NO_CUTOFF and ts[s] < cutoff:  # (no load when unused)
                continue
            if nex > 0:
                v = ids[s]
                i = _lower_jit(excl, 0, nex, v)
                if i < nex and excl[i] == v:
                    continue
            if hn < need:
                if hn == heap.shape[0]:
                    grown = np.empty(min(need, 2 * hn), dtype=np.float64)
                    grown[:hn] = heap
                    heap = grown
                i = hn  # push: sift up
                hn += 1
                while i > 0:
                    p = (i - 1) >> 1
                    if heap[p] >= c2:
                        break
                    heap[i] = heap[p]
                    i = p
                heap[i] = c2
                if hn == need:
                    thr = min(thr, heap[0] * TIE_SLACK)
            elif c2 < heap[0]:
                i = 0  # replace the top: sift down
                while True:
                    ch = 2 * i + 1
                    if ch >= hn:
                        break
                    if ch + 1 < hn and heap[ch + 1] > heap[ch]:
                        ch += 1
                    if heap[ch] <= c2:
                        break
                    heap[i] = heap[ch]
                    i = ch
                heap[i] = c2
                thr = min(thr, heap[0] * TIE_SLACK)
            if cnt == c2buf.shape[0]:
                grown = np.empty(2 * cnt, dtype=np.float64)
                grown[:cnt] = c2buf
                c2buf = grown
                grown_s = np.empty(2 * cnt, dtype=np.int64)
                grown_s[:cnt] = sbuf
                sbuf = grown_s
            c2buf[cnt] = c2
            sbuf[cnt] = s
            cnt += 1
    # Keep the chords <= the need-th smallest * TIE_SLACK (thr, once the heap is full). With
    # exactly ``need`` passing candidates this keeps them all, as it should.
    k = 0
    for i in range(cnt):
        if c2buf[i] <= thr:
            c2buf[k] = c2buf[i]
            sbuf[k] = ids[sbuf[i]]
            k += 1
    return _sort_pairs_jit(c2buf[:k], sbuf[:k])


_select_jit = _jit(_select)


def _half(c2: F64) -> F64:
    """``min(sqrt(c2) * 0.5, 1)``, as ``geoindex._geometry.chord2_to_m`` computes it."""
    out = np.empty(c2.shape[0], dtype=np.float64)
    for i in range(c2.shape[0]):
        h = np.sqrt(c2[i]) * 0.5
        out[i] = h if h < 1.0 else 1.0
    return out


_half_jit = _jit(_half)


def _merge(c2a: F64, va: I64, c2b: F64, vb: I64) -> tuple[F64, I64]:
    """Merge two lists sorted by (chord, id)."""
    na = c2a.shape[0]
    nb = c2b.shape[0]
    c2 = np.empty(na + nb, dtype=np.float64)
    v = np.empty(na + nb, dtype=np.int64)
    i = 0
    j = 0
    for k in range(na + nb):
        if j == nb or (i < na and (c2a[i] < c2b[j] or (c2a[i] == c2b[j] and va[i] < vb[j]))):
            c2[k] = c2a[i]
            v[k] = va[i]
            i += 1
        else:
            c2[k] = c2b[j]
            v[k] = vb[j]
            j += 1
    return c2, v


_merge_jit = _jit(_merge)


def _in_order(c2: F64) -> bool:
    """Whether chords sorted by (chord, id) are certainly in (numpy distance, id) order.

    True if each chord equals the previous one (same distance, ids ascending) or exceeds it by a
    relative ``ORDER_GAP - 1`` (thousands of ulp, while numpy's arcsin is within 4 ulp: the
    distance is strictly larger), and no chord reaches 4 (those all clamp to one distance).
    """
    k = c2.shape[0]
    if k > 0 and not c2[k - 1] < 4.0:
        return False
    for i in range(1, k):  # noqa: SIM110 (numba compiles no generator expression into all())
        if c2[i] != c2[i - 1] and not c2[i] > c2[i - 1] * ORDER_GAP:
            return False
    return True


_in_order_jit = _jit(_in_order)


def _batch(
    key: I64,
    m: int,
    run_keys: I64,
    run_slots: I64,
    run_end: int,
    n: int,
    xyz: F64,
    ids: I64,
    ts: I64,
    bounds: I64,
    qx: float,
    qy: float,
    qz: float,
    cap2: float,
    need: int,
    cutoff: int,
    excl: I64,
    scan_all: bool,
) -> tuple[F64, I64]:
    """Best ``need`` candidates (plus ties) in the key ranges ``bounds``, sorted by (chord, id).

    ``bounds`` is ``[lo0, hi0, lo1, hi1, ...]``: disjoint key ranges (any order); with
    ``scan_all`` every slot is a candidate instead. See :func:`_select`. Returns ``(half,
    vid)``: ``min(sqrt(chord2) * 0.5, 1)`` (the caller applies numpy's ``arcsin`` and ``2 R``)
    and the volunteer ids.
    """
    none = np.empty(0, dtype=np.float64)
    if scan_all:
        c2, vids = _select_jit(
            key, m, bounds, 0, none, 0.0, np.arange(n), xyz, ids, ts, qx, qy, qz, cap2,
            np.inf, need, cutoff, excl,
        )  # fmt: skip
    else:
        nb = bounds.shape[0]
        extra = _delta_jit(key, run_keys, run_slots, run_end, n, bounds, nb)
        c2, vids = _select_jit(
            key, m, bounds, nb, none, 0.0, extra, xyz, ids, ts, qx, qy, qz, cap2, np.inf,
            need, cutoff, excl,
        )  # fmt: skip
    return _half_jit(c2), vids


batch = _jit(_batch)


def _find(tab: I64, cell: int) -> int:
    """Row of ``cell`` in the open-addressing table ``tab`` (``(P, 2)``: cell, row) or -1."""
    mask = tab.shape[0] - 1
    i = ((cell * HASH_MUL) >> 20) & mask
    while True:
        c = tab[i, 0]
        if c == cell:
            return int(tab[i, 1])
        if c == 0:
            return -1
        i = (i + 1) & mask


find = _jit(_find)


def _put(tab: I64, cell: int, row: int) -> None:
    """Insert ``cell -> row`` into ``tab`` (the caller keeps it at most half full)."""
    mask = tab.shape[0] - 1
    i = ((cell * HASH_MUL) >> 20) & mask
    while tab[i, 0] != 0 and tab[i, 0] != cell:
        i = (i + 1) & mask
    tab[i, 1] = row  # the row first: a concurrent find() never sees the cell without it
    tab[i, 0] = cell


put = _jit(_put)


def _ring_lb(
    tf: F64, row: int, at: int, count: int, qx: float, qy: float, qz: float, rmax: float
) -> float:
    """Lower bound (m) on the distance from q to any point beyond a ring (``geoindex.index``).

    The ring's ``count`` centres are at ``tf[row, at:]``; the same formula as
    ``geoindex.index._Query._ring_lb``: the nearest centre, minus the region radius and a
    rounding margin.
    """
    best = 4.0
    for j in range(count):
        o = at + 3 * j
        dx = tf[row, o] - qx
        dy = tf[row, o + 1] - qy
        dz = tf[row, o + 2] - qz
        best = min(dx * dx + dy * dy + dz * dz, best)
    d = TWO_R * math.asin(min(1.0, math.sqrt(best) * 0.5))
    return d - rmax - 1e-3 - 1e-9 * d


_ring_lb_jit = _jit(_ring_lb)


def _query(
    key: I64,
    m: int,
    run_keys: I64,
    run_slots: I64,
    run_end: int,
    n: int,
    xyz: F64,
    ids: I64,
    ts: I64,
    lvl: I64,
    rmaxs: F64,
    tab: I64,
    ti: I64,
    tf: F64,
    fine: int,
    qx: float,
    qy: float,
    qz: float,
    radius: float,
    cap2: float,
    limit: int,
    need: int,
    cutoff: int,
    excl: I64,
) -> tuple[int, int, int, int, F64, I64]:
    """The common path of a query, in one call: level, first ring batches and the stop rule.

    Mirrors ``geoindex.index._Query`` (and the module docstring of :mod:`geoindex.index`):
    ``lvl`` holds rows of per-level lo masks, hi masks, and masks and resolution bits,
    ``rmaxs`` the region radii, ``tab``/``ti``/``tf`` the table of per-cell facts (``TI_*`` /
    ``TF_*``). ``need`` (limit plus excluded ids) only steers the predictions.

    Returns ``(status, level, c0, k, half, vid)``. ``DONE``: ``half``/``vid`` (as from
    :func:`_batch`) hold the answer; ``k`` is 1 if they are certainly in (distance, id) order
    after numpy's ``arcsin`` (then they are cut to ``limit``), else 0. ``MISS``: cell ``c0`` of
    ``level`` is not in the table. ``SPARSE``: the caller should search the disk of radius
    ``k`` (it likely covers the radius). ``MORE``: the first batch (disk of radius ``k``, its
    result in ``half``/``vid``) did not prove itself complete.
    """
    empty_f = np.empty(0, dtype=np.float64)
    empty_i = np.empty(0, dtype=np.int64)
    li = lvl.shape[1] - 1
    count = -1
    sparse = False
    if m > 0:
        li, count, sparse = _level_jit(key, m, fine, lvl[0], lvl[1], need * LEVEL_FACTOR)
    c0 = (fine | lvl[1, li]) & lvl[2, li] | lvl[3, li]
    rmax = rmaxs[li]
    if sparse:
        # Few volunteers around even at the coarsest level: if the radius, not the N-th
        # distance, will likely bound the search, the caller goes straight to the disk that
        # covers it.
        area = 2.6 * (rmax / REGION_FACTOR / 1.05) ** 2
        expected = count * math.pi * radius**2 / area
        k2 = math.ceil((radius + 2.0 * rmax) / (1.5 * rmax / (1.05 * 1.1))) - 2
        if expected < need and 2 <= k2 <= MAX_RINGS:
            return SPARSE, li, c0, k2, empty_f, empty_i
    row = find(tab, c0)
    if row < 0:
        return MISS, li, c0, 0, empty_f, empty_i
    nd = ti[row, TI_ND]
    n2 = ti[row, TI_N2]
    at2 = TF_CELLS + 3 * nd  # ring 2's centres
    cx = tf[row, TF_CENTRE]
    cy = tf[row, TF_CENTRE + 1]
    cz = tf[row, TF_CENTRE + 2]
    g = tf[row, TF_G]
    dq2 = (qx - cx) * (qx - cx) + (qy - cy) * (qy - cy) + (qz - cz) * (qz - cz)
    dq = TWO_R * math.asin(min(1.0, math.sqrt(dq2) * 0.5))
    lb = g - dq - rmax - 2e-3 - 2e-9 * g
    k1 = 1
    have_lb2 = False
    if lb < radius and count >= 0:
        # Will the N-th distance (estimated from the cell's count and area) exceed what the
        # disk of radius 1 proves? Then take ring 2 in the first batch.
        density = count / (2.6 * (rmax / REGION_FACTOR / 1.05) ** 2)
        if need > RING2_FACTOR * density * math.pi * lb * max(lb, 0.0):
            lb = max(lb, _ring_lb_jit(tf, row, at2, n2, qx, qy, qz, rmax))
            have_lb2 = True
        if need > RING2_FACTOR * density * math.pi * lb * max(lb, 0.0):
            k1 = 2
    # Per-cell ranges, c0's first; a cell's points are within rch (a chord) of its centre.
    rch = rmax / EARTH_RADIUS_M + 1e-12
    nc = nd + n2 if k1 == 2 else nd
    cells = ti[row, TI_CELLS : TI_CELLS + 2 * nc]
    extra = _delta_jit(key, run_keys, run_slots, run_end, n, cells, 2 * nc)
    c2, vids = _select_jit(
        key, m, cells, 2 * nc, tf[row, TF_CELLS : TF_CELLS + 3 * nc], rch, extra, xyz,
        ids, ts, qx, qy, qz, cap2, np.inf, limit, cutoff, excl,
    )  # fmt: skip
    # The stop rule with this batch's limit-th distance (libm's asin here, numpy's in the
    # caller: the relative slack covers their last-bit differences).
    bound = radius
    if c2.shape[0] >= limit:
        bound = min(bound, TWO_R * math.asin(min(1.0, math.sqrt(c2[limit - 1]) * 0.5)))
    bound *= 1.0 + 1e-12
    if k1 == 1:
        done = lb > bound or (
            not have_lb2 and _ring_lb_jit(tf, row, at2, n2, qx, qy, qz, rmax) > bound
        )
    else:
        n3 = int(tf[row, TF_N3])
        done = _ring_lb_jit(tf, row, TF_RING3, n3, qx, qy, qz, rmax) > bound
    if not done and k1 == 1:
        # The caller's next step when it is ring 2 alone (it guesses the last ring from the
        # spacing, then verifies it with the exact bound of the next ring), done here.
        spacing = 1.5 * rmax / (1.05 * 1.1)
        k2 = max(2, math.ceil((bound + 2.0 * rmax) / spacing) - 1)
        n3 = int(tf[row, TF_N3])
        if k2 == 2 and _ring_lb_jit(tf, row, TF_RING3, n3, qx, qy, qz, rmax) > bound:
            thr0 = cap2
            if c2.shape[0] >= limit:
                thr0 = min(cap2, c2[limit - 1] * TIE_SLACK)
            cells2 = ti[row, TI_CELLS + 2 * nd : TI_CELLS + 2 * (nd + n2)]
            extra2 = _delta_jit(key, run_keys, run_slots, run_end, n, cells2, 2 * n2)
            c2b, vidsb = _select_jit(
                key, m, cells2, 2 * n2, tf[row, at2 : at2 + 3 * n2], rch, extra2, xyz,
                ids, ts, qx, qy, qz, cap2, thr0, limit, cutoff, excl,
            )  # fmt: skip
            c2, vids = _merge_jit(c2, vids, c2b, vidsb)
            done = True
    if not done:
        return MORE, li, c0, k1, _half_jit(c2), vids
    if _in_order_jit(c2):
        k = min(c2.shape[0], limit)
        return DONE, li, c0, 1, _half_jit(c2[:k]), vids[:k]
    return DONE, li, c0, 0, _half_jit(c2), vids


query = _jit(_query)


def warm() -> None:
    """Compile (or load from numba's cache) the kernels for the argument types used."""
    k = np.zeros(4, dtype=np.int64)
    e = np.empty(0, dtype=np.int64)
    xyz = np.zeros((3, 4), dtype=np.float64)
    tab = np.zeros((8, 2), dtype=np.int64)
    put(tab, 5, 0)
    find(tab, 5)
    bounds = np.array([0, 1], dtype=np.int64)
    batch(k, 4, e, e, 4, 4, xyz, k, k, bounds, 0.0, 0.0, 1.0, 1.0, 1, NO_CUTOFF, e, False)
    ti = np.zeros((1, TI_WIDTH), dtype=np.int64)
    tf = np.zeros((1, TF_WIDTH), dtype=np.float64)
    lvl = np.zeros((4, 1), dtype=np.int64)
    query(
        k, 4, e, e, 4, 4, xyz, k, k, lvl, np.ones(1), tab, ti, tf, 5, 0.0, 0.0, 1.0, 1.0,
        1.0, 1, 1, NO_CUTOFF, e,
    )  # fmt: skip
