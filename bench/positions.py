"""Last-known positions through the service's own code: batched persistence and rebuild.

Prints persisted position updates per second (``PositionWriter`` batches, one
round trip each, as the location endpoint uses them) and the start-up rebuild of
the in-memory index from PostgreSQL (``fresh_position_arrays`` + ``PositionCache.load_arrays``).
Targets: ≥ 20,000 persisted updates/s sustained; rebuild of
1,000,000 positions ≤ 10 s. Not a test: numbers only.

    python bench/positions.py [--volunteers 1000000] [--updates 200000]
        [--database-url postgresql://127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import asyncpg

# Ahead of this folder, whose dispatch.py would otherwise shadow the dispatch package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import calibration_line
from dispatch.config import Settings
from dispatch.db.migrate import migrate
from dispatch.db.pool import open_pool
from dispatch.service.positions import PositionCache, PositionWriter
from dispatch.store.position_arrays import fresh_position_arrays
from dispatch.store.volunteers import PositionRow
from geoindex import VolunteerIndex

# A 420 km² box around Stockholm, as in the geoindex benchmark.
LAT0, LAT1, LON0, LON1 = 59.22, 59.40, 17.85, 18.21


async def run(args: argparse.Namespace) -> None:
    print(await calibration_line(args.database_url), flush=True)
    name = f"dispatch_bench_pos_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = urlunsplit(urlsplit(args.database_url)._replace(path="/" + name))
    try:
        settings = Settings(database_url=dsn, db_pool_max=4, db_command_timeout_s=120)
        async with open_pool(dsn, settings) as pool:
            async with pool.acquire() as conn:
                await migrate(conn)
                agency_id = uuid4()
                await conn.execute(
                    "INSERT INTO agencies (id, name) VALUES ($1, 'bench')", agency_id
                )
                await conn.copy_records_to_table(
                    "volunteers",
                    records=(
                        (agency_id, "v", secrets.token_bytes(16)) for _ in range(args.volunteers)
                    ),
                    columns=["agency_id", "display_name", "token_hash"],
                )
                ids = [r["id"] for r in await conn.fetch("SELECT id FROM volunteers ORDER BY id")]
            rng = random.Random(7)
            now = datetime.now(UTC)

            def fix(volunteer_id: int, at: datetime) -> PositionRow:
                return PositionRow(
                    volunteer_id,
                    agency_id,
                    rng.uniform(LAT0, LAT1),
                    rng.uniform(LON0, LON1),
                    10.0,
                    at,
                )

            # Seed every volunteer once (not timed), then time a stream of updates.
            writer = PositionWriter(pool, flush_s=1.0, max_rows=args.batch)
            for volunteer_id in ids:
                writer.submit(fix(volunteer_id, now - timedelta(seconds=60)))
                if writer.pending >= args.batch:
                    await writer.flush()
            await writer.flush()

            updates = [fix(rng.choice(ids), now) for _ in range(args.updates)]
            started = time.perf_counter()
            for row in updates:
                writer.submit(row)
                if writer.pending >= args.batch:
                    await writer.flush()
            await writer.flush()
            persisted = args.updates / (time.perf_counter() - started)

            # The compiled query kernels load once per process, whatever the data.
            started = time.perf_counter()
            VolunteerIndex()
            kernels = time.perf_counter() - started
            started = time.perf_counter()
            async with pool.acquire() as conn:
                columns = await fresh_position_arrays(conn)
            fetched = time.perf_counter() - started
            cache = PositionCache()
            cache.load_arrays(columns)
            rebuilt = time.perf_counter() - started
            warm_started = time.perf_counter()
            await cache.warm()  # the service does this in the background once it is ready
            warmed = time.perf_counter() - warm_started

        print(f"positions: {args.volunteers:,} volunteers, batches of {args.batch:,} rows")
        verdict = "met" if persisted >= 20_000 else "NOT met"
        print(f"  persisted updates {persisted:12,.0f} /s   (target >= 20,000/s: {verdict})")
        verdict = "met" if rebuilt <= 10 else "NOT met"
        indexed = rebuilt - fetched
        print(
            f"  rebuild of {len(cache):,} positions {rebuilt:6.2f} s"
            f" (fetch {fetched:.2f} s + index {indexed:.2f} s; target <= 10 s: {verdict})"
        )
        print(
            f"  index / fetch {indexed / fetched:.2f} (building the index must cost well under"
            f" the fetch); cell-table warm-up after readiness {warmed:.2f} s; kernel load"
            f" {kernels:.2f} s once per process"
        )
    finally:
        admin = await asyncpg.connect(args.database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volunteers", type=int, default=1_000_000)
    parser.add_argument("--updates", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--database-url", default="postgresql://127.0.0.1/postgres")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
