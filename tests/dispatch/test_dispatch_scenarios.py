"""Dispatch scenarios through the real server process, with the clock driven by the test."""

from __future__ import annotations

import asyncio
import json
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

POLICY = {
    "waves": [
        {"after_s": 0, "radius_m": 300, "live": 3},
        {"after_s": 60, "radius_m": 1000, "live": 5},
    ],
    "target_accepted": 3,
    "max_alerted": 10,
    "answer_timeout_s": 90,
}
DISTANCES = (50, 100, 150, 200, 400, 600, 800, 2000)


class Scenario:
    def __init__(self, database_url: str, tmp_path: Path) -> None:
        self.env = {
            "DATABASE_URL": database_url,
            "DISPATCH_CLOCK_OFFSET_FILE": str(tmp_path / "clock"),
            "DISPATCH_TICKER_TICK_S": "0.1",
            "DISPATCH_LOG_PROVIDER_FILE": str(tmp_path / "sent.jsonl"),
        }
        self.tmp = tmp_path
        self.clock_file = tmp_path / "clock"
        self.clock_file.write_text("0")
        self.offset_s = 0.0
        self.server: ServeProcess | None = None
        self.session = aiohttp.ClientSession()
        self.tokens: dict[int, str] = {}
        self.by_distance: dict[int, int] = {}
        self.lives = 0

    async def start(self) -> None:
        self.lives += 1
        self.server = ServeProcess(self.env, self.tmp / f"log{self.lives}")
        await self.server.wait_ready()

    @property
    def base(self) -> str:
        assert self.server is not None
        return self.server.base

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds
        self.clock_file.write_text(str(self.offset_s))

    async def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        async with self.session.request(
            method, self.base + path, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def setup(self) -> None:
        agency = await run_cli(self.env, "agency", "create", "--name", "Scenario")
        self.agency_id, self.key = agency["agency_id"], agency["integration_key"]
        sup = await run_cli(
            self.env, "supervisor", "create", "--agency", self.agency_id, "--name", "S"
        )
        self.sup = sup["token"]
        await self.start()
        status, _ = await self.call(
            "PUT", f"/v1/agencies/{self.agency_id}/policy", self.sup, POLICY
        )
        assert status == 200
        for distance in DISTANCES:
            status, body = await self.call(
                "POST", f"/v1/agencies/{self.agency_id}/volunteers", self.sup, {"display_name": "V"}
            )
            assert status == 201
            lat, lon = offset(*CENTRE, distance, 0)
            status, _ = await self.call(
                "PUT", "/v1/me/location", body["token"], {"lat": lat, "lon": lon}
            )
            assert status == 204
            self.tokens[body["volunteer_id"]] = body["token"]
            self.by_distance[distance] = body["volunteer_id"]

    async def post(self, doc: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.call("POST", f"/v1/cad/{self.agency_id}/incidents", self.key, doc)
        assert status == 202, body
        result: dict[str, Any] = body
        return result

    async def answer(self, alert_id: str, volunteer_id: int, verb: str) -> tuple[int, Any]:
        result: tuple[int, Any] = await self.call(
            "POST", f"/v1/alerts/{alert_id}/{verb}", self.tokens[volunteer_id]
        )
        return result

    async def close(self) -> None:
        if self.server is not None and self.server.proc.poll() is None:
            await self.server.terminate()
        await self.session.close()


@pytest.fixture
async def scenario(database_url: str, tmp_path: Path) -> Any:
    s = Scenario(database_url, tmp_path)
    try:
        await s.setup()
        yield s
    finally:
        await s.close()


async def _alerts(db: asyncpg.Connection) -> dict[int, tuple[str, str]]:
    rows = await db.fetch("SELECT volunteer_id, id, state FROM alerts")
    return {r["volunteer_id"]: (str(r["id"]), r["state"]) for r in rows}


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def test_replace_widen_target_and_cancel(scenario: Scenario, database_url: str) -> None:
    """A decliner is replaced by the next nearest; the wave widens on its deadline; the third
    accept stands the rest down (and tells them); the CAD's cancel releases the responders."""
    s = scenario
    d = s.by_distance
    db = await asyncpg.connect(database_url)
    try:
        first = await s.post(incident("sc-1", place_type="public"))
        assert first["alerts_queued"] == 3
        alerts = await _alerts(db)
        assert set(alerts) == {d[50], d[100], d[150]}

        status, _ = await s.answer(alerts[d[50]][0], d[50], "decline")
        assert status == 200
        alerts = await _alerts(db)
        assert set(alerts) == {d[50], d[100], d[150], d[200]}, "slot refilled by the next nearest"

        s.advance(61)
        wave = {d[50], d[100], d[150], d[200], d[400], d[600]}

        async def widened_and_sent() -> bool:
            now = await _alerts(db)
            return set(now) == wave and all(now[d[m]][1] == "sent" for m in (400, 600))

        await _until(widened_and_sent)
        alerts = await _alerts(db)
        for distance in (100, 150, 200):
            status, body = await s.answer(alerts[d[distance]][0], d[distance], "accept")
            assert status == 200, body
        alerts = await _alerts(db)
        assert alerts[d[400]][1] == "stood_down"
        assert alerts[d[600]][1] == "stood_down"
        status, body = await s.answer(alerts[d[400]][0], d[400], "accept")
        assert status == 409, "no accept past the target"
        assert body["state"] == "stood_down"
        assert d[800] not in alerts
        assert d[2000] not in alerts

        async def told() -> bool:
            lines = (s.tmp / "sent.jsonl").read_text().splitlines()
            notices = [json.loads(x) for x in lines if "Stand down" in x]
            return {n["volunteer_id"] for n in notices} == {d[400], d[600]}

        await _until(told)

        await s.post(incident("sc-1", place_type="public", version=2, status="cancelled"))

        async def released() -> bool:
            states = {v: st for v, (_, st) in (await _alerts(db)).items()}
            return states[d[100]] == states[d[150]] == states[d[200]] == "released"

        await _until(released, timeout_s=1.0)
        events = [
            r["event"]
            for r in await db.fetch(
                "SELECT event FROM response_log WHERE incident_id = $1 ORDER BY at, id",
                UUID(first["incident_id"]),
            )
        ]
        for expected in (
            "wave_started",
            "alert_declined",
            "alert_stood_down",
            "incident_cancelled",
        ):
            assert expected in events
        status, metrics = await s.call(
            "GET", f"/v1/incidents/{first['incident_id']}/metrics", s.key
        )
        assert status == 200
        assert metrics["state"] == "cancelled"
        assert metrics["seconds_to_first_accept"] is not None
    finally:
        await db.close()


async def test_silence_times_out_and_is_replaced(scenario: Scenario, database_url: str) -> None:
    """Volunteers who never answer time out after the answer window and are replaced."""
    s = scenario
    d = s.by_distance
    db = await asyncpg.connect(database_url)
    try:
        await s.post(incident("sc-2", place_type="public"))
        s.advance(91)

        async def replaced() -> bool:
            alerts = await _alerts(db)
            return (
                alerts.get(d[50], ("", ""))[1] == "timed_out"
                and alerts.get(d[100], ("", ""))[1] == "timed_out"
                and d[200] in alerts
            )

        await _until(replaced)
    finally:
        await db.close()


async def test_restart_mid_wave_resumes_without_duplicates(
    scenario: Scenario, database_url: str
) -> None:
    """Killed during the first wave, the service resumes the second on restart, from the
    deadline stored in the database, and alerts nobody twice."""
    s = scenario
    d = s.by_distance
    db = await asyncpg.connect(database_url)
    try:
        await s.post(incident("sc-3", place_type="public"))
        assert set(await _alerts(db)) == {d[50], d[100], d[150]}

        async def positions_persisted() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM volunteer_positions") == 8)

        # Positions are written in batches; a kill may lose the last 0.2 s of fixes, which
        # phones resend anyway. Not what this test is about.
        await _until(positions_persisted)
        assert s.server is not None
        await s.server.kill()
        s.advance(61)
        await s.start()  # positions are rebuilt from the table; the deadline is in the row

        async def second_wave() -> bool:
            return len(await _alerts(db)) == 5

        await _until(second_wave)
        counts = Counter(
            r["volunteer_id"] for r in await db.fetch("SELECT volunteer_id FROM alerts")
        )
        assert set(counts.values()) == {1}
        assert set(counts) == {d[50], d[100], d[150], d[200], d[400]}
    finally:
        await db.close()
