"""Benchmark the push path: outbox → OutboxWorker → firebase-admin → FCM fake (not a test).

Two measurements, printed:

1. throughput: 10,000 alerts (100 incidents × 100) committed in one transaction, then
   sent by the worker through the real SDK to the wire fake; messages/s from the commit to
   the last request arriving at the fake;
2. latency: 20 incidents × 30 alerts committed at once (20 transactions, concurrently);
   per alert, the time from its incident's commit to its request arriving at the fake
   (p50 / p99 / max);
3. the HTTP leg alone: ready-made requests from aiohttp to the fake (no database, no
   SDK), the floor under both on this machine, measured in the same run.

What is promised is the two ratios to that floor, because absolute figures move 2-3x
between machines: burst p99 <= 1.3x the HTTP-alone time for the same 600 requests, and
sustained throughput >= 0.5x the bare HTTP rate. A calibration line comes first. The
machine's own speed drifts within a run (a shared VM's bare HTTP rate read 3,000 and
6,600/s minutes apart), so each measurement runs between two of its floor's and is
divided by their mean, in ``--rounds`` rounds (default 3), and the median is printed. Nothing
here waits on a statement within the service's command timeout: seeding and clean-up
run on a connection of their own without one.

The fake runs in a child process (its own interpreter, so it does not share our GIL) and
reports arrival times over ``GET /_journal``. PostgreSQL: ``DATABASE_URL`` (a scratch
database is created and dropped there) or the embedded server in a temporary folder.

    .venv/bin/python bench/notify.py [--alerts 10000] [--batch 100] [--pipeline 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import asyncpg
from asyncpg.connection import LoggedQuery
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.calibration import calibration_line
from dispatch.config import Settings
from dispatch.db.migrate import migrate
from dispatch.db.pool import open_pool
from dispatch.domain.clock import SystemClock
from dispatch.metrics import Metrics
from dispatch.service.providers import Providers
from dispatch.store import agencies as agency_store
from dispatch.store import alerts as alert_store
from dispatch.store.alerts import NewAlert
from dispatch.workers.notifier import OutboxWorker
from notify.fcm import FcmNotifier
from tests.dispatch.helpers import bare_incident

PROJECT = "bench-project"


def _run_fake(public_pem: bytes, port_queue: Any) -> None:
    from aiohttp import web

    from tests.fakes.fcm_server import FakeFcm

    async def main() -> None:
        fake = FakeFcm(public_key_pem=public_pem)
        runner = web.AppRunner(fake.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_queue.put(int(runner.addresses[0][1]))
        await asyncio.Event().wait()

    asyncio.run(main())


@asynccontextmanager
async def database() -> AsyncIterator[str]:
    external = os.environ.get("DATABASE_URL")
    if external:
        name = f"notify_bench_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(external)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        dsn = external.rsplit("/", 1)[0] + "/" + name
        try:
            yield dsn
        finally:
            conn = await asyncpg.connect(external)
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await conn.close()
        return
    from dispatch.db.embedded import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="notify-bench-") as folder:
        os.environ.setdefault("XDG_RUNTIME_DIR", folder)
        async with embedded_postgres(Path(folder) / "pg") as dsn:
            yield dsn


async def seed_volunteers(conn: asyncpg.Connection, agency_id: UUID, n: int) -> list[int]:
    ids: list[int] = [
        r["id"]
        for r in await conn.fetch(
            """
            INSERT INTO volunteers (agency_id, display_name, token_hash)
            SELECT $1, 'V' || g, decode(md5(random()::text || g), 'hex')
            FROM generate_series(1, $2) g RETURNING id
            """,
            agency_id,
            n,
        )
    ]
    await conn.execute(
        """
        INSERT INTO devices (agency_id, volunteer_id, platform, fcm_token)
        SELECT $1, v, 'android', 'bench-token-' || v FROM unnest($2::bigint[]) v
        """,
        agency_id,
        ids,
    )
    return ids


async def queue(
    pool: asyncpg.Pool, agency_id: UUID, volunteers: list[int], name: str
) -> tuple[float, list[int]]:
    """One incident and its alerts in one transaction; returns the commit time."""
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        async with conn.transaction():
            incident_id = await bare_incident(conn, agency_id, name, source="bench")
            await alert_store.insert_with_outbox(
                conn,
                agency_id=agency_id,
                incident_id=incident_id,
                alerts=[NewAlert(uuid4(), v, 50.0, "cpr", "auto") for v in volunteers],
                expires_at=now + timedelta(minutes=10),
                now=now,
            )
        committed = time.time()
    return committed, volunteers


async def journal(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(f"{url}/_journal") as resp:
        rows = await resp.json()
    return {str(address): float(at) for address, at in rows}


async def wait_sent(pool: asyncpg.Pool, timeout_s: float = 120.0) -> None:
    """Until no outbox row is left to do.

    Polled every 50 ms with a look at the first pending row: a count of the pending rows
    every 20 ms took a tenth of the database's CPU in the throughput run (the index of
    pending rows keeps entries of finished rows until a vacuum), CPU the worker then
    did not have.
    """
    async with asyncio.timeout(timeout_s):
        while True:
            async with pool.acquire() as conn:
                left = await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM outbox WHERE done_at IS NULL"
                    " ORDER BY available_at, id LIMIT 1)"
                )
            if not left:
                return
            await asyncio.sleep(0.05)


class StatementCount:
    """Statements run on the worker's connections (asyncpg's query logger), and the time
    each kind took from the worker's side (sent to answered; waits for CPU included)."""

    def __init__(self) -> None:
        self.n = 0
        self.by_kind: dict[str, list[float]] = {}

    def count(self, query: LoggedQuery) -> None:
        self.n += 1
        kind = " ".join(query.query.split())[:60]
        self.by_kind.setdefault(kind, []).append(query.elapsed)

    def reset(self) -> None:
        self.n = 0
        self.by_kind = {}


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU of these processes so far (Linux /proc; left out where unreadable)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings; a process started in between counts from zero."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


