"""Three real ``dispatch serve`` processes on one database act as one service.

Positions are reported round-robin across them and incidents posted round-robin; each
incident must alert exactly the volunteers its positions call for (as one process would),
every alert is sent exactly once in total, and the second wave (the deadline ticker of
whichever process claims it) is sent once too.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest

from tests.dispatch.helpers import CENTRE, incident, offset
from tests.dispatch.serve_process import ServeProcess, run_cli

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


async def _indexed(session: aiohttp.ClientSession, server: ServeProcess) -> float:
    async with session.get(f"{server.base}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("dispatch_indexed_volunteers "):
                return float(line.split()[1])
    raise AssertionError("no dispatch_indexed_volunteers metric")


async def test_three_processes_alert_as_one(database_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url}
    agency = run_cli(env, "agency", "create", "--name", "Three-node agency")
    agency_id, key = agency["agency_id"], agency["integration_key"]
    supervisor = run_cli(env, "supervisor", "create", "--agency", agency_id, "--name", "Sup")
    sup = {"Authorization": f"Bearer {supervisor['token']}"}
    sent_files = [tmp_path / f"sent{n}.jsonl" for n in range(3)]
    servers = [
        ServeProcess(
            {
                **env,
                "DISPATCH_LOG_PROVIDER_FILE": str(sent_files[n]),
                "DISPATCH_TICKER_TICK_S": "0.2",
            },
            tmp_path / f"log{n}",
        )
        for n in range(3)
    ]
    conn = await asyncpg.connect(database_url)
    try:
        await asyncio.gather(*(s.wait_ready(60) for s in servers))
        async with aiohttp.ClientSession() as session:
            nodes = iter(range(10**6))

            def node() -> ServeProcess:
                return servers[next(nodes) % 3]

            async with session.put(
                f"{node().base}/v1/agencies/{agency_id}/policy", json=POLICY, headers=sup
            ) as resp:
                await _ok(resp, 200)

            expected_first: list[set[int]] = []
            expected_second: list[set[int]] = []
            for site in SITES:
                first, second = set(), set()
                for group, into in ((FIRST_WAVE, first), (SECOND_WAVE, second), (NEVER, None)):
                    for north, east in group:
                        async with session.post(
                            f"{node().base}/v1/agencies/{agency_id}/volunteers",
                            json={"display_name": "V"},
                            headers=sup,
                        ) as resp:
                            created = await _ok(resp, 201)
                        lat, lon = offset(*site, north, east)
                        async with session.put(
                            f"{node().base}/v1/me/location",
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
                while [await _indexed(session, s) for s in servers] != [volunteers] * 3:
                    await asyncio.sleep(0.05)

            posts = [
                session.post(
                    f"{node().base}/v1/cad/{agency_id}/incidents",
                    json=incident(f"multi-{n}", location={"lat": lat, "lon": lon}),
                    headers={"Authorization": f"Bearer {key}"},
                )
                for n, (lat, lon) in enumerate(SITES)
            ]
            incident_ids = []
            for post in posts:
                async with post as resp:
                    answer = await _ok(resp, 202)
                    assert answer["alerts_queued"] == len(FIRST_WAVE)
                    incident_ids.append(answer["incident_id"])

            total = sum(len(s) for s in expected_second)
            async with asyncio.timeout(30):
                while len(_sent(sent_files)) < total:
                    await asyncio.sleep(0.1)
            # Time for any duplicate send or escalation to show.
            await asyncio.sleep(1.5)

        rows = await conn.fetch(
            "SELECT a.id::text AS alert_id, i.source_incident_id, a.volunteer_id, a.wave"
            " FROM alerts a JOIN incidents i ON i.id = a.incident_id"
        )
        for n in range(len(SITES)):
            mine = [r for r in rows if r["source_incident_id"] == f"multi-{n}"]
            first_wave = min(r["wave"] for r in mine)
            assert {r["volunteer_id"] for r in mine if r["wave"] == first_wave} == expected_first[n]
            assert {r["volunteer_id"] for r in mine} == expected_second[n]
        sent = _sent(sent_files)
        per_alert = Counter(line["alert_id"] for line in sent)
        assert set(per_alert) == {r["alert_id"] for r in rows}
        assert set(per_alert.values()) == {1}, "every alert sent exactly once in total"
        assert len({r["alert_id"] for r in rows}) == len(rows) == total
        escalations = await conn.fetch(
            "SELECT incident_id, count(*) AS n FROM response_log"
            " WHERE event = 'wave_started' GROUP BY incident_id"
        )
        assert sorted(r["n"] for r in escalations) == [1] * len(SITES), "each wave opened once"
    finally:
        await conn.close()
        codes = await asyncio.gather(*(s.terminate() for s in servers))
    for server, code in zip(servers, codes, strict=True):
        assert code in (0, -signal.SIGTERM), server.output()[-3000:]
        assert "worker_crashed" not in server.output()


async def test_a_process_killed_mid_burst_loses_nothing(database_url: str, tmp_path: Path) -> None:
    """SIGKILL one of three processes while incidents pour in and alerts go out.

    CAD posts the dead process cannot answer are sent again to another (intake is
    idempotent). Every incident is alerted; an alert reaches the log provider twice only
    through the documented window (sent, then killed before it was recorded), and then
    its timeline says so.
    """
    env = {"DATABASE_URL": database_url}
    agency = run_cli(env, "agency", "create", "--name", "Kill agency")
    agency_id, key = agency["agency_id"], agency["integration_key"]
    sites = [offset(*CENTRE, 4000 * n, 0) for n in range(12)]
    expected: list[set[int]] = []
    conn = await asyncpg.connect(database_url)
    try:
        for lat, lon in sites:
            near = set()
            for north in (50, 150):
                vid = await conn.fetchval(
                    "INSERT INTO volunteers (agency_id, display_name, token_hash, certified_until)"
                    " VALUES ($1, 'V', gen_random_uuid()::text::bytea, now() + interval '1 year')"
                    " RETURNING id",
                    UUID(agency_id),
                )
                vlat, vlon = offset(lat, lon, north, 0)
                await conn.execute(
                    "INSERT INTO volunteer_positions (volunteer_id, agency_id, lat, lon,"
                    " reported_at) VALUES ($1, $2, $3, $4, now())",
                    vid,
                    UUID(agency_id),
                    vlat,
                    vlon,
                )
                near.add(vid)
            expected.append(near)
        sent_files = [tmp_path / f"sent{n}.jsonl" for n in range(3)]
        servers = [
            ServeProcess(
                {
                    **env,
                    "DISPATCH_LOG_PROVIDER_FILE": str(sent_files[n]),
                    # A lease lapses 2 s after the process holding it died.
                    "DISPATCH_NOTIFIER_SEND_TIMEOUT_S": "1",
                    "DISPATCH_NOTIFIER_LEASE_S": "2",
                },
                tmp_path / f"log{n}",
            )
            for n in range(3)
        ]
        victim = servers[1]
        try:
            await asyncio.gather(*(s.wait_ready(60) for s in servers))
            answered: dict[str, str] = {}
            async with aiohttp.ClientSession() as session:
                for n, (lat, lon) in enumerate(sites):
                    if n == 7:
                        victim.proc.send_signal(signal.SIGKILL)
                    doc = incident(f"kill-{n}", location={"lat": lat, "lon": lon})
                    for attempt in range(3):
                        server = servers[(n + attempt) % 3]
                        try:
                            async with session.post(
                                f"{server.base}/v1/cad/{agency_id}/incidents",
                                json=doc,
                                headers={"Authorization": f"Bearer {key}"},
                            ) as resp:
                                answer = await _ok(resp, 202)
                        except aiohttp.ClientConnectionError:
                            assert server is victim, "only the killed process may fail"
                            continue
                        answered[f"kill-{n}"] = answer["incident_id"]
                        break
            assert len(answered) == len(sites)
            async with asyncio.timeout(30):
                while await conn.fetchval("SELECT count(*) FROM outbox WHERE done_at IS NULL"):
                    await asyncio.sleep(0.1)
        finally:
            await victim.kill()
            codes = await asyncio.gather(*(s.terminate() for s in servers if s is not victim))
        assert codes == [0, 0]

        rows = await conn.fetch(
            "SELECT a.id::text AS alert_id, i.source_incident_id, a.volunteer_id"
            " FROM alerts a JOIN incidents i ON i.id = a.incident_id"
        )
        for n in range(len(sites)):
            got = {r["volunteer_id"] for r in rows if r["source_incident_id"] == f"kill-{n}"}
            assert got == expected[n], f"kill-{n}"
        per_alert = Counter(line["alert_id"] for line in _sent(sent_files))
        assert set(per_alert) == {r["alert_id"] for r in rows}, "every alert sent"
        twice = {alert for alert, n in per_alert.items() if n > 1}
        resent = {
            str(r["alert_id"])
            for r in await conn.fetch(
                "SELECT alert_id FROM response_log WHERE event = 'alert_resent_after_crash'"
            )
        }
        assert twice <= resent, "a second send only after a lapsed lease, and on the record"
        assert max(per_alert.values()) <= 2
    finally:
        await conn.close()
