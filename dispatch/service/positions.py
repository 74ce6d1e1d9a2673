"""Last known positions: in memory at once for matching, persisted in batches.

One :class:`geoindex.VolunteerIndex` per agency, so a query never has to filter
out another agency's volunteers. Only eligible (verified, available) volunteers
are indexed. The database copy exists so a restart can rebuild the index; it is
written by :class:`PositionWriter` in batches, one round trip each, never one
statement per update on the request path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
import numpy as np
import numpy.typing as npt
import structlog

from dispatch.db.pool import DATABASE_ERRORS, is_unavailable
from dispatch.store import volunteers as volunteer_store
from dispatch.store.position_arrays import PositionArrays
from dispatch.store.volunteers import PositionRow
from geoindex import Hit, VolunteerIndex

log = structlog.get_logger(__name__)

# Volunteer ids below this (or below twice the ids held) are kept in the dense array.
_DENSE_MIN = 1 << 16


class _AgencyOf:
    """The agency of each indexed volunteer.

    Database ids are small non-negative integers: those go in a dense array of agency
    numbers, 4 bytes each, filled by one numpy assignment at a rebuild (a dict took ~100
    bytes per volunteer and ~0.4 s to fill with a million); any other id in a dict.
    """

    __slots__ = ("_agencies", "_dense", "_numbers", "_sparse")

    def __init__(self) -> None:
        self._agencies: list[UUID] = []
        self._numbers: dict[UUID, int] = {}
        self._dense: npt.NDArray[np.int32] = np.full(0, -1, dtype=np.int32)
        self._sparse: dict[int, UUID] = {}

    def _number(self, agency_id: UUID) -> int:
        number = self._numbers.get(agency_id)
        if number is None:
            number = self._numbers[agency_id] = len(self._agencies)
            self._agencies.append(agency_id)
        return number

    def _cover(self, top: int, adding: int) -> None:
        """Grow the dense array to hold ids up to ``top`` when that keeps it dense enough."""
        size = self._dense.shape[0]
        if size <= top < max(_DENSE_MIN, 2 * (size + len(self._sparse) + adding)):
            dense = np.full(max(top + 1, 2 * size), -1, dtype=np.int32)
            dense[:size] = self._dense
            for volunteer_id in [v for v in self._sparse if size <= v < dense.shape[0]]:
                dense[volunteer_id] = self._number(self._sparse.pop(volunteer_id))
            self._dense = dense

    def get(self, volunteer_id: int) -> UUID | None:
        if 0 <= volunteer_id < self._dense.shape[0]:
            number = int(self._dense[volunteer_id])
            return self._agencies[number] if number >= 0 else None
        return self._sparse.get(volunteer_id)

    def set(self, volunteer_id: int, agency_id: UUID) -> None:
        self._cover(volunteer_id, 1)
        if 0 <= volunteer_id < self._dense.shape[0]:
            self._dense[volunteer_id] = self._number(agency_id)
        else:
            self._sparse[volunteer_id] = agency_id

    def set_many(self, volunteer_ids: npt.NDArray[np.int64], agency_id: UUID) -> None:
        if not volunteer_ids.shape[0]:
            return
        self._cover(int(volunteer_ids.max()), volunteer_ids.shape[0])
        dense = (volunteer_ids >= 0) & (volunteer_ids < self._dense.shape[0])
        self._dense[volunteer_ids[dense]] = self._number(agency_id)
        if not dense.all():
            self._sparse.update(dict.fromkeys(volunteer_ids[~dense].tolist(), agency_id))

    def pop(self, volunteer_id: int) -> UUID | None:
        if 0 <= volunteer_id < self._dense.shape[0]:
            agency_id = self.get(volunteer_id)
            self._dense[volunteer_id] = -1
            return agency_id
        return self._sparse.pop(volunteer_id, None)


class PositionCache:
    def __init__(self) -> None:
        self._indexes: dict[UUID, VolunteerIndex] = {}
        self._agency_of = _AgencyOf()

    def __len__(self) -> int:
        # Each indexed volunteer is in exactly one agency's index.
        return sum(len(index) for index in self._indexes.values())

    def upsert(self, row: PositionRow) -> None:
        previous = self._agency_of.get(row.volunteer_id)
        if previous is not None and previous != row.agency_id:
            self._indexes[previous].remove(row.volunteer_id)
        index = self._indexes.get(row.agency_id)
        if index is None:
            index = self._indexes[row.agency_id] = VolunteerIndex()
        index.upsert(row.volunteer_id, row.lat, row.lon, at=row.reported_at)
        self._agency_of.set(row.volunteer_id, row.agency_id)

    def remove(self, volunteer_id: int) -> None:
        agency = self._agency_of.pop(volunteer_id)
        if agency is not None:
            self._indexes[agency].remove(volunteer_id)

    def purge_stale(self, max_age_s: dict[UUID, int], now: datetime) -> int:
        """Forget positions older than their agency's freshness limit; returns how many.

        Stale positions are never matched anyway; forgetting them keeps no whereabouts in
        memory longer than the database keeps them.
        """
        purged = 0
        for agency_id, index in self._indexes.items():
            limit = max_age_s.get(agency_id)
            if limit is None:
                continue
            for volunteer_id in index.reported_before(now - timedelta(seconds=limit)):
                index.remove(volunteer_id)
                self._agency_of.pop(volunteer_id)
                purged += 1
        return purged

    def reported_at(self, volunteer_id: int) -> datetime | None:
        """When the volunteer's indexed fix was taken, or None when not indexed."""
        agency = self._agency_of.get(volunteer_id)
        if agency is None:
            return None
        found = self._indexes[agency].position(volunteer_id)
        return found[2] if found is not None else None

    def replace_with(self, other: PositionCache) -> None:
        """Take over ``other``'s contents (a rebuild), keeping this object shared by everyone."""
        self._indexes = other._indexes
        self._agency_of = other._agency_of

    def position(self, volunteer_id: int) -> tuple[float, float] | None:
        """The volunteer's last indexed (lat, lon), or None when not indexed."""
        agency = self._agency_of.get(volunteer_id)
        if agency is None:
            return None
        found = self._indexes[agency].position(volunteer_id)
        return (found[0], found[1]) if found is not None else None

    def load_arrays(self, columns: PositionArrays) -> None:
        """Index every position of a start-up rebuild (the columns of one bulk fetch).

        For an empty cache, one row per volunteer (the table's primary key).
        """
        n = len(columns)
        if not n:
            return
        raw = np.ascontiguousarray(columns.agency_ids)
        halves = raw.view(np.uint64).reshape(n, 2)
        ids, lats, lons, ats, cells = (
            columns.volunteer_ids,
            columns.lats,
            columns.lons,
            columns.reported_at,
            columns.cells,
        )
        if ((halves[:, 0] == halves[0, 0]) & (halves[:, 1] == halves[0, 1])).all():
            agencies, bounds = raw[:1], [0, n]  # one agency: no split, no copy
        else:
            # Rows grouped by agency, each group in table order (a stable sort).
            agencies, which, counts = np.unique(raw, return_inverse=True, return_counts=True)
            order = np.argsort(which.astype(np.min_scalar_type(len(agencies))), kind="stable")
            ids, lats, lons = ids[order], lats[order], lons[order]
            ats, cells = ats[order], cells[order]
            bounds = [0, *np.cumsum(counts).tolist()]
        for k, raw_id in enumerate(agencies):
            agency_id = UUID(bytes=raw_id.tobytes())
            mine = slice(bounds[k], bounds[k + 1])
            index = self._indexes.setdefault(agency_id, VolunteerIndex())
            index.bulk_load(ids[mine], lats[mine], lons[mine], ats[mine], cells[mine], warm=False)
            self._agency_of.set_many(ids[mine], agency_id)

    async def warm(self) -> None:
        """Warm every index's cell table in small steps on the loop (after a rebuild)."""
        for index in list(self._indexes.values()):
            for _ in index.warm_cells():
                await asyncio.sleep(0)

    def nearest(
        self,
        agency_id: UUID,
        lat: float,
        lon: float,
        *,
        radius_m: float,
        limit: int,
        max_age_s: float,
        now: datetime,
        exclude: Collection[int],
    ) -> list[Hit]:
        index = self._indexes.get(agency_id)
        if index is None:
            return []
        return index.nearest(
            lat, lon, radius_m=radius_m, limit=limit, max_age_s=max_age_s, now=now, exclude=exclude
        )


