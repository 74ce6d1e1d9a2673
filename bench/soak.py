"""Soak: mixed load through the real ``dispatch serve`` for ten minutes; does its memory stay flat?

Volunteers report positions (~200/s), a CAD posts cardiac arrests (~2/s) and closes
each after 45-90 s, volunteers acknowledge, accept, decline, set out and arrive, and
supervisors read timelines, all over HTTP against one server process on a scratch
database. The server's resident set (RSS) is sampled every 30 s; the slope over the
second half of the run (the last 5 minutes of 10) is printed: flat within noise means
under 1 MiB/min. Printed, not asserted. Not a test: numbers only.

    python bench/soak.py [--minutes 10] [--sample-s 30] [--positions-per-s 200]
        [--incidents-per-s 2] [--volunteers 1000]
        [--database-url postgresql://127.0.0.1/postgres]

The bench learns which alerts exist from the database (as a phone learns from its push);
everything it does to the service goes through the HTTP API.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import calibration_line
from bench.common import bench_parser, scratch_database, scratch_file, served, service_env
from tests.dispatch.serve_process import ServeProcess, run_cli

# A city box (Amsterdam, ~50 km²): about 15 of 1,000 volunteers within 500 m of a call.
LAT0, LAT1, LON0, LON1 = 52.33, 52.40, 4.85, 4.95
MAX_IN_FLIGHT = 100


@dataclass
class Kind:
    """Counters of one kind of request."""

    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    dropped: int = 0
    """Not sent because MAX_IN_FLIGHT requests were already out (the server fell behind)."""

    def summary(self) -> str:
        lat = sorted(self.latencies_ms)
        if not lat:
            return f"  {self.name:<10} none"
        p50 = statistics.median(lat)
        p99 = lat[max(0, int(len(lat) * 0.99) - 1)]
        return (
            f"  {self.name:<10} {len(lat):>7} requests, p50 {p50:6.1f} ms, p99 {p99:7.1f} ms,"
            f" dropped {self.dropped}, statuses {dict(sorted(self.statuses.items()))}"
        )


class Load:
    def __init__(self, base: str, session: aiohttp.ClientSession, rng: random.Random) -> None:
        self.base = base
        self.session = session
        self.rng = rng
        self.kinds: dict[str, Kind] = {}
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def kind(self, name: str) -> Kind:
        return self.kinds.setdefault(name, Kind(name))

    async def request(
        self, name: str, method: str, path: str, token: str, body: Any = None
    ) -> tuple[int, Any]:
        """One request; status 0 when it was not sent (too many already out: open loop)."""
        kind = self.kind(name)
        if self.in_flight >= MAX_IN_FLIGHT:
            kind.dropped += 1
            return 0, None
        self.in_flight += 1
        started = time.perf_counter()
        try:
            async with self.session.request(
                method, self.base + path, json=body, headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                data = await resp.json(content_type=None) if resp.status < 300 else None
                kind.statuses[resp.status] += 1
                kind.latencies_ms.append((time.perf_counter() - started) * 1000)
                return resp.status, data
        finally:
            self.in_flight -= 1

    def fire(self, name: str, work: Callable[[], Awaitable[Any]]) -> None:
        """Start ``work`` (one request, or a volunteer's or an incident's life) now."""

        async def run() -> None:
            try:
                await work()
            except (aiohttp.ClientError, TimeoutError):
                self.kind(name).statuses[-1] += 1

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def point(self) -> tuple[float, float]:
        return self.rng.uniform(LAT0, LAT1), self.rng.uniform(LON0, LON1)


async def paced(rate: float, until: float, tick: Callable[[int], None]) -> None:
    """Call ``tick(n)`` ``rate`` times a second on a fixed schedule until ``until``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    while True:
        at = start + n / rate
        if at >= until:
            return
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tick(n)
        n += 1


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) points, in MiB per minute."""
    ts = [t for t, _ in points]
    ms = [m for _, m in points]
    mt, mm = statistics.mean(ts), statistics.mean(ms)
    num = sum((t - mt) * (m - mm) for t, m in points)
    den = sum((t - mt) ** 2 for t in ts)
    return 60 * num / den if den else 0.0


async def _setup(
    load: Load, dsn: str, agency_id: str, supervisor: str, volunteers: int
) -> dict[int, str]:
    """Register the volunteers through the API; their tokens by volunteer id."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "UPDATE agencies SET intake_rate_per_min = 100000 WHERE id = $1::uuid", agency_id
        )
    finally:
        await conn.close()
    tokens: dict[int, str] = {}
    sem = asyncio.Semaphore(8)

    async def one() -> None:
        async with sem:
            status, body = await load.request(
                "setup",
                "POST",
                f"/v1/agencies/{agency_id}/volunteers",
                supervisor,
                {"display_name": "Soak volunteer"},
            )
            assert status == 201, status
            tokens[int(body["volunteer_id"])] = body["token"]
            lat, lon = load.point()
            status, _ = await load.request(
                "setup", "PUT", "/v1/me/location", body["token"], {"lat": lat, "lon": lon}
            )
            assert status == 204, status

    await asyncio.gather(*(one() for _ in range(volunteers)))
    return tokens


