"""Operational drills through the real ``dispatch serve`` process: what a prober or an outage sees.

- Requests aiohttp itself refuses (over-long URL or header, a garbled request line) and the
  API's own 4xx answers each log one warning line, never a traceback, and no response
  names the server's software versions.
- A PostgreSQL restart in the middle of a burst of CAD posts: the posts during the outage
  get 503 with ``Retry-After`` (never 500, never a hang), /readyz says why; once the server
  is back the same process (never restarted) takes documents again, and every incident
  answered 202 is alerted, each alert sent exactly once.
"""

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

from tests.dispatch.cad_burst import CadBurst, alerted_once_each, place_volunteers
from tests.dispatch.helpers import CENTRE, incident
from tests.dispatch.scratch_pg import ScratchPostgres
from tests.dispatch.serve_process import ServeProcess, run_cli

pytestmark = pytest.mark.slow


async def _raw(port: int, request: bytes) -> tuple[int, dict[str, str]]:
    """Send bytes as they are; the answer's status and headers (lower-case names)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def _log_lines(server: ServeProcess) -> list[dict[str, Any]]:
    lines = []
    for line in server.output().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            lines.append({"event": line, "level": "unparsed"})
    return lines


def _assert_no_version(headers: dict[str, str]) -> None:
    server = headers.get("server", "")
    assert "aiohttp" not in server.lower()
    assert "python" not in server.lower()
    assert not any(ch.isdigit() for ch in server), server


async def test_client_errors_log_one_warning_line_and_the_server_header_has_no_version(
    database_url: str, tmp_path: Path
) -> None:
    server = ServeProcess({"DATABASE_URL": database_url}, tmp_path / "serve.log")
    try:
        await server.wait_ready()
        port = server.port
        bad = [
            b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n",
            b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTP/9.9.9\r\nHost: x\r\n\r\n",
        ] * 4
        for request in bad:
            status, headers = await _raw(port, request)
            assert 400 <= status < 500, request[:40]
            _assert_no_version(headers)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.base}/healthz") as resp:
                assert resp.status == 200
                _assert_no_version({k.lower(): v for k, v in resp.headers.items()})
            async with session.get(f"{server.base}/v1/no-such-route") as resp:
                assert resp.status == 404
                _assert_no_version({k.lower(): v for k, v in resp.headers.items()})
            async with session.post(
                f"{server.base}/v1/cad/{'0' * 8}-0000-0000-0000-{'0' * 12}/incidents",
                json=incident("probe"),
            ) as resp:
                assert resp.status == 401
    finally:
        assert await server.terminate() == 0

    output = server.output()
    assert "Traceback" not in output
    lines = _log_lines(server)
    assert not [x for x in lines if x.get("level") in ("error", "critical", "unparsed")]
    refused = [x for x in lines if x["event"] == "http_bad_request"]
    assert len(refused) == len(bad), "one line per refused request"
    assert {x["level"] for x in refused} == {"warning"}
    assert all(x["status"] == 400 for x in refused)
    client = [x for x in lines if x["event"] == "http_client_error"]
    assert sorted(x["status"] for x in client) == [401, 404]
    assert {x["level"] for x in client} == {"warning"}
    # The client's bytes stay out of the log.
    assert "a" * 100 not in output
    assert "b" * 100 not in output


@pytest.fixture
def scratch() -> Any:
    cluster = ScratchPostgres().init()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


# Its own PostgreSQL (stopped and restarted mid-test), not the fixtures' server.
@pytest.mark.storage
async def test_a_database_restart_mid_burst_answers_503_and_alerts_every_accepted_incident_once(
    scratch: ScratchPostgres, tmp_path: Path
) -> None:
    sent = tmp_path / "sent.jsonl"
    env = {
        "DATABASE_URL": scratch.dsn,
        "DISPATCH_DB_ACQUIRE_TIMEOUT_S": "1",
        "DISPATCH_LOG_PROVIDER_FILE": str(sent),
        # A lease lapsing soon after the outage: an alert sent but not recorded in it would
        # be sent again within the drill, and show.
        "DISPATCH_NOTIFIER_SEND_TIMEOUT_S": "1",
        "DISPATCH_NOTIFIER_LEASE_S": "2",
    }
    agency = await run_cli(env, "agency", "create", "--name", "Outage drill")
    agency_id, key = agency["agency_id"], agency["integration_key"]
    conn = await asyncpg.connect(scratch.dsn)
    try:
        await place_volunteers(conn, UUID(agency_id), [CENTRE])
    finally:
        await conn.close()
    server = ServeProcess(env, tmp_path / "serve.log")
    try:
        await server.wait_ready()
        process = server.proc
        async with aiohttp.ClientSession() as session:
            burst = CadBurst(session, lambda: [server.base], agency_id, key, [CENTRE], prefix="b")
            async with burst.running(clients=2):
                await burst.more(5)
                await asyncio.to_thread(scratch.stop)
                # Down for a few seconds while the posts go on.
                await asyncio.sleep(3)
                async with session.get(f"{server.base}/readyz") as resp:
                    assert resp.status == 503
                    checks = (await resp.json())["checks"]
                    assert checks["database"].startswith("unreachable")
                await asyncio.to_thread(scratch.start)
                await burst.more(10)
            assert server.proc is process, "the service never restarted"
            assert process.poll() is None, "the service never restarted"
        # Every worker lived through the outage: ready again without a restart.
        await server.wait_ready(timeout_s=30)
        conn = await asyncpg.connect(scratch.dsn)
        try:
            await alerted_once_each(conn, burst, lambda: _alert_ids(sent), like="b-%")
        finally:
            await conn.close()
    finally:
        assert await server.terminate() == 0
    statuses = Counter(burst.statuses())
    assert statuses[503] >= 3, f"posts during the outage: {statuses}"
    assert set(statuses) == {202, 503}, f"only 202 or 503, never a 500 or a hang: {statuses}"
    for answer in burst.answers:
        if answer.status == 503:
            assert answer.content_type.startswith("application/problem+json"), answer
            assert int(answer.retry_after or 0) >= 1, answer
            assert answer.body["type"] == "/problems/unavailable", answer
            assert answer.body["status"] == 503, answer
    lines = _log_lines(server)
    assert "Traceback" not in server.output()
    assert any(x["event"] == "database_unavailable" for x in lines)
    assert not [x for x in lines if x["event"] in ("unhandled_error", "worker_crashed")]
    assert [x["event"] for x in lines].count("http_listening") == 1, "started once"


def _alert_ids(sent: Path) -> list[str]:
    return [json.loads(line)["alert_id"] for line in sent.read_text().splitlines()]
