"""A volunteer's export and erasure against a long response log, through the service's code.

Fills one agency with volunteers, incidents, alerts (each volunteer alerted about
``--alerts-each`` times) and response-log events, then times, on volunteers picked at
random: ``GET /v1/me/export``'s service call, ``DELETE /v1/me``'s service call, and, in
the same run, a primary-key lookup (the unit) and an unindexed scan of the log by
volunteer (what erasure would cost if it did not go through the incident index). Prints
medians and ratios to the unit. Not a test: numbers only.

    python bench/volunteer_data.py [--volunteers 5000] [--alerts-each 20]
        [--events-each 8] [--database-url postgresql://127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

# Ahead of this folder, whose dispatch.py would otherwise shadow the dispatch package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import INCIDENT_KEY_COLUMNS, bench_parser, copy_rows, scratch_database
from dispatch.config import Settings
from dispatch.db.migrate import migrate
from dispatch.db.pool import open_pool
from dispatch.service import volunteer_data
from dispatch.service.positions import PositionCache, PositionWriter


async def _fill(conn: Any, args: argparse.Namespace, rng: random.Random) -> list[int]:
    agency_id, now = uuid4(), datetime.now(UTC)
    # Binary COPY has no jsonb encoder: empty reports by default, in this throwaway database.
    await conn.execute("ALTER TABLE incidents ALTER COLUMN report SET DEFAULT '{}'::jsonb")
    await conn.execute("INSERT INTO agencies (id, name) VALUES ($1, 'bench')", agency_id)
    await copy_rows(
        conn,
        "volunteers",
        [(agency_id, f"V{i}", secrets.token_bytes(32)) for i in range(args.volunteers)],
        "agency_id display_name token_hash",
    )
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM volunteers ORDER BY id")]
    incidents = args.volunteers * args.alerts_each // 5
    rows, alerts, events = [], [], []
    for n in range(incidents):
        incident, at = uuid4(), now - timedelta(minutes=n)
        rows.append(
            (
                incident,
                agency_id,
                "bench",
                f"b{n}",
                at,
                0,
                secrets.token_bytes(32),
                "closed",
                False,
                True,
                "CA",
                "public",
                at,
                "closed",
            )
        )
        for volunteer in rng.sample(ids, 5):
            alert = uuid4()
            alerts.append((alert, agency_id, incident, volunteer, "declined", 100.0, at))
            events += [
                (agency_id, incident, alert, volunteer, f"e{k}", at)
                for k in range(args.events_each)
            ]
    await copy_rows(conn, "incidents", rows, INCIDENT_KEY_COLUMNS + " place_type received_at state")
    await copy_rows(
        conn, "alerts", alerts, "id agency_id incident_id volunteer_id state distance_m expires_at"
    )
    await copy_rows(
        conn, "response_log", events, "agency_id incident_id alert_id volunteer_id event at"
    )
    await conn.execute("ANALYZE")
    print(
        f"filled: {len(ids)} volunteers, {incidents} incidents, {len(alerts)} alerts,"
        f" {len(events)} response-log events"
    )
    return ids


async def _median_ms(runs: int, work: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    async with scratch_database(args.database_url, "dispatch_bench_vd") as dsn:
        settings = Settings(database_url=dsn, db_pool_max=4, db_command_timeout_s=300)
        async with open_pool(dsn, settings) as pool:
            async with pool.acquire() as conn:
                await migrate(conn)
                ids = await _fill(conn, args, rng)
            picks = iter(rng.sample(ids, 2 * args.runs + 3))
            probe = await pool.fetchval("SELECT id FROM incidents LIMIT 1")
            unit = await _median_ms(
                args.runs, lambda: pool.fetchrow("SELECT * FROM incidents WHERE id = $1", probe)
            )
            now = datetime.now(UTC)
            export = await _median_ms(
                args.runs, lambda: volunteer_data.export(pool, next(picks), now=now)
            )
            cache, writer = PositionCache(), PositionWriter(pool, flush_s=1, max_rows=10)
            erase = await _median_ms(
                args.runs,
                lambda: volunteer_data.erase(
                    pool, next(picks), cache=cache, writer=writer, now=now
                ),
            )
            scan = await _median_ms(
                3,
                lambda: pool.fetchval(
                    "SELECT count(*) FROM response_log WHERE volunteer_id = $1", next(picks)
                ),
            )
    print(f"calibration: primary-key lookup median {unit:.3f} ms")
    for label, ms in (("export", export), ("erasure", erase), ("log scan by volunteer", scan)):
        print(f"{label}: median {ms:.1f} ms = {ms / unit:.0f}x the lookup")


def main() -> None:
    parser = bench_parser(__doc__, volunteers=5000, alerts_each=20, events_each=8, runs=15)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