class Answers:
    """Volunteers answering the alerts they were sent, as their phones would."""

    def __init__(self, load: Load, dsn: str, tokens: dict[int, str]) -> None:
        self.load = load
        self.dsn = dsn
        self.tokens = tokens
        self.seen: set[Any] = set()

    async def run(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        conn = await asyncpg.connect(self.dsn)
        since = datetime.now(UTC)
        try:
            while loop.time() < until:
                rows = await conn.fetch(
                    "SELECT id, volunteer_id, created_at FROM alerts WHERE created_at >= $1"
                    " ORDER BY created_at",
                    since,
                )
                for row in rows:
                    if row["id"] in self.seen:
                        continue
                    self.seen.add(row["id"])
                    since = max(since, row["created_at"])
                    token = self.tokens.get(row["volunteer_id"])
                    if token is not None:
                        self.load.fire("answers", lambda r=row, t=token: self._answer(r["id"], t))
                # Only alerts newer than the newest seen can still arrive.
                self.seen = {a for a in self.seen if a in {r["id"] for r in rows}}
                await asyncio.sleep(0.5)
        finally:
            await conn.close()

    async def _answer(self, alert_id: Any, token: str) -> None:
        rng = self.load.rng
        path = f"/v1/alerts/{alert_id}"
        await asyncio.sleep(rng.uniform(0.2, 2.0))
        if rng.random() < 0.8:
            await self.load.request("answers", "POST", path + "/ack", token)
        await asyncio.sleep(rng.uniform(1.0, 8.0))
        await self.load.request("answers", "GET", path, token)
        roll = rng.random()
        if roll < 0.35:
            status, _ = await self.load.request("answers", "POST", path + "/accept", token)
            if status == 200:
                await asyncio.sleep(rng.uniform(1.0, 5.0))
                await self.load.request("answers", "POST", path + "/en-route", token)
                if rng.random() < 0.5:
                    await asyncio.sleep(rng.uniform(5.0, 20.0))
                    await self.load.request("answers", "POST", path + "/arrived", token)
        elif roll < 0.7:
            await self.load.request("answers", "POST", path + "/decline", token)


async def run(args: argparse.Namespace) -> None:
    print(await calibration_line(args.database_url), flush=True)
    async with scratch_database(args.database_url, "dispatch_bench_soak") as dsn:
        sent_file = scratch_file(dsn, ".sent.jsonl")
        env = service_env(dsn, DISPATCH_LOG_PROVIDER_FILE=str(sent_file))
        try:
            agency = await run_cli(env, "agency", "create", "--name", "Soak")
            agency_id, key = agency["agency_id"], agency["integration_key"]
            supervisor = await run_cli(
                env, "supervisor", "create", "--agency", agency_id, "--name", "S"
            )
            async with served(env, timeout_s=120) as (server, _):
                pid = server.proc.pid
                rng = random.Random(7)
                connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
                async with aiohttp.ClientSession(connector=connector) as session:
                    load = Load(server.base, session, rng)
                    tokens = await _setup(
                        load, dsn, agency_id, supervisor["token"], args.volunteers
                    )
                    print(
                        f"soak: {args.volunteers} volunteers, positions {args.positions_per_s}/s,"
                        f" incidents {args.incidents_per_s}/s (closed after 45-90 s), answers,"
                        f" {args.minutes:g} min, RSS every {args.sample_s:g} s"
                        f" (server pid {pid}, RSS after setup {_rss_mib(pid):.1f} MiB)",
                        flush=True,
                    )
                    await _drive(args, load, dsn, agency_id, key, tokens, server)
        finally:
            sent_file.unlink(missing_ok=True)


async def _drive(
    args: argparse.Namespace,
    load: Load,
    dsn: str,
    agency_id: str,
    key: str,
    tokens: dict[int, str],
    server: ServeProcess,
) -> None:
    pid = server.proc.pid
    loop = asyncio.get_running_loop()
    started = loop.time()
    until = started + args.minutes * 60
    rng = load.rng
    every_token = list(tokens.values())

    def position(_: int) -> None:
        token = rng.choice(every_token)
        lat, lon = load.point()
        load.fire(
            "positions",
            lambda: load.request(
                "positions", "PUT", "/v1/me/location", token, {"lat": lat, "lon": lon}
            ),
        )

    def incident(n: int) -> None:
        load.fire("incidents", lambda: _incident_life(load, agency_id, key, n))

    samples: list[tuple[float, float]] = []

    async def sample() -> None:
        while True:
            t = loop.time() - started
            code = server.proc.poll()
            if code is not None:
                raise SystemExit(f"the server exited (code {code}) at t={t:.0f} s")
            rss = _rss_mib(pid)
            samples.append((t, rss))
            counts = ", ".join(
                f"{k.name} {len(k.latencies_ms)}" for k in load.kinds.values() if k.name != "setup"
            )
            print(f"  t={t:5.0f} s  RSS {rss:7.1f} MiB  ({counts})", flush=True)
            if t + args.sample_s > args.minutes * 60 + 1:
                return
            await asyncio.sleep(max(0.0, started + len(samples) * args.sample_s - loop.time()))

    answers = Answers(load, dsn, tokens)
    await asyncio.gather(
        paced(args.positions_per_s, until, position),
        paced(args.incidents_per_s, until, incident),
        answers.run(until),
        sample(),
    )
    # The load ends here: lives still waiting to close an incident or answer are cut short.
    for task in list(load.tasks):
        task.cancel()
    await asyncio.gather(*list(load.tasks), return_exceptions=True)
    print("requests:")
    for kind in load.kinds.values():
        if kind.name != "setup":
            print(kind.summary())
    half = samples[-1][0] / 2
    tail = [(t, m) for t, m in samples if t >= half]
    slope = _slope_per_min(tail)
    spread = max(m for _, m in tail) - min(m for _, m in tail)
    print(
        f"RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f} MiB over {samples[-1][0] / 60:.1f} min;"
        f" whole-run slope {_slope_per_min(samples):+.2f} MiB/min"
    )
    verdict = "flat" if abs(slope) < 1.0 else "NOT flat"
    print(
        f"RSS slope over the last {(samples[-1][0] - half) / 60:.1f} min: {slope:+.2f} MiB/min"
        f" ({len(tail)} samples, spread {spread:.1f} MiB) -> {verdict} (limit 1 MiB/min)"
    )


async def _incident_life(load: Load, agency_id: str, key: str, n: int) -> None:
    """Post a cardiac arrest, later close it, then read its timeline and metrics."""
    lat, lon = load.point()
    received = datetime.now(UTC).isoformat()
    doc: dict[str, Any] = {
        "incident_id": f"soak-{n}",
        "version": 1,
        "call_type": {"code": "09-E-01", "text": "Cardiac arrest"},
        "is_cardiac_arrest": True,
        "received_at": received,
        "location": {"lat": lat, "lon": lon},
        "place_type": "public",
        "address": f"Soak street {n}",
    }
    path = f"/v1/cad/{agency_id}/incidents"
    status, body = await load.request("incidents", "POST", path, key, doc)
    if status != 202:
        return
    await asyncio.sleep(load.rng.uniform(45, 90))
    closed = doc | {
        "version": 2,
        "status": "closed",
        "updated_at": datetime.now(UTC).isoformat(),
        "closed_at": datetime.now(UTC).isoformat(),
    }
    await load.request("incidents", "POST", path, key, closed)
    incident_id = body["incident_id"]
    await load.request("reads", "GET", f"/v1/incidents/{incident_id}/timeline", key)
    await load.request("reads", "GET", f"/v1/incidents/{incident_id}/metrics", key)


def main() -> None:
    parser = bench_parser(
        __doc__,
        minutes=10.0,
        sample_s=30.0,
        positions_per_s=200.0,
        incidents_per_s=2.0,
        volunteers=1000,
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
