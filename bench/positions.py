"""Last-known positions through the service's own code: batched persistence and rebuild.

Prints persisted position updates per second (``PositionWriter`` batches, one
round trip each, as the location endpoint uses them, coverage presence included) and the
start-up rebuild of the in-memory index from PostgreSQL (``fresh_position_arrays`` +
``PositionCache.load_arrays``), ``--rebuilds`` times, the fetch and the index build each
timed. Targets: ≥ 20,000 persisted updates/s sustained; rebuild of 1,000,000 positions ≤ 10 s,
building the index at most half the fetch. Not a test: numbers only. ``--rebuild-only``
seeds the positions by COPY instead of the writer and times only the rebuild.

The updates move each volunteer to a random point in the city, so nearly every fix enters
a new resolution-8 cell and writes a coverage presence row (the worst case); a second
stream walks them instead (fixes 30 s apart, steps of up to 40 m). Each is compared with
the same writer with the presence triggers switched off, in alternating chunks of the
same run.

With ``--follow``: the delay from a position reported to one process until it is
matchable in another's index (``PositionFollower``), two processes, ``--rate``
updates/s for ``--seconds``; and what the change feed costs the writer (the same
flushes with its triggers, numbering and index switched off, in the same run).

    python bench/positions.py [--volunteers 1000000] [--updates 200000] [--rebuilds 3]
        [--rebuild-only] [--database-url postgresql://127.0.0.1/postgres]
    python bench/positions.py --follow [--volunteers 100000] [--rate 5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

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
from geoindex import VolunteerIndex, point_cell

# A 420 km² box around Stockholm, as in the geoindex benchmark.
LAT0, LAT1, LON0, LON1 = 59.22, 59.40, 17.85, 18.21


# A walker's step between two fixes 30 s apart (the app's interval when not moving fast).
STEP_M = 40.0
_M_PER_DEG_LAT = 111_320.0

# What the positions cost without coverage presence: its triggers switched off.
_PRESENCE_OFF = (
    "ALTER TABLE volunteer_positions DISABLE TRIGGER coverage_presence_inserted,"
    " DISABLE TRIGGER coverage_presence_updated"
)
_PRESENCE_ON = _PRESENCE_OFF.replace("DISABLE", "ENABLE")


async def _through_writer(writer: PositionWriter, rows: list[PositionRow], batch: int) -> float:
    """Seconds to persist ``rows`` through the writer, flushing every ``batch`` volunteers."""
    started = time.perf_counter()
    for row in rows:
        writer.submit(row)
        if writer.pending >= batch:
            await writer.flush()
    await writer.flush()
    return time.perf_counter() - started


def _process_cpu_s(pid: int) -> float:
    """CPU seconds a local process has spent (NaN when it is not on this machine)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


async def _server_cpu_s(pool: asyncpg.Pool) -> float:
    """CPU seconds spent so far by the server processes serving this database's clients (the
    pool's, which live through the run): less moved by the machine's load than rates are.
    NaN unless the server runs on this machine."""
    rows = await pool.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND backend_type = 'client backend'"
    )
    return sum(_process_cpu_s(r["pid"]) for r in rows)


@dataclass
class _Compared:
    rate: float
    rate_off: float
    cpu_us: float
    """Server CPU per update, µs."""
    cpu_us_off: float
    presence_per_fix: float


async def _compare(
    pool: asyncpg.Pool, writer: PositionWriter, streams: list[list[PositionRow]], batch: int
) -> _Compared:
    """Coverage presence on and its triggers off, in alternating chunks so that the shared
    machine's load falls on both alike: rates, server CPU, new presence rows per update."""
    took = [0.0, 0.0]
    cpu = [0.0, 0.0]
    done = [0, 0]
    presence = 0
    for k, rows in enumerate(streams):
        off = k % 2
        before = await pool.fetchval("SELECT count(*) FROM coverage_presence")
        if off:
            await pool.execute(_PRESENCE_OFF)
        cpu_before = await _server_cpu_s(pool)
        took[off] += await _through_writer(writer, rows, batch)
        cpu[off] += await _server_cpu_s(pool) - cpu_before
        if off:
            await pool.execute(_PRESENCE_ON)
        else:
            presence += await pool.fetchval("SELECT count(*) FROM coverage_presence") - before
        done[off] += len(rows)
    return _Compared(
        done[0] / took[0],
        done[1] / took[1],
        cpu[0] / done[0] * 1e6,
        cpu[1] / done[1] * 1e6,
        presence / done[0],
    )


