"""Importing an AED registry file while the rest of the service keeps its pace.

Records are parsed a chunk at a time and each chunk is stored before the next is
read, all in one transaction: a bad row anywhere rolls everything back (all or
none), while no more than a chunk of records is ever alive. Holding 50,000 parsed
records at once made the garbage collector's full passes stall the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import asyncpg

from dispatch.domain.aed_import import AedRecord
from dispatch.service import pacing
from dispatch.store import aeds as aed_store

IDLE_SHARE = 4.0
"""Seconds of rest per second of database work while importing. At 2.0 another agency's
intake p99 rose 2.28–2.34× under a repeated 50,000-row import and a wrong-key flood
(``bench/isolation.py``); at 4.0, 1.97–1.98×, the import taking ~5.4 s instead of ~3.6 s."""


async def import_file(
    pool: asyncpg.Pool, agency_id: UUID, records: Iterable[AedRecord], *, now: datetime
) -> int:
    """How many records were stored; the parser's exceptions propagate, nothing stored."""
    count = 0
    async with pool.acquire() as conn, conn.transaction():
        async for chunk in pacing.chunks(records, size=aed_store.IMPORT_CHUNK_ROWS):
            started = time.perf_counter()
            await aed_store.upsert_chunk(conn, agency_id, chunk, now)
            count += len(chunk)
            # Rest as long as the chunk took: the database's CPU and disk are shared
            # with every agency's intake, which has a deadline; an import has none.
            await asyncio.sleep((time.perf_counter() - started) * IDLE_SHARE)
    return count
