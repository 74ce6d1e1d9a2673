"""How long migration 0019 holds the response log, against copying it.

Fills a scratch database migrated up to 0018 with ``--events`` response-log rows (default
2,000,000, spread over 100,000 incidents and the last three days), then times migration
0019 (the old table attached as a partition: one scan and one index build under the lock)
and, in the same run, copying the same rows into a table with the same indexes (what a
migration that rewrote the log would hold the lock for). Prints the calibration line
first, then both times and their ratio. Numbers only, not a test.

    python bench/log_partitions.py [--database-url postgresql://127.0.0.1/postgres]
        [--events 2000000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg

# Ahead of this folder, whose dispatch.py would otherwise shadow the dispatch package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import calibration_line
from bench.common import scratch_database
from dispatch.db.migrate import shipped_migrations

AGENCY = "00000000-0000-0000-0000-000000000001"
INCIDENTS = 100_000
_INCIDENT_ID = "('00000000-0000-0000-0001-' || lpad(to_hex({n}), 12, '0'))::uuid"


async def _fill(conn: asyncpg.Connection, events: int) -> None:
    for migration in shipped_migrations():
        if migration.version < 19:
            await conn.execute(migration.sql)
    await conn.execute(
        f"""
        INSERT INTO agencies (id, name) VALUES ('{AGENCY}', 'Bench');
        INSERT INTO incidents (id, agency_id, source, source_incident_id, version_at,
            version_seq, content_hash, status, is_test, call_type_code, place_type,
            received_at, report, state, created_at, updated_at)
        SELECT {_INCIDENT_ID.format(n="g")}, '{AGENCY}', 'generic', 'I' || g, now(), 1,
               '\\x00', 'closed', false, '09-E-01', 'public',
               now() - g * interval '1 minute', '{{}}', 'closed', now(), now()
        FROM generate_series(1, {INCIDENTS}) g;
        ALTER TABLE response_log DISABLE TRIGGER incident_review_record;
        INSERT INTO response_log (agency_id, incident_id, event, at)
        SELECT '{AGENCY}', {_INCIDENT_ID.format(n=f"1 + g % {INCIDENTS}")}, 'note',
               now() - (g % {INCIDENTS}) * interval '1 minute' - (g % 3) * interval '1 day'
        FROM generate_series(1, {events}) g;
        ALTER TABLE response_log ENABLE TRIGGER incident_review_record;
        """
    )
    await conn.execute("VACUUM ANALYZE response_log")


async def run(args: argparse.Namespace) -> None:
    print(await calibration_line(args.database_url))
    async with scratch_database(args.database_url, "dispatch_bench_log_partitions") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await _fill(conn, args.events)
            (migration,) = [m for m in shipped_migrations() if m.version == 19]
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute(migration.sql)
            migrated = time.perf_counter() - started
            started = time.perf_counter()
            await conn.execute(
                """
                CREATE TABLE copy_probe (LIKE response_log_legacy INCLUDING ALL);
                INSERT INTO copy_probe SELECT * FROM response_log_legacy;
                """
            )
            copied = time.perf_counter() - started
        finally:
            await conn.close()
    print(f"migration 0019 on {args.events:,} rows: {migrated:.2f} s")
    print(f"copying them into a table with the same indexes: {copied:.2f} s")
    print(f"ratio: the migration takes {migrated / copied:.2f}x the copy's time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="postgresql://127.0.0.1/postgres")
    parser.add_argument("--events", type=int, default=2_000_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