@dataclass
class _Rebuilds:
    fetch_s: list[float]
    index_s: list[float]
    positions: int
    warm_s: float
    kernels_s: float


async def _rebuilds(pool: asyncpg.Pool, times: int) -> _Rebuilds:
    """The start-up rebuild ``times`` times: the fetch (COPY and columns) and the index
    built from them (``PositionCache.load_arrays``), each timed on its own."""
    # The compiled query kernels load once per process, whatever the data.
    started = time.perf_counter()
    VolunteerIndex()
    kernels = time.perf_counter() - started
    fetch_s: list[float] = []
    index_s: list[float] = []
    cache = PositionCache()
    for _ in range(times):
        del cache  # the previous one's memory is free again, as in a fresh process
        started = time.perf_counter()
        async with pool.acquire() as conn:
            columns = await fresh_position_arrays(conn)
        fetched = time.perf_counter()
        cache = PositionCache()
        cache.load_arrays(columns)
        fetch_s.append(fetched - started)
        index_s.append(time.perf_counter() - fetched)
        del columns
    warm_started = time.perf_counter()
    await cache.warm()  # the service does this in the background once it is ready
    warmed = time.perf_counter() - warm_started
    return _Rebuilds(fetch_s, index_s, len(cache), warmed, kernels)


def _print_rebuilds(r: _Rebuilds) -> None:
    fetch, index = statistics.median(r.fetch_s), statistics.median(r.index_s)
    ratio = statistics.median(i / f for f, i in zip(r.fetch_s, r.index_s, strict=True))
    print(
        f"  rebuild of {r.positions:,} positions, {len(r.fetch_s)} times:"
        f" fetch {' '.join(f'{f:.2f}' for f in r.fetch_s)} s,"
        f" index {' '.join(f'{i:.2f}' for i in r.index_s)} s"
    )
    verdict = "met" if fetch + index <= 10 else "NOT met"
    print(
        f"  median: fetch {fetch:.2f} s + index {index:.2f} s = total {fetch + index:.2f} s"
        f" (target <= 10 s: {verdict}); index / fetch {ratio:.2f}"
        f" (target <= 0.5: {'met' if ratio <= 0.5 else 'NOT met'})"
    )
    print(
        f"  cell-table warm-up after readiness {r.warm_s:.2f} s; kernel load"
        f" {r.kernels_s:.2f} s once per process"
    )


async def _seed_positions(conn: asyncpg.Connection, agency_id: UUID, ids: list[int]) -> None:
    """One position per volunteer with its cell, as the writer stores them, by COPY with the
    change-feed and presence triggers off (for ``--rebuild-only``: minutes faster)."""
    rng = random.Random(7)
    at = datetime.now(UTC) - timedelta(seconds=60)

    def rows() -> Any:
        for volunteer_id in ids:
            lat, lon = rng.uniform(LAT0, LAT1), rng.uniform(LON0, LON1)
            yield (volunteer_id, agency_id, lat, lon, 10.0, at, point_cell(lat, lon))

    await conn.execute("ALTER TABLE volunteer_positions DISABLE TRIGGER USER")
    await conn.copy_records_to_table(
        "volunteer_positions",
        records=rows(),
        columns=["volunteer_id", "agency_id", "lat", "lon", "accuracy_m", "reported_at", "cell"],
    )
    await conn.execute("ALTER TABLE volunteer_positions ENABLE TRIGGER USER")


async def _writes(
    pool: asyncpg.Pool, agency_id: UUID, ids: list[int], args: argparse.Namespace
) -> tuple[_Compared, _Compared]:
    """Seed every volunteer through the writer, then the two timed update streams."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    last: dict[int, PositionRow] = {}

    def fix(volunteer_id: int, at: datetime) -> PositionRow:
        row = last[volunteer_id] = PositionRow(
            volunteer_id,
            agency_id,
            rng.uniform(LAT0, LAT1),
            rng.uniform(LON0, LON1),
            10.0,
            at,
        )
        return row

    def walk(volunteer_id: int) -> PositionRow:
        """The volunteer's next fix: 30 s after the last, a step of up to STEP_M away."""
        before = last[volunteer_id]
        north, east = (rng.uniform(-STEP_M, STEP_M) / _M_PER_DEG_LAT for _ in range(2))
        row = last[volunteer_id] = PositionRow(
            volunteer_id,
            agency_id,
            before.lat + north,
            before.lon + east / math.cos(math.radians(before.lat)),
            10.0,
            before.reported_at + timedelta(seconds=30),
        )
        return row

    # Seed every volunteer once (not timed), then time a stream of updates.
    writer = PositionWriter(pool, flush_s=1.0, max_rows=args.batch)
    for volunteer_id in ids:
        writer.submit(fix(volunteer_id, now - timedelta(seconds=60)))
        if writer.pending >= args.batch:
            await writer.flush()
    await writer.flush()

    # Every fix a teleport to a random point: nearly every one enters a new cell.
    chunk = args.updates // 4
    teleports = [[fix(rng.choice(ids), now) for _ in range(chunk)] for _ in range(8)]
    teleported = await _compare(pool, writer, teleports, args.batch)
    walks = [[walk(rng.choice(ids)) for _ in range(chunk)] for _ in range(8)]
    walked = await _compare(pool, writer, walks, args.batch)
    return teleported, walked


