"""CAD intake throughput: EIDO documents posted over HTTP to a running ``dispatch serve``.

Prints sustained documents/s and intake latency (request sent → 202 received,
which is after the intake transaction committed). Targets: ≥ 500
documents/s with p99 ≤ 20 ms on a 2-core machine. Not a test: numbers only.

    python bench/cad_intake.py [--documents 5000] [--concurrency 8]
        [--database-url postgresql://127.0.0.1/postgres]

The server runs against a scratch database created on ``--database-url``'s server
and dropped afterwards. Each document is a distinct incident or a newer snapshot
of one (a quarter are updates), all cardiac arrests with 50 volunteers nearby, so
every intake runs the full path: auth, parse, upsert, match, alert + outbox rows.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.calibration import calibration_line  # noqa: E402
from bench.common import bench_parser, scratch_database, served, service_env  # noqa: E402
from tests.dispatch.helpers import shift_stamps  # noqa: E402
from tests.dispatch.serve_process import run_cli  # noqa: E402

FIXTURE = ROOT / "tests" / "cad_adapters" / "fixtures" / "eido_cardiac_arrest.json"


def _documents(n: int) -> list[bytes]:
    # The fixture's call started 2024-03-05 09:00 UTC; moved to a minute ago so that every
    # created incident alerts (intake never alerts for one received over 30 minutes before).
    shift = datetime.now(UTC) - timedelta(minutes=1) - datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
    base = shift_stamps(json.loads(FIXTURE.read_text()), shift)
    docs = []
    for i in range(n):
        doc = copy.deepcopy(base)
        incident = i if i % 4 else max(i - 1, 0)  # every fourth is an update of the previous
        doc["$id"] = f"urn:emergency:uid:incidentid:bench{incident}:psap.example.org"
        doc["lastUpdateTimeStamp"] = shift_stamps(
            f"2024-03-05T10:{(i % 4) + 5:02d}:00+01:00", shift
        )
        docs.append(json.dumps(doc).encode())
    return docs


async def _seed(dsn: str, agency_id: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE agencies SET intake_rate_per_min = 100000, alert_limit = 7 WHERE id = $1",
            agency_id,
        )
        for i in range(50):
            vid = await conn.fetchval(
                "INSERT INTO volunteers (agency_id, display_name, token_hash)"
                " VALUES ($1, 'bench', $2) RETURNING id",
                agency_id,
                secrets.token_bytes(32),
            )
            await conn.execute(
                "INSERT INTO volunteer_positions (volunteer_id, agency_id, lat, lon, reported_at)"
                " VALUES ($1, $2, $3, $4, now())",
                vid,
                agency_id,
                52.370216 + (i % 10) * 0.0003,
                4.895168 + (i // 10) * 0.0003,
            )
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    print(await calibration_line(args.database_url), flush=True)
    async with scratch_database(args.database_url, "dispatch_bench") as dsn:
        env = service_env(dsn, DISPATCH_NOTIFIER_ENABLED="true" if args.notifier else "false")
        agency = await run_cli(env, "agency", "create", "--name", "Bench")
        await _seed(dsn, agency["agency_id"])
        async with served(env) as (server, _):
            await _measure(args, server.base, agency)


async def _measure(args: argparse.Namespace, base: str, agency: dict[str, str]) -> None:
    url = f"{base}/v1/cad/{agency['agency_id']}/eido"
    headers = {
        "Authorization": f"Bearer {agency['integration_key']}",
        "Content-Type": "application/json",
    }
    docs = _documents(args.documents)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for doc in docs:
        queue.put_nowait(doc)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            doc = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=doc, headers=headers) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for doc in docs[:20]:  # warm-up: connections, prepared statements
            async with session.post(url, data=doc, headers=headers) as resp:
                await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    rate = len(latencies) / elapsed
    print(
        f"EIDO documents over HTTP: {len(latencies)} in {elapsed:.2f} s,"
        f" concurrency {args.concurrency}, notifier {'on' if args.notifier else 'off'}"
    )
    print(f"  statuses: {dict(sorted(statuses.items()))}")
    verdict = "met" if rate >= 500 else "NOT met"
    print(f"  throughput  {rate:8.0f} documents/s   (target >= 500: {verdict})")
    print(f"  latency p50 {p50:8.2f} ms")
    verdict = "met" if p99 <= 20 else "NOT met"
    print(f"  latency p99 {p99:8.2f} ms          (target <= 20 ms: {verdict})")


def main() -> None:
    parser = bench_parser(__doc__, documents=5000, concurrency=6)
    parser.add_argument(
        "--no-notifier",
        dest="notifier",
        action="store_false",
        help="measure intake alone (the outbox worker then runs in no process)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
