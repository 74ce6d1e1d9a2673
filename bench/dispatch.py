"""Dispatch under a steady incident load: CAD request in → first-wave alerts committed.

Loads 100,000 volunteers over a 420 km² city box into a scratch database, starts
``dispatch serve`` (which rebuilds its index from the table), then posts
cardiac-arrest incidents open loop (sends are scheduled, not waiting for answers) at a
low rate and then at the load rate, in one invocation. The first wave's alert and
outbox rows are written in the intake transaction, so the answer to each POST arrives
after all first-wave rows are committed: the client-side latency bounds that.

Absolute figures move 2-3x between machines, so what is promised is a ratio measured
in the same run: p99 at the load rate (50/s) within 2x of the p99 at the low rate (2/s).
Printed per rate: latency, the database statements (round trips) per created incident
from the service's own ``dispatch_db_statements_total``, and CPU per incident in the
service process and in this database's PostgreSQL backends. A calibration line comes
first. Not a test: numbers only.

    python bench/dispatch.py [--volunteers 100000] [--low-rate 2] [--low-seconds 60]
        [--rate 50] [--seconds 30] [--database-url postgresql://127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import calibration_line
from bench.common import bench_parser, scratch_database, served, service_env
from tests.dispatch.serve_process import ServeProcess, run_cli

LAT0, LAT1, LON0, LON1 = 59.22, 59.40, 17.85, 18.21


async def _load(dsn: str, agency_id: UUID, n: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE agencies SET intake_rate_per_min = 100000 WHERE id = $1", agency_id
        )
        certified = datetime.now(UTC) + timedelta(days=365)
        await conn.copy_records_to_table(
            "volunteers",
            records=((agency_id, "v", secrets.token_bytes(16), certified) for _ in range(n)),
            columns=["agency_id", "display_name", "token_hash", "certified_until"],
        )
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM volunteers ORDER BY id")]
        rng = random.Random(3)
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "volunteer_positions",
            records=(
                (vid, agency_id, rng.uniform(LAT0, LAT1), rng.uniform(LON0, LON1), now)
                for vid in ids
            ),
            columns=["volunteer_id", "agency_id", "lat", "lon", "reported_at"],
        )
    finally:
        await conn.close()


@dataclass
class Phase:
    rate: float
    latencies: list[float] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    statements: dict[str, float] = field(default_factory=dict)
    service_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(len(ordered) * 0.99) - 1)]

    def show(self) -> None:
        n = len(self.latencies)
        ordered = sorted(self.latencies)
        per = {pool: count / n for pool, count in sorted(self.statements.items())}
        split = ", ".join(f"{pool} {v:.1f}" for pool, v in per.items())
        print(
            f"  at {self.rate:g}/s: {n} incidents, first-wave alerts mean "
            f"{statistics.mean(self.queued):.1f}"
        )
        print(
            f"    CAD request in -> first-wave rows committed: p50 {statistics.median(ordered):.2f}"
            f" ms, p99 {self.p99():.2f} ms, max {ordered[-1]:.2f} ms"
        )
        print(f"    database statements per incident: {sum(per.values()):.1f} ({split})")
        print(
            f"    CPU per incident: service {self.service_cpu_s / n * 1000:.2f} ms,"
            f" PostgreSQL {self.postgres_cpu_s / n * 1000:.2f} ms"
        )


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _backends(conn: asyncpg.Connection) -> list[int]:
    """This database's server processes other than our own probe connection."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return [r["pid"] for r in rows]


async def _statements(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(f"{base}/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("dispatch_db_statements_total{"):
            labels, value = line.rsplit(" ", 1)
            pool = labels.split('pool="', 1)[1].split('"', 1)[0]
            out[pool] = out.get(pool, 0.0) + float(value)
    return out


async def run(args: argparse.Namespace) -> None:
    print(await calibration_line(args.database_url), flush=True)
    async with scratch_database(args.database_url, "dispatch_bench_engine") as dsn:
        # The service's own defaults for its polling loops, not the test harness's faster ones.
        env = service_env(dsn, DISPATCH_NOTIFIER_POLL_S="0.2", DISPATCH_POSITION_FLUSH_S="0.2")
        agency = await run_cli(env, "agency", "create", "--name", "Bench")
        await _load(dsn, UUID(agency["agency_id"]), args.volunteers)
        async with served(env, timeout_s=120) as (server, startup):
            await _measure(args, dsn, server, agency, startup)


async def _measure(
    args: argparse.Namespace,
    dsn: str,
    server: ServeProcess,
    agency: dict[str, str],
    startup: float,
) -> None:
    url = f"{server.base}/v1/cad/{agency['agency_id']}/incidents"
    headers = {"Authorization": f"Bearer {agency['integration_key']}"}
    rng = random.Random(11)
    counter = itertools.count()
    probe = await asyncpg.connect(dsn)

    async def one(session: aiohttp.ClientSession, phase: Phase | None) -> None:
        body = {
            "incident_id": f"bench-{next(counter)}",
            "call_type": {"code": "09-E-01"},
            "received_at": datetime.now(UTC).isoformat(),
            "location": {
                "lat": rng.uniform(LAT0 + 0.01, LAT1 - 0.01),
                "lon": rng.uniform(LON0 + 0.02, LON1 - 0.02),
            },
            "place_type": "public",
        }
        started = time.perf_counter()
        async with session.post(url, json=body, headers=headers) as resp:
            answer = await resp.json()
        if phase is not None:
            phase.latencies.append((time.perf_counter() - started) * 1000)
            phase.queued.append(answer["alerts_queued"])

    async def measure(session: aiohttp.ClientSession, rate: float, seconds: float) -> Phase:
        phase = Phase(rate)
        backends = await _backends(probe)
        before = await _statements(session, server.base)
        cpu_before = _cpu_s([server.proc.pid]), _cpu_s(backends)
        total = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, phase)))
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)  # let the notifier send this phase's alerts
        after = await _statements(session, server.base)
        phase.service_cpu_s = _cpu_s([server.proc.pid]) - cpu_before[0]
        phase.postgres_cpu_s = _cpu_s(backends) - cpu_before[1]
        phase.statements = {k: v - before.get(k, 0.0) for k, v in after.items()}
        return phase

    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(10):  # warm-up
                await one(session, None)
            low = await measure(session, args.low_rate, args.low_seconds)
            spy = None
            if args.py_spy:
                # Collapsed stacks of the service during the load phase: where time goes.
                spy = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited)
                    ["py-spy", "record", "--pid", str(server.proc.pid), "--rate", "250",
                     "--format", "raw", "--output", args.py_spy, "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            high = await measure(session, args.rate, args.seconds)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait, 30)
    finally:
        await probe.close()
    print(
        f"dispatch: {args.volunteers:,} volunteers (index rebuilt at start; ready in"
        f" {startup:.1f} s)"
    )
    low.show()
    high.show()
    ratio = high.p99() / low.p99()
    print(
        f"  ratio p99 at {args.rate:g}/s / p99 at {args.low_rate:g}/s: {ratio:.2f}"
        f"  (target <= 2: {'met' if ratio <= 2 else 'NOT met'})"
    )


def main() -> None:
    parser = bench_parser(
        __doc__, volunteers=100_000, low_rate=2.0, low_seconds=60.0, rate=50.0, seconds=30.0
    )
    parser.add_argument(
        "--py-spy", metavar="FILE", help="record the service's stacks in the load phase (py-spy)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
