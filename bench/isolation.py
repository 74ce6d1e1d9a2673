"""One agency never slows another: CAD intake latency while others load the server.

Runs the real ``dispatch serve`` against a scratch database and measures one agency's
CAD intake (one document every ``--interval-ms``, one at a time; each a new cardiac
arrest among 20,000 volunteers) first with the server idle, then while

- a second agency's supervisor imports a ``--aed-rows`` AED file (at least ``--imports``
  times, and again until the flood is over), and
- another client (a separate process) sends ``--flood`` intake requests with wrong keys
  over ``--concurrency`` connections, half to the measured agency and half to a third
  one (throttled clients wait ``DISPATCH_AUTH_TARPIT_S``, 1 s, for each 429).

Prints a calibration line first (PostgreSQL round trip and a fixed CPU loop, so runs on
different machines can be compared), then both latency distributions and the ratio of
p99 under load to p99 idle (target: at most 2); the idle side is measured before and
after the load and pooled. Numbers only, not a test.

    python bench/isolation.py [--database-url postgresql://127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.calibration import calibration_line  # noqa: E402
from bench.common import bench_parser, scratch_database, served, service_env  # noqa: E402
from dispatch.db.migrate import migrate  # noqa: E402
from tests.dispatch.isolation_load import (  # noqa: E402
    Agency,
    IntakeSamples,
    aed_csv,
    import_aeds,
    new_agency,
    paced_intake,
    wrong_key_flood,
)


def _line(name: str, samples: IntakeSamples) -> str:
    return (
        f"  {name:<5} n={len(samples.latencies_ms):4d}  p50 {samples.percentile(0.5):7.2f} ms"
        f"  p99 {samples.percentile(0.99):7.2f} ms  max {max(samples.latencies_ms):7.2f} ms"
        f"  statuses {dict(sorted(samples.statuses.items()))}"
    )


async def _flood_process(base: str, targets: list[UUID], count: int, concurrency: int) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--flood-only",
        base,
        ",".join(map(str, targets)),
        str(count),
        str(concurrency),
        stdout=subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return json.loads(out)


async def _idle(
    session: aiohttp.ClientSession,
    base: str,
    agency: Agency,
    interval_s: float,
    seconds: float,
    prefix: str,
) -> IntakeSamples:
    done = asyncio.Event()
    task = asyncio.create_task(
        paced_intake(session, base, agency, interval_s=interval_s, until=done, prefix=prefix)
    )
    await asyncio.sleep(seconds)
    done.set()
    return await task


async def run(args: argparse.Namespace) -> None:
    print(await calibration_line(args.database_url), flush=True)
    async with scratch_database(args.database_url, "dispatch_bench") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
            measured = await new_agency(conn, "Measured", volunteers=20_000)
            importer = await new_agency(conn, "Importer")
            other = await new_agency(conn, "Other")
        finally:
            await conn.close()
        env = service_env(dsn)
        if not args.notifier:
            env["DISPATCH_NOTIFIER_ENABLED"] = "false"
        async with served(env, timeout_s=60) as (server, _):
            await _measure(args, server.base, measured, importer, other)


async def _measure(
    args: argparse.Namespace, base: str, measured: Agency, importer: Agency, other: Agency
) -> None:
    body = aed_csv(args.aed_rows)
    interval = args.interval_ms / 1000
    async with aiohttp.ClientSession() as session:
        warm = asyncio.Event()
        warm.set()
        await paced_intake(
            session, base, measured, interval_s=0.01, until=warm, prefix="w", minimum=50
        )
        idle = await _idle(session, base, measured, interval, args.idle_s, "i")
        load_done = asyncio.Event()
        load_task = asyncio.create_task(
            paced_intake(session, base, measured, interval_s=interval, until=load_done, prefix="l")
        )
        flood = asyncio.create_task(
            _flood_process(
                base, [measured.agency_id, other.agency_id], args.flood, args.concurrency
            )
        )
        imports = []
        async with aiohttp.ClientSession() as import_session:
            while len(imports) < args.imports or not flood.done():
                imports.append(await import_aeds(import_session, base, importer, body))
        flooded = await flood
        load_done.set()
        loaded = await load_task
        # Idle again after the load, pooled with the first: other work on the machine
        # that comes and goes then weighs on both sides of the ratio alike.
        after = await _idle(session, base, measured, interval, args.idle_s, "j")
        idle.latencies_ms += after.latencies_ms
        for status, n in after.statuses.items():
            idle.statuses[status] = idle.statuses.get(status, 0) + n
    print(
        f"AED import: {args.aed_rows} rows, {len(body) / 1024:.0f} KiB, {len(imports)} times:"
        + "".join(f" {status} in {seconds:.2f} s;" for status, seconds in imports)
    )
    print(
        f"wrong-key flood: {args.flood} requests, concurrency {args.concurrency},"
        f" {flooded['seconds']:.2f} s, statuses {flooded['statuses']}"
    )
    print(f"CAD intake of the measured agency, one every {args.interval_ms:g} ms:")
    print(_line("idle", idle))
    print(_line("load", loaded))
    ratio = loaded.percentile(0.99) / idle.percentile(0.99)
    verdict = "met" if ratio <= 2 else "NOT met"
    print(f"  p99 under load / p99 idle = {ratio:.2f}   (target <= 2: {verdict})")


def _flood_only(argv: list[str]) -> None:
    base, targets, count, concurrency = argv
    result = asyncio.run(
        wrong_key_flood(
            base,
            [UUID(t) for t in targets.split(",")],
            count=int(count),
            concurrency=int(concurrency),
        )
    )
    print(json.dumps({"statuses": result.statuses, "seconds": result.seconds}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--flood-only":
        _flood_only(sys.argv[2:])
        return
    parser = bench_parser(
        __doc__,
        aed_rows=50_000,
        imports=1,
        flood=3000,
        concurrency=100,
        interval_ms=20.0,
        idle_s=6.0,
    )
    parser.add_argument("--no-notifier", dest="notifier", action="store_false")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
