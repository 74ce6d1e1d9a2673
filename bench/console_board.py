"""How soon a change reaches the console's live board, as a ratio to the change's own request.

Serves the real application in this process on a scratch database (delivery and ticker
on, as in service), signs ``--listeners`` console sessions in and opens their event
streams, then ``--runs`` times: posts a CAD incident near ``--volunteers`` volunteers and
times (a) the intake request itself and (b) until every stream has shown the incident with
its alerts; then accepts one alert and times until every stream shows the acceptance.

Prints the calibration line first, then p50 and p99 of each, and the board's p99 as a
multiple of the intake request's p99 (the issue asks for the board within a second of the
change; the board's poll interval is DISPATCH_BOARD_TICK_S, 0.25 s by default). Numbers
only, not a test.

    python bench/console_board.py [--database-url postgresql://127.0.0.1/postgres]
        [--runs 40] [--listeners 20] [--volunteers 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

# Ahead of this folder, whose dispatch.py would otherwise shadow the dispatch package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import calibration_line
from bench.common import bench_parser, p99_line, percentile, scratch_database, serve_locally
from dispatch.config import Settings
from dispatch.db.migrate import migrate
from dispatch.store import agencies as agency_store
from dispatch.web.app import create_app
from tests.dispatch.helpers import CENTRE, boards
from tests.dispatch.helpers import incident as new_incident


class Watcher:
    """One console's stream; remembers the newest board it was sent."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.latest: dict[str, Any] = {"incidents": []}
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for board in boards(self.resp):
            self.latest = board
            self.changed.set()

    async def until(self, incident: str, key: str, value: int) -> None:
        while True:
            for row in self.latest["incidents"]:
                if row["source_incident_id"] == incident and row["volunteers"][key] >= value:
                    return
            self.changed.clear()
            await self.changed.wait()


async def run(args: argparse.Namespace) -> None:
    print(await calibration_line(args.database_url))
    async with scratch_database(args.database_url, "dispatch_bench_board") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
            agency_id, key = await agency_store.create_agency(conn, name="Bench")
            _, supervisor = await agency_store.create_supervisor(
                conn, agency_id=agency_id, name="S"
            )
        finally:
            await conn.close()
        await _measure(dsn, str(agency_id), key, supervisor, args)


async def _measure(
    dsn: str, agency_id: str, key: str, supervisor: str, args: argparse.Namespace
) -> None:
    settings = Settings(database_url=dsn, log_level="warning", notifier_poll_s=0.05)
    app = create_app(settings)
    runner, base = await serve_locally(app)
    as_key = {"Authorization": f"Bearer {key}"}
    as_supervisor = {"Authorization": f"Bearer {supervisor}"}
    intake_ms: list[float] = []
    shown_ms: list[float] = []
    accepted_ms: list[float] = []
    watchers: list[Watcher] = []
    # Each stream is one long request: one connection each, beyond the default pool of 100.
    connector = aiohttp.TCPConnector(limit=args.listeners + 10)
    db = await asyncpg.connect(dsn)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            tokens: dict[int, str] = {}
            for n in range(args.volunteers):
                async with session.post(
                    f"{base}/v1/agencies/{agency_id}/volunteers",
                    json={"display_name": f"V{n}"},
                    headers=as_supervisor,
                ) as resp:
                    made = await resp.json()
                token = made["token"]
                lat = CENTRE[0] + (50 + 40 * n) / 111_320
                async with session.put(
                    f"{base}/v1/me/location",
                    json={"lat": lat, "lon": CENTRE[1]},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp:
                    assert resp.status == 204
                tokens[made["volunteer_id"]] = token
            await asyncio.sleep(1)  # positions flushed and indexed
            for _ in range(args.listeners):
                jar = aiohttp.CookieJar(unsafe=True)
                async with (
                    aiohttp.ClientSession(cookie_jar=jar) as signer,
                    signer.post(f"{base}/console/session", json={"token": supervisor}) as resp,
                ):
                    secret = resp.cookies["dispatch_console"].value
                stream = await session.get(
                    f"{base}/console/events", headers={"Cookie": f"dispatch_console={secret}"}
                )
                watchers.append(Watcher(stream))
            for run_no in range(args.runs):
                incident = f"bench-{run_no}"
                document = new_incident(incident)
                started = time.perf_counter()
                async with session.post(
                    f"{base}/v1/cad/{agency_id}/incidents", json=document, headers=as_key
                ) as resp:
                    answer = await resp.json()
                    assert resp.status == 202, answer
                intake_ms.append((time.perf_counter() - started) * 1000)
                wanted = answer["alerts_queued"]
                await asyncio.gather(*(w.until(incident, "alerted", wanted) for w in watchers))
                shown_ms.append((time.perf_counter() - started) * 1000)
                found = await db.fetchrow(
                    "SELECT a.id, a.volunteer_id FROM alerts a"
                    " JOIN incidents i ON i.id = a.incident_id"
                    " WHERE i.source_incident_id = $1 ORDER BY a.distance_m LIMIT 1",
                    incident,
                )
                assert found is not None
                started = time.perf_counter()
                async with session.post(
                    f"{base}/v1/alerts/{found['id']}/accept",
                    headers={"Authorization": f"Bearer {tokens[found['volunteer_id']]}"},
                ) as resp:
                    assert resp.status == 200, await resp.text()
                await asyncio.gather(*(w.until(incident, "accepted", 1) for w in watchers))
                accepted_ms.append((time.perf_counter() - started) * 1000)
                # Close it, so the next incident's volunteers are free again.
                document["status"] = "closed"
                document["version"] = 2
                async with session.post(
                    f"{base}/v1/cad/{agency_id}/incidents", json=document, headers=as_key
                ) as resp:
                    assert resp.status == 202
    finally:
        for w in watchers:
            w.task.cancel()
            w.resp.close()
        await db.close()
        await runner.cleanup()
    unit = percentile(intake_ms, 99)
    print(
        f"{args.runs} incidents, {args.listeners} console streams,"
        f" board tick {settings.board_tick_s} s:"
    )
    for label, values in (
        ("CAD intake request (the unit)", intake_ms),
        ("intake -> on every board, with alerts", shown_ms),
        ("accept -> on every board", accepted_ms),
    ):
        print(p99_line(label, values, unit, decimals=1))
    worst = max(max(shown_ms), max(accepted_ms))
    print(f"  slowest change to reach every board: {math.ceil(worst)} ms")


def main() -> None:
    asyncio.run(run(bench_parser(__doc__, runs=40, listeners=20, volunteers=5).parse_args()))


if __name__ == "__main__":
    main()
