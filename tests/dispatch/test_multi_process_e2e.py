"""Three real ``dispatch serve`` processes on one database act as one service.

First, positions are reported round-robin across them and incidents posted round-robin:
each incident must alert exactly the volunteers its positions call for (as one process
would), every alert is sent exactly once in total, the second wave (the deadline ticker of
whichever process claims it) is opened once, and a CAD feed is polled by one process at a
time. Then a rolling restart under a continuous burst of CAD posts (SIGTERM one process,
restart it, await /readyz, next): no client sees a 5xx, nothing is lost or sent twice.
Last, one process is SIGKILLed in the middle of a burst: nothing is lost.

One test, one set of processes: starting three processes is most of its time.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dispatch.db.pool import init_connection
from dispatch.store import feeds
from tests.dispatch.cad_burst import CadBurst, alerted_once_each, place_volunteers
from tests.dispatch.helpers import CENTRE, incident, offset
from tests.dispatch.serve_process import ServeProcess, run_cli
from tests.fakes.feed_server import CAD_MAPPING

pytestmark = pytest.mark.slow

# Six incident sites 6 km apart; around each, volunteers inside the first wave's 500 m,
# one only the second wave (1300 m) reaches, and one no wave reaches.
SITES = [offset(*CENTRE, 6000 * n, 0) for n in range(6)]
FIRST_WAVE = ((0, 100), (250, 0), (-300, 200))
SECOND_WAVE = ((0, 800),)
NEVER = ((0, 2500),)
POLICY = {
    "waves": [
        {"after_s": 0, "radius_m": 500, "live": 7},
        {"after_s": 3, "radius_m": 1300, "live": 15},
    ]
}


class OneAtATimeFeed:
    """A CAD feed that notes how many polls it ever served at once."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        self.hits = 0
        self.in_flight = 0
        self.most_at_once = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            # Long enough that a second process polling the same feed would overlap.
            await asyncio.sleep(0.3)
            return web.json_response({"data": {"incidents": [self.item]}})
        finally:
            self.in_flight -= 1


def _sent(paths: list[Path]) -> list[dict[str, Any]]:
    lines = []
    for path in paths:
        if path.exists():
            lines += [json.loads(line) for line in path.read_text().splitlines() if line]
    return lines


async def _ok(resp: aiohttp.ClientResponse, status: int) -> Any:
    text = await resp.text()
    assert resp.status == status, text
    return json.loads(text) if text else None


async def _alerts_of(conn: asyncpg.Connection, prefix: str) -> list[asyncpg.Record]:
    """Every alert of the incidents whose CAD id starts with ``prefix``."""
    return await conn.fetch(
        "SELECT a.id::text AS alert_id, i.source_incident_id, a.volunteer_id, a.wave"
        " FROM alerts a JOIN incidents i ON i.id = a.incident_id"
        " WHERE starts_with(i.source_incident_id, $1)",
        prefix,
    )


