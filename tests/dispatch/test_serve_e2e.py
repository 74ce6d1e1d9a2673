"""End to end through the real ``dispatch serve`` process: intake, alerts, answers, timeline."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest

from tests.dispatch.helpers import CENTRE, cli_agency, incident, offset, wait_until
from tests.dispatch.serve_process import ServeProcess, run_cli

pytestmark = pytest.mark.slow


async def _json(resp: aiohttp.ClientResponse) -> Any:
    return json.loads(await resp.text())


async def _timeline(
    session: aiohttp.ClientSession, base: str, incident_id: str, key: str
) -> list[dict[str, Any]]:
    async with session.get(
        f"{base}/v1/incidents/{incident_id}/timeline",
        headers={"Authorization": f"Bearer {key}"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        events: list[dict[str, Any]] = (await _json(resp))["events"]
        return events


async def _wait_for(
    session: aiohttp.ClientSession, base: str, incident_id: str, key: str, event: str, n: int
) -> list[dict[str, Any]]:

    async def seen() -> list[dict[str, Any]]:
        events = await _timeline(session, base, incident_id, key)
        return events if sum(e["event"] == event for e in events) >= n else []

    return await wait_until(seen, timeout_s=15, every_s=0.05, what=f"{n} {event} events")


def _sent_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_incident_to_accept_through_the_real_process(
    database_url: str, tmp_path: Path
) -> None:
    """Alerts reach exactly the fresh volunteers inside the radius; accept moves the state."""
    env = {"DATABASE_URL": database_url}
    agency_id, key = await cli_agency(env, "E2E agency")
    supervisor = await run_cli(env, "supervisor", "create", "--agency", agency_id, "--name", "Sup")
    sent_file = tmp_path / "sent.jsonl"
    server = ServeProcess({**env, "DISPATCH_LOG_PROVIDER_FILE": str(sent_file)}, tmp_path / "log")
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as session:
            tokens: dict[int, str] = {}

            async def volunteer(north: float, east: float, **fix: Any) -> int:
                async with session.post(
                    f"{server.base}/v1/agencies/{agency_id}/volunteers",
                    json={"display_name": "V"},
                    headers={"Authorization": f"Bearer {supervisor['token']}"},
                ) as resp:
                    assert resp.status == 201, await resp.text()
                    body = await _json(resp)
                lat, lon = offset(*CENTRE, north, east)
                async with session.put(
                    f"{server.base}/v1/me/location",
                    json={"lat": lat, "lon": lon, **fix},
                    headers={"Authorization": f"Bearer {body['token']}"},
                ) as resp:
                    assert resp.status == 204, await resp.text()
                tokens[body["volunteer_id"]] = body["token"]
                return int(body["volunteer_id"])

            inside = {await volunteer(n, e) for n, e in [(0, 30), (200, 0), (-300, 300), (0, -480)]}
            outside = {await volunteer(600, 0), await volunteer(0, 2000)}
            old = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
            stale = await volunteer(20, 20, at=old)

            async with session.post(
                f"{server.base}/v1/cad/{agency_id}/incidents",
                json=incident("e2e-1"),
                headers={"Authorization": f"Bearer {key}"},
            ) as resp:
                assert resp.status == 202, await resp.text()
                created = await _json(resp)
            assert created["status"] == "created"
            incident_id = created["incident_id"]

            events = await _wait_for(session, server.base, incident_id, key, "alert_sent", 4)
            queued = {
                e["volunteer_id"]: e["alert_id"] for e in events if e["event"] == "alert_queued"
            }
            assert set(queued) == inside
            assert not (set(queued) & (outside | {stale}))
            assert {line["volunteer_id"] for line in _sent_lines(sent_file)} == inside

            chosen = sorted(inside)[0]
            alert_url = f"{server.base}/v1/alerts/{queued[chosen]}"
            auth = {"Authorization": f"Bearer {tokens[chosen]}"}
            async with session.post(f"{alert_url}/accept", headers=auth) as resp:
                assert resp.status == 200, await resp.text()
                assert (await _json(resp))["state"] == "accepted"
            async with session.post(f"{alert_url}/decline", headers=auth) as resp:
                assert resp.status == 409
                assert resp.content_type == "application/problem+json"
                assert (await _json(resp))["state"] == "accepted"
            other = sorted(inside)[1]
            async with session.post(
                f"{alert_url}/accept", headers={"Authorization": f"Bearer {tokens[other]}"}
            ) as resp:
                assert resp.status == 404, "another volunteer's alert must not be answerable"

            events = await _wait_for(session, server.base, incident_id, key, "alert_accepted", 1)
            names = [e["event"] for e in events]
            assert names[:3] == ["incident_received", "alerting_started", "matched"]
            assert names.count("alert_queued") == 4
            assert names.count("alert_sent") == 4
            assert names[-2:] == ["alert_accepted", "incident_state"]
            assert events[-1]["details"]["state"] == "responders_en_route"
            assert max(i for i, n in enumerate(names) if n == "alert_queued") < min(
                i for i, n in enumerate(names) if n == "alert_sent"
            )
            stamps = [(e["at"], e["seq"]) for e in events]
            assert stamps == sorted(stamps)
    finally:
        code = await server.terminate()
    assert code == 0, server.output()[-3000:]
    assert "worker_drain_timeout" not in server.output()


async def test_crash_after_commit_sends_every_alert_exactly_once(
    database_url: str, tmp_path: Path
) -> None:
    """SIGKILL after the incident commits but before any send: after restart, each alert once."""
    env = {"DATABASE_URL": database_url}
    agency_id, key = await cli_agency(env, "Crash agency")
    sent_file = tmp_path / "sent.jsonl"
    conn = await asyncpg.connect(database_url)
    try:
        volunteer_ids = []
        for north in (10, 100, 200):
            vid = await conn.fetchval(
                "INSERT INTO volunteers (agency_id, display_name, token_hash, certified_until)"
                " VALUES ($1, 'V', gen_random_uuid()::text::bytea, now() + interval '1 year')"
                " RETURNING id",
                UUID(agency_id),
            )
            lat, lon = offset(*CENTRE, north, 0)
            await conn.execute(
                "INSERT INTO volunteer_positions (volunteer_id, agency_id, lat, lon, reported_at)"
                " VALUES ($1, $2, $3, $4, now())",
                vid,
                UUID(agency_id),
                lat,
                lon,
            )
            volunteer_ids.append(vid)

        # First life: the notifier is held back, so the kill lands between commit and send.
        first = ServeProcess(
            {
                **env,
                "DISPATCH_NOTIFIER_ENABLED": "false",
                "DISPATCH_LOG_PROVIDER_FILE": str(sent_file),
            },
            tmp_path / "log1",
        )
        try:
            await first.wait_ready()
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{first.base}/v1/cad/{agency_id}/incidents",
                    json=incident("crash-1"),
                    headers={"Authorization": f"Bearer {key}"},
                ) as resp,
            ):
                assert resp.status == 202
                assert (await _json(resp))["alerts_queued"] == 3
        finally:
            await first.kill()
        assert _sent_lines(sent_file) == []
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE done_at IS NULL") == 3

        # Second life: the worker finds the committed outbox rows and sends each once.
        second = ServeProcess(
            {**env, "DISPATCH_LOG_PROVIDER_FILE": str(sent_file)}, tmp_path / "log2"
        )
        try:
            await second.wait_ready()

            async def drained() -> bool:
                pending = await conn.fetchval("SELECT count(*) FROM outbox WHERE done_at IS NULL")
                return bool(pending == 0)

            await wait_until(drained, timeout_s=15, every_s=0.05, what="outbox drained")
        finally:
            assert await second.terminate() == 0
        # Third life: nothing is left to send, so nothing is sent again.
        third = ServeProcess(
            {**env, "DISPATCH_LOG_PROVIDER_FILE": str(sent_file)}, tmp_path / "log3"
        )
        try:
            await third.wait_ready()
            await asyncio.sleep(0.5)
        finally:
            assert await third.terminate() == 0

        alerts = {str(r["id"]) for r in await conn.fetch("SELECT id FROM alerts")}
        counts = Counter(line["alert_id"] for line in _sent_lines(sent_file))
        assert set(counts) == alerts
        assert set(counts.values()) == {1}
        states = {r["state"] for r in await conn.fetch("SELECT state FROM alerts")}
        assert states == {"sent"}
    finally:
        await conn.close()