class PositionWriter:
    """Coalesces position updates and writes them in batches.

    Only the latest fix per volunteer is kept in the queue: an older fix that was
    never written is worth nothing once a newer one arrived.
    """

    def __init__(self, pool: asyncpg.Pool, *, flush_s: float, max_rows: int) -> None:
        self._pool = pool
        self._flush_s = flush_s
        self._max_rows = max_rows
        self._pending: dict[int, PositionRow] = {}
        self._wakeup = asyncio.Event()

    def submit(self, row: PositionRow) -> None:
        self._pending[row.volunteer_id] = row
        if len(self._pending) >= self._max_rows:
            self._wakeup.set()

    def forget(self, volunteer_id: int) -> None:
        """Drop a fix not yet written (the volunteer went off duty or erased their account)."""
        self._pending.pop(volunteer_id, None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        if not self._pending:
            return 0
        batch = list(self._pending.values())
        self._pending = {}
        try:
            async with self._pool.acquire() as conn:
                await volunteer_store.upsert_positions(conn, batch)
        except BaseException:
            # Put the batch back under anything newer that arrived meanwhile, then re-raise.
            for row in batch:
                self._pending.setdefault(row.volunteer_id, row)
            raise
        return len(batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every ``flush_s`` (or when the queue is full) until ``stop``; then a last flush."""
        while not stop.is_set():
            try:
                async with asyncio.timeout(self._flush_s):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
            self._wakeup.clear()
            try:
                await self.flush()
            except DATABASE_ERRORS as exc:
                pending = len(self._pending)
                if is_unavailable(exc):
                    log.warning("position_flush_failed", pending=pending, error=type(exc).__name__)
                else:
                    log.exception("position_flush_failed", pending=pending)
        await self.flush()