def _print_writes(teleported: _Compared, walked: _Compared) -> None:
    verdict = "met" if teleported.rate >= 20_000 else "NOT met"
    print(f"  persisted updates {teleported.rate:12,.0f} /s   (target >= 20,000/s: {verdict})")
    for label, c in (("each fix a random point in the city", teleported), ("walking", walked)):
        print(
            f"  {label}: {c.rate:,.0f}/s with presence ({c.presence_per_fix:.3f} new rows"
            f" per fix), {c.rate_off:,.0f}/s with its triggers off:"
            f" ratio {c.rate / c.rate_off:.2f};"
            f" server CPU per fix {c.cpu_us:.1f} vs {c.cpu_us_off:.1f} us:"
            f" ratio {c.cpu_us_off / c.cpu_us:.2f}"
        )
    print(f"    (walking: fixes 30 s apart, steps of up to {STEP_M:.0f} m)")


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
            if args.rebuild_only:
                async with pool.acquire() as conn:
                    await _seed_positions(conn, agency_id, ids)
            else:
                teleported, walked = await _writes(pool, agency_id, ids, args)
            rebuilds = await _rebuilds(pool, args.rebuilds)

        print(f"positions: {args.volunteers:,} volunteers, batches of {args.batch:,} rows")
        if not args.rebuild_only:
            _print_writes(teleported, walked)
        _print_rebuilds(rebuilds)
    finally:
        admin = await asyncpg.connect(args.database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _scratch(args: argparse.Namespace, volunteers: int) -> tuple[str, str, UUID]:
    """A migrated scratch database with ``volunteers`` eligible volunteers."""
    name = f"dispatch_bench_follow_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = urlunsplit(urlsplit(args.database_url)._replace(path="/" + name))
    agency_id = uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO agencies (id, name) VALUES ($1, 'bench')", agency_id)
        await conn.copy_records_to_table(
            "volunteers",
            records=((agency_id, "v", secrets.token_bytes(16)) for _ in range(volunteers)),
            columns=["agency_id", "display_name", "token_hash"],
        )
    finally:
        await conn.close()
    return name, dsn, agency_id


def _follower_process(dsn: str, seconds: float, ready: Any, out: Any) -> None:
    """The second process: a follower as the service runs it, recording each fix's delay."""
    from dispatch.db.listen import Listener
    from dispatch.service import position_follow
    from dispatch.store.position_changes import CHANNEL, PositionChange

    delays: list[float] = []
    apply = position_follow.apply_change

    def timed(cache: PositionCache, change: PositionChange) -> None:
        apply(cache, change)
        if change.position is not None:
            delays.append(time.time() - change.position[2].timestamp())

    # Only here, in the benchmark's own process: the delay is taken as each change lands.
    position_follow.apply_change = timed  # type: ignore[assignment]

    async def follow() -> None:
        settings = Settings(database_url=dsn, db_pool_max=4)
        async with open_pool(dsn, settings) as pool:
            upto, cache = await position_follow.load(pool)
            follower = position_follow.PositionFollower(pool, cache, after=upto)
            listener = Listener(dsn, {CHANNEL: follower.notified})
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(follower.run(stop)),
                asyncio.create_task(listener.run(stop)),
            ]
            ready.set()
            await asyncio.sleep(seconds)
            stop.set()
            await asyncio.gather(*tasks)
        out.put(delays)

    asyncio.run(follow())