async def postgres_pids(pool: asyncpg.Pool) -> list[int]:
    """The server's processes that work for this run: backends connected to the scratch
    database and the server's own workers (WAL writer, checkpointer); not the backends of
    other databases on a shared server."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL"
        )
        return [r["pid"] for r in rows]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    fake = ctx.Process(target=_run_fake, args=(public, ports), daemon=True)
    fake.start()
    fake_url = f"http://127.0.0.1:{ports.get(timeout=20)}"
    folder = Path(tempfile.mkdtemp(prefix="notify-bench-sa-"))
    sa = folder / "sa.json"
    sa.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1",
                "private_key": key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "client_email": f"bench@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"{fake_url}/token",
            }
        )
    )
    try:
        async with database() as dsn:
            print(await calibration_line(dsn), flush=True)
            settings = Settings(database_url=dsn, db_pool_min=2, db_pool_max=10)
            statements = StatementCount()
            # The bench's own connection: no command timeout, so a slower machine's bulk
            # statements finish instead of failing the run.
            conn = await asyncpg.connect(dsn)
            await migrate(conn)
            agency_id, _ = await agency_store.create_agency(conn, name="Bench")
            volunteers = await seed_volunteers(conn, agency_id, args.alerts)
            async with (
                open_pool(dsn, settings) as pool,
                # As in the service: the worker has its own connections (dispatch.web.app).
                open_pool(
                    dsn,
                    settings,
                    min_size=1,
                    max_size=args.workers * (args.pipeline + 1),
                    on_statement=statements.count,
                ) as worker_pool,
                aiohttp.ClientSession() as session,
            ):
                fcm = FcmNotifier(
                    service_account_file=sa,
                    base_url=fake_url,
                    http_timeout_s=10,
                    transport=args.transport,
                    max_connections=args.in_flight,
                )
                await fcm.warm_up()
                workers = [
                    OutboxWorker(
                        worker_pool,
                        Providers(push=fcm),
                        SystemClock(),
                        Metrics(),
                        poll_s=0.2,
                        batch=args.batch,
                        send_timeout_s=10,
                        lease_s=30,
                        max_in_flight=args.in_flight,
                        pipeline=args.pipeline,
                    )
                    for _ in range(args.workers)
                ]
                stop = asyncio.Event()
                tasks = [asyncio.create_task(w.run(stop)) for w in workers]
                try:
                    await asyncio.sleep(0.3)
                    rig = Rig(conn, pool, session, fake_url, workers, agency_id, volunteers)
                    ratios: list[tuple[float, float]] = []
                    for round_ in range(1, args.rounds + 1):
                        print(f"round {round_} of {args.rounds}:")
                        # Each measurement between two of its floor's, so the machine's
                        # speed drifting over the run moves both sides of a ratio alike.
                        bare_before = await http_rate(session, fcm.fcm_url, 3000, fake.pid)
                        if args.profile and round_ == 1:
                            import cProfile
                            import pstats

                            profile = cProfile.Profile()
                            profile.enable()
                        rate = await throughput(
                            rig, fake.pid, statements, args.statements, tag=f"r{round_}"
                        )
                        if args.profile and round_ == 1:
                            profile.disable()
                            pstats.Stats(profile).sort_stats("tottime").print_stats(
                                args.profile_filter, 40
                            )
                        bare_after = await http_rate(session, fcm.fcm_url, 3000, fake.pid)
                        floor_before = await http_floor(session, fcm.fcm_url, 600)
                        p99 = await latency(rig, tag=f"r{round_}")
                        floor_after = await http_floor(session, fcm.fcm_url, 600)
                        ratios.append(
                            report(
                                (bare_before + bare_after) / 2,
                                (floor_before + floor_after) / 2,
                                rate,
                                p99,
                            )
                        )
                    if len(ratios) > 1:
                        print(
                            f"median of {len(ratios)} rounds: burst"
                            f" {statistics.median(r[0] for r in ratios):.2f},"
                            f" throughput {statistics.median(r[1] for r in ratios):.2f}"
                        )
                finally:
                    stop.set()
                    for w in workers:
                        w.wakeup.set()
                    await asyncio.gather(*tasks)
                    await fcm.aclose()
                    await conn.close()
    finally:
        fake.terminate()
        fake.join(5)


@dataclass(frozen=True, slots=True)
class Rig:
    """What both measurements drive: the database, the workers and the fake FCM."""

    conn: asyncpg.Connection
    pool: asyncpg.Pool
    session: aiohttp.ClientSession
    fake_url: str
    workers: list[OutboxWorker]
    agency_id: UUID
    volunteers: list[int]


async def throughput(
    rig: Rig,
    fake_pid: int | None,
    statements: StatementCount,
    show_statements: bool = False,
    *,
    tag: str = "",
) -> float:
    n = len(rig.volunteers)
    per = 100
    now = datetime.now(UTC)
    async with rig.conn.transaction():
        for start in range(0, n, per):
            incident_id = await bare_incident(
                rig.conn, rig.agency_id, f"tp-{tag}-{start}", source="bench"
            )
            await alert_store.insert_with_outbox(
                rig.conn,
                agency_id=rig.agency_id,
                incident_id=incident_id,
                alerts=[
                    NewAlert(uuid4(), v, 50.0, "cpr", "auto")
                    for v in rig.volunteers[start : start + per]
                ],
                expires_at=now + timedelta(minutes=10),
                now=now,
            )
    committed = time.time()
    pg = cpu_seconds(await postgres_pids(rig.pool))
    me, fake = time.process_time(), cpu_seconds([fake_pid or 0])
    statements.reset()
    for w in rig.workers:
        w.wakeup.set()
    await wait_sent(rig.pool)
    done = time.time()
    worker_us = (time.process_time() - me) / n * 1e6
    worker_statements = statements.n
    pg_us = cpu_used(pg, cpu_seconds(await postgres_pids(rig.pool))) / n * 1e6
    fake_us = cpu_used(fake, cpu_seconds([fake_pid or 0])) / n * 1e6
    arrivals = await journal(rig.session, rig.fake_url)
    last = max(arrivals.values())
    print(f"throughput: {n} alerts, {len(arrivals)} requests at the fake")
    print(
        f"  commit → last request at the fake: {last - committed:.2f} s = "
        f"{n / (last - committed):,.0f} messages/s"
    )
    print(
        f"  commit → every outbox row recorded: {done - committed:.2f} s = "
        f"{n / (done - committed):,.0f} alerts/s"
    )
    print(
        f"  CPU per alert: worker process {worker_us:.0f} µs, PostgreSQL {pg_us:.0f} µs, "
        f"fake {fake_us:.0f} µs (2 cores: {2e6 / (worker_us + pg_us + fake_us):,.0f} alerts/s "
        "if nothing else ran)"
    )
    print(
        f"  worker statements (round trips, BEGIN and COMMIT included, polls too): "
        f"{worker_statements} = {worker_statements / n * 100:.1f} per 100 alerts"
    )
    if show_statements:
        print("  worker statements by kind: count, ms each (median, the worker's clock)")
        for kind, took in sorted(statements.by_kind.items(), key=lambda kv: -sum(kv[1])):
            print(f"    {len(took):5d} {statistics.median(took) * 1000:6.2f}  {kind}")
    return n / (last - committed)


async def latency(rig: Rig, *, tag: str = "") -> float:
    await rig.conn.execute("DELETE FROM alerts")
    groups = [rig.volunteers[i * 30 : (i + 1) * 30] for i in range(20)]

    async def one(index: int, group: list[int]) -> tuple[float, list[int]]:
        result = await queue(rig.pool, rig.agency_id, group, f"lat-{tag}-{index}")
        for w in rig.workers:
            w.wakeup.set()  # what the intake handler does after its commit
        return result

    commits = await asyncio.gather(*(one(i, g) for i, g in enumerate(groups)))
    await wait_sent(rig.pool)
    arrivals = await journal(rig.session, rig.fake_url)
    delays: list[float] = []
    firsts: list[float] = []
    for committed, group in commits:
        got = [arrivals[f"bench-token-{v}"] - committed for v in group]
        delays.extend(got)
        firsts.append(min(got))
    ms = [d * 1000 for d in delays]
    first = min(c for c, _ in commits)
    spread = max(c for c, _ in commits) - first
    print("latency: 20 incidents × 30 alerts committed at once; commit → request at the fake")
    print(f"  the 20 commits spread over {spread * 1000:.0f} ms")
    print(
        f"  p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms (n={len(ms)})"
    )
    print(f"  each incident's first alert: max {max(firsts) * 1000:.1f} ms")
    return percentile(ms, 0.99)


async def _ready_made(session: aiohttp.ClientSession, url: str, n: int) -> float:
    """Seconds for ``n`` ready-made requests, aiohttp to the fake, 100 at a time."""
    body = json.dumps({"message": {"token": "floor", "data": {"alert_id": "x" * 36}}})
    headers = {"Authorization": "Bearer not-issued", "Content-Type": "application/json"}
    gate = asyncio.Semaphore(100)

    async def one() -> None:
        async with gate, session.post(url, data=body, headers=headers) as resp:
            await resp.read()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - started


async def http_rate(
    session: aiohttp.ClientSession, url: str, n: int, fake_pid: int | None = None
) -> float:
    """The bare HTTP rate (requests/s): no database, no SDK, the ceiling for throughput.

    Also prints the CPU per request on each side, to set beside the throughput run's: the
    client's is the part of the worker's that is HTTP alone.
    """
    await _ready_made(session, url, 600)  # warm the connections
    me, fake = time.process_time(), cpu_seconds([fake_pid or 0])
    took = await _ready_made(session, url, n)
    client_us = (time.process_time() - me) / n * 1e6
    fake_us = cpu_used(fake, cpu_seconds([fake_pid or 0])) / n * 1e6
    print(
        f"HTTP alone: {n} ready-made requests to the fake: {n / took:,.0f} requests/s"
        f" (CPU per request: client {client_us:.0f} µs, fake {fake_us:.0f} µs)"
    )
    return n / took


async def http_floor(session: aiohttp.ClientSession, url: str, n: int) -> float:
    """Milliseconds for the burst's ``n`` requests over HTTP alone: the burst's floor.

    The median of five tries: one try of ~100 ms moved 2.4x between consecutive runs on a
    quiet machine (47 and 113 ms), which decided the ratio more than the service did.
    """
    tries = [await _ready_made(session, url, n) * 1000 for _ in range(5)]
    took = statistics.median(tries)
    shown = ", ".join(f"{t:.0f}" for t in tries)
    print(f"HTTP alone: {n} ready-made requests to the fake in {took:.0f} ms (median of {shown})")
    return took


def report(bare_rate: float, floor_ms: float, rate: float, p99_ms: float) -> tuple[float, float]:
    """Prints and returns (burst p99 ÷ its floor, throughput ÷ the bare HTTP rate); each
    floor is the mean of the one measured just before and just after."""
    burst, sustained = p99_ms / floor_ms, rate / bare_rate
    print("ratios (same round, floors before and after averaged):")
    print(
        f"  burst p99 / HTTP alone (600 requests): {burst:.2f}"
        f"  (target <= 1.3: {'met' if burst <= 1.3 else 'NOT met'})"
    )
    print(
        f"  throughput / bare HTTP rate: {sustained:.2f}"
        f"  (target >= 0.5: {'met' if sustained >= 0.5 else 'NOT met'})"
    )
    return burst, sustained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    defaults = Settings()
    parser.add_argument(
        "--batch", type=int, default=defaults.notifier_batch, help="outbox rows leased per cycle"
    )
    parser.add_argument(
        "--pipeline", type=int, default=defaults.notifier_pipeline, help="batches in flight"
    )
    parser.add_argument("--workers", type=int, default=1, help="OutboxWorker loops")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=defaults.provider_max_in_flight,
        help="provider requests in flight",
    )
    parser.add_argument(
        "--transport",
        choices=["sdk", "aiohttp"],
        default="aiohttp",
        help="FcmNotifier transport (DISPATCH_FCM_TRANSPORT)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of both measurements, each between two of its floor's",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the first throughput run")
    parser.add_argument(
        "--statements", action="store_true", help="the throughput run's statements by kind"
    )
    parser.add_argument(
        "--profile-filter", default="", help="with --profile: only functions whose path matches"
    )
    args = parser.parse_args()
    if args.alerts < 600:
        parser.error("--alerts must be at least 600 (the latency run uses 600 volunteers)")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