async def _indexed(session: aiohttp.ClientSession, server: ServeProcess) -> float:
    async with session.get(f"{server.base}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("dispatch_indexed_volunteers "):
                return float(line.split()[1])
    raise AssertionError("no dispatch_indexed_volunteers metric")


# Three start-ups and three restarts: the suite's 120 s is tight on a loaded machine.
@pytest.mark.timeout(240)
async def test_three_processes_alert_as_one_and_lose_nothing_in_a_rolling_restart_or_a_kill(
    database_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url}
    agency = await run_cli(env, "agency", "create", "--name", "Three-node agency")
    agency_id, key = agency["agency_id"], agency["integration_key"]
    supervisor = await run_cli(env, "supervisor", "create", "--agency", agency_id, "--name", "Sup")
    cluster = Cluster(UUID(agency_id), key, {"Authorization": f"Bearer {supervisor['token']}"})
    # A feed polled every second: whichever process claims it polls, never two at once.
    far = offset(*CENTRE, -50_000, 0)
    feed = OneAtATimeFeed(
        {
            "ID": "feed-1",
            "Type": "09E01",
            "TypeText": "CARDIAC ARREST",
            "Received": datetime.now(UTC).isoformat(timespec="seconds"),
            "Latitude": f"{far[0]:.7f}",
            "Longitude": f"{far[1]:.7f}",
            "Address": "Far away",
        }
    )
    feed_app = web.Application()
    feed_app.router.add_get("/active.json", feed.handle)
    feed_server = TestServer(feed_app, host="127.0.0.1")
    await feed_server.start_server()
    cluster.sent_files = [tmp_path / f"sent{n}.jsonl" for n in range(3)]
    conn = await asyncpg.connect(database_url)
    await init_connection(conn)
    cluster.servers = [
        ServeProcess(
            {
                **env,
                "DISPATCH_LOG_PROVIDER_FILE": str(cluster.sent_files[n]),
                "DISPATCH_TICKER_TICK_S": "0.2",
                "DISPATCH_FEED_TICK_S": "0.1",
                # A lease lapses 2 s after the process holding it died.
                "DISPATCH_NOTIFIER_SEND_TIMEOUT_S": "1",
                "DISPATCH_NOTIFIER_LEASE_S": "2",
            },
            tmp_path / f"log{n}",
        )
        for n in range(3)
    ]
    victim = cluster.servers[1]
    try:
        await feeds.create(
            conn,
            agency_id=cluster.agency_id,
            name="metro",
            url=str(feed_server.make_url("/active.json")),
            mapping=CAD_MAPPING,
            interval_s=1.0,
        )
        await asyncio.gather(*(s.wait_ready(60) for s in cluster.servers))
        async with aiohttp.ClientSession() as session:
            await _round_robin(cluster, session, conn)
            await _rolling_restart(cluster, session, conn)
            await _killed_mid_burst(cluster, session, conn, victim)
        assert feed.hits >= 3
        assert feed.most_at_once == 1, "a feed is polled by one process at a time"
        fed = await conn.fetch("SELECT source FROM incidents WHERE source_incident_id = 'feed-1'")
        assert [r["source"] for r in fed] == ["feed:metro"]
    finally:
        await conn.close()
        await feed_server.close()
        await victim.kill()
        survivors = [s for s in cluster.servers if s is not victim]
        codes = await asyncio.gather(*(s.terminate() for s in survivors))
    for server, code in zip(survivors, codes, strict=True):
        assert code == 0, server.output()[-3000:]
        assert "worker_crashed" not in server.output()


class Cluster:
    def __init__(self, agency_id: UUID, key: str, supervisor: dict[str, str]) -> None:
        self.agency_id = agency_id
        self.key = key
        self.supervisor = supervisor
        self.servers: list[ServeProcess] = []
        self.sent_files: list[Path] = []
        self._turn = 0

    def next(self) -> ServeProcess:
        self._turn += 1
        return self.servers[self._turn % len(self.servers)]


async def _round_robin(
    cluster: Cluster, session: aiohttp.ClientSession, conn: asyncpg.Connection
) -> None:
    agency_id, sup = cluster.agency_id, cluster.supervisor
    async with session.put(
        f"{cluster.next().base}/v1/agencies/{agency_id}/policy", json=POLICY, headers=sup
    ) as resp:
        await _ok(resp, 200)
    expected_first: list[set[int]] = []
    expected_second: list[set[int]] = []
    for site in SITES:
        first: set[int] = set()
        second: set[int] = set()
        for group, into in ((FIRST_WAVE, first), (SECOND_WAVE, second), (NEVER, None)):
            for north, east in group:
                async with session.post(
                    f"{cluster.next().base}/v1/agencies/{agency_id}/volunteers",
                    json={"display_name": "V"},
                    headers=sup,
                ) as resp:
                    created = await _ok(resp, 201)
                lat, lon = offset(*site, north, east)
                async with session.put(
                    f"{cluster.next().base}/v1/me/location",
                    json={"lat": lat, "lon": lon},
                    headers={"Authorization": f"Bearer {created['token']}"},
                ) as resp:
                    await _ok(resp, 204)
                if into is not None:
                    into.add(created["volunteer_id"])
        expected_first.append(first)
        expected_second.append(first | second)
    volunteers = len(SITES) * (len(FIRST_WAVE) + len(SECOND_WAVE) + len(NEVER))

    # Every process indexes every position, whichever process it was reported to.
    async with asyncio.timeout(10):
        while [await _indexed(session, s) for s in cluster.servers] != [volunteers] * 3:
            await asyncio.sleep(0.05)

    for n, (lat, lon) in enumerate(SITES):
        async with session.post(
            f"{cluster.next().base}/v1/cad/{agency_id}/incidents",
            json=incident(f"multi-{n}", location={"lat": lat, "lon": lon}),
            headers={"Authorization": f"Bearer {cluster.key}"},
        ) as resp:
            answer = await _ok(resp, 202)
            assert answer["alerts_queued"] == len(FIRST_WAVE)

    total = sum(len(s) for s in expected_second)
    async with asyncio.timeout(30):
        while len(_sent(cluster.sent_files)) < total:
            await asyncio.sleep(0.1)
    # Time for any duplicate send or escalation to show.
    await asyncio.sleep(1.5)

    rows = await _alerts_of(conn, "multi-")
    for n in range(len(SITES)):
        mine = [r for r in rows if r["source_incident_id"] == f"multi-{n}"]
        first_wave = min(r["wave"] for r in mine)
        assert {r["volunteer_id"] for r in mine if r["wave"] == first_wave} == expected_first[n]
        assert {r["volunteer_id"] for r in mine} == expected_second[n]
    per_alert = Counter(line["alert_id"] for line in _sent(cluster.sent_files))
    assert set(per_alert) == {r["alert_id"] for r in rows}
    assert set(per_alert.values()) == {1}, "every alert sent exactly once in total"
    assert len({r["alert_id"] for r in rows}) == len(rows) == total
    escalations = await conn.fetch(
        "SELECT incident_id, count(*) AS n FROM response_log"
        " WHERE event = 'wave_started' GROUP BY incident_id"
    )
    assert sorted(r["n"] for r in escalations) == [1] * len(SITES), "each wave opened once"


async def _rolling_restart(
    cluster: Cluster, session: aiohttp.ClientSession, conn: asyncpg.Connection
) -> None:
    """SIGTERM one process at a time while CAD posts keep coming, restart it, await
    /readyz, then the next.

    A terminated process stops listening (the balancing client goes to the next one),
    answers the requests it has taken, sends and records the alerts it has leased, and
    exits 0. So no CAD client sees a 5xx, every incident answered 2xx is stored with the
    alerts its answer counted, and each of those is sent exactly once in total.
    """
    sites = [offset(*CENTRE, 4000 * n, 40_000) for n in range(4)]
    await _volunteers_at(cluster, session, conn, sites)
    burst = CadBurst(
        session,
        lambda: [s.base for s in cluster.servers],
        str(cluster.agency_id),
        cluster.key,
        sites,
        prefix="roll",
    )
    async with burst.running(clients=3):
        await burst.more(6)
        for server in cluster.servers:
            code = await server.terminate()
            assert code == 0, server.output()[-3000:]
            assert "worker_drain_timeout" not in server.output(), "drained within the grace"
            server.restart()
            await server.wait_ready(60)
            await burst.answered_by(server.base)
        await burst.more(6)
    statuses = Counter(burst.statuses())
    assert all(200 <= status < 300 for status in statuses), f"CAD clients were told {statuses}"
    stored = await alerted_once_each(
        conn, burst, lambda: [x["alert_id"] for x in _sent(cluster.sent_files)], like="roll-%"
    )
    assert set(stored) == set(burst.accepted()), "stored: the incidents answered 2xx, no other"


async def _killed_mid_burst(
    cluster: Cluster,
    session: aiohttp.ClientSession,
    conn: asyncpg.Connection,
    victim: ServeProcess,
) -> None:
    """SIGKILL one process while incidents pour in and alerts go out.

    CAD posts the dead process cannot answer are sent again to another (intake is
    idempotent). Every incident is alerted; an alert reaches the log provider twice only
    through the documented window (sent, then killed before it was recorded), and then
    its timeline says so.
    """
    sites = [offset(*CENTRE, 4000 * n, 20_000) for n in range(12)]
    expected = await _volunteers_at(cluster, session, conn, sites)

    servers = cluster.servers
    for n, (lat, lon) in enumerate(sites):
        if n == 7:
            victim.proc.send_signal(signal.SIGKILL)
        doc = incident(f"kill-{n}", location={"lat": lat, "lon": lon})
        for attempt in range(3):
            server = servers[(n + attempt) % 3]
            try:
                async with session.post(
                    f"{server.base}/v1/cad/{cluster.agency_id}/incidents",
                    json=doc,
                    headers={"Authorization": f"Bearer {cluster.key}"},
                ) as resp:
                    await _ok(resp, 202)
            except aiohttp.ClientConnectionError:
                assert server is victim, "only the killed process may fail"
                continue
            break
        else:
            raise AssertionError(f"kill-{n} was never answered")
    async with asyncio.timeout(30):
        while await conn.fetchval("SELECT count(*) FROM outbox WHERE done_at IS NULL"):
            await asyncio.sleep(0.1)

    rows = await _alerts_of(conn, "kill-")
    for n in range(len(sites)):
        got = {r["volunteer_id"] for r in rows if r["source_incident_id"] == f"kill-{n}"}
        assert got == expected[n], f"kill-{n}"
    mine = {r["alert_id"] for r in rows}
    per_alert = Counter(
        line["alert_id"] for line in _sent(cluster.sent_files) if line["alert_id"] in mine
    )
    assert set(per_alert) == mine, "every alert sent"
    twice = {alert for alert, n in per_alert.items() if n > 1}
    resent = {
        str(r["alert_id"])
        for r in await conn.fetch(
            "SELECT alert_id FROM response_log WHERE event = 'alert_resent_after_crash'"
        )
    }
    assert twice <= resent, "a second send only after a lapsed lease, and on the record"
    assert max(per_alert.values()) <= 2


async def _volunteers_at(
    cluster: Cluster,
    session: aiohttp.ClientSession,
    conn: asyncpg.Connection,
    sites: list[tuple[float, float]],
) -> list[set[int]]:
    """Volunteers placed near ``sites`` (each site's set), once every process indexed them."""
    expected = await place_volunteers(conn, cluster.agency_id, sites)
    indexed = await conn.fetchval("SELECT count(*) FROM volunteer_positions")
    async with asyncio.timeout(10):
        while [await _indexed(session, s) for s in cluster.servers] != [indexed] * 3:
            await asyncio.sleep(0.05)
    return expected