async def run_follow(args: argparse.Namespace) -> None:
    import multiprocessing

    print(await calibration_line(args.database_url), flush=True)
    name, dsn, agency_id = await _scratch(args, args.volunteers)
    try:
        settings = Settings(database_url=dsn, db_pool_max=4)
        async with open_pool(dsn, settings) as pool:
            ids = [r["id"] for r in await pool.fetch("SELECT id FROM volunteers ORDER BY id")]
            rng = random.Random(7)

            def fix(volunteer_id: int) -> PositionRow:
                at = datetime.now(UTC)
                lat, lon = rng.uniform(LAT0, LAT1), rng.uniform(LON0, LON1)
                return PositionRow(volunteer_id, agency_id, lat, lon, 10.0, at)

            # What the change feed costs the writer: the same flushes with it switched off
            # (no triggers, no number drawn, no index on it) and on, alternately.
            feed_off = (
                "ALTER TABLE volunteer_positions DISABLE TRIGGER USER,"
                " ALTER COLUMN change_seq SET DEFAULT 0;"
                " DROP INDEX volunteer_positions_change"
            )
            feed_on = (
                "ALTER TABLE volunteer_positions ENABLE TRIGGER USER,"
                " ALTER COLUMN change_seq SET DEFAULT nextval('position_change_seq');"
                " CREATE INDEX volunteer_positions_change ON volunteer_positions (change_seq)"
            )
            writer = PositionWriter(pool, flush_s=1.0, max_rows=1000)
            costs = {"off": 0.0, "on": 0.0, "warm-up": 0.0}
            for label in ["warm-up"] + ["off", "on"] * 3:
                if label == "off":
                    await pool.execute(feed_off)
                started = time.perf_counter()
                for _ in range(20):
                    for volunteer_id in rng.sample(ids, 1000):
                        writer.submit(fix(volunteer_id))
                    await writer.flush()
                costs[label] += time.perf_counter() - started
                if label == "off":
                    await pool.execute(feed_on)

            context = multiprocessing.get_context("spawn")
            ready, out = context.Event(), context.Queue()
            seconds = args.seconds
            follower = context.Process(
                target=_follower_process, args=(dsn, seconds + 3.0, ready, out)
            )
            follower.start()
            await asyncio.to_thread(ready.wait, 60)
            # The service's own flush interval: positions are written every 0.2 s.
            writer = PositionWriter(pool, flush_s=Settings().position_flush_s, max_rows=2000)
            stop = asyncio.Event()
            flushing = asyncio.create_task(writer.run(stop))
            tick = 0.01
            per_tick = max(1, round(args.rate * tick))
            started = time.perf_counter()
            sent = 0
            while time.perf_counter() - started < seconds:
                for volunteer_id in rng.sample(ids, per_tick):
                    writer.submit(fix(volunteer_id))
                sent += per_tick
                await asyncio.sleep(max(0.0, started + sent / args.rate - time.perf_counter()))
            stop.set()
            await flushing
            delays = sorted(await asyncio.to_thread(out.get, True, 60))
            await asyncio.to_thread(follower.join, 30)
    finally:
        admin = await asyncpg.connect(args.database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    def pct(q: float) -> float:
        return delays[min(len(delays) - 1, int(q * len(delays)))] * 1000

    achieved = sent / seconds
    print(
        f"follow: {args.volunteers:,} volunteers, {achieved:,.0f} updates/s reported to one"
        f" process for {seconds:.0f} s, another process following"
    )
    print(
        f"  fix reported -> matchable in the other process: p50 {pct(0.5):.0f} ms,"
        f" p95 {pct(0.95):.0f} ms, p99 {pct(0.99):.0f} ms, max {delays[-1] * 1000:.0f} ms"
        f" ({len(delays):,} fixes; target p99 <= 1000 ms)"
    )
    print(
        f"  writer cost of the change feed: 60 flushes of 1,000 rows {costs['on']:.2f} s with it,"
        f" {costs['off']:.2f} s without (no triggers, number or index; ratio"
        f" {costs['on'] / costs['off']:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--volunteers", type=int, default=None)
    parser.add_argument("--updates", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--database-url", default="postgresql://127.0.0.1/postgres")
    parser.add_argument(
        "--rebuild-only",
        action="store_true",
        help="seed the positions by COPY and time only the start-up rebuild",
    )
    parser.add_argument("--rebuilds", type=int, default=3, help="start-up rebuilds to time")
    args = parser.parse_args()
    if args.follow:
        args.volunteers = args.volunteers or 100_000
        asyncio.run(run_follow(args))
    else:
        args.volunteers = args.volunteers or 1_000_000
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
