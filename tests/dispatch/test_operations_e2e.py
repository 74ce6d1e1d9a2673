"""Operational drills through the real ``dispatch serve`` process: what a prober or an outage sees.

- Requests aiohttp itself refuses (over-long URL or header, a garbled request line) and the
  API's own 4xx answers each log one warning line, never a traceback, and no response
  names the server's software versions.
- A PostgreSQL outage: CAD intake answers 503 with ``Retry-After`` (never 500), /readyz
  says why, and once the server is back the same process takes documents again.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.dispatch.helpers import incident
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


async def _post(
    session: aiohttp.ClientSession, base: str, agency_id: str, key: str, source_id: str
) -> tuple[int, dict[str, str], Any]:
    async with session.post(
        f"{base}/v1/cad/{agency_id}/incidents",
        json=incident(source_id),
        headers={"Authorization": f"Bearer {key}"},
    ) as resp:
        body = json.loads(await resp.text())
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, body


# Its own PostgreSQL (stopped and restarted mid-test), not the fixtures' server.
@pytest.mark.storage
async def test_cad_intake_during_a_database_outage_answers_503_with_retry_after(
    scratch: ScratchPostgres, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": scratch.dsn, "DISPATCH_DB_ACQUIRE_TIMEOUT_S": "1"}
    agency = await run_cli(env, "agency", "create", "--name", "Outage drill")
    agency_id, key = agency["agency_id"], agency["integration_key"]
    server = ServeProcess(env, tmp_path / "serve.log")
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as session:
            status, _, body = await _post(session, server.base, agency_id, key, "before")
            assert status == 202, body

            await asyncio.to_thread(scratch.stop)
            for attempt in range(3):
                status, headers, body = await _post(session, server.base, agency_id, key, "during")
                assert status == 503, (attempt, body)
                assert headers["content-type"].startswith("application/problem+json")
                assert int(headers["retry-after"]) >= 1
                assert body["type"] == "/problems/unavailable"
                assert body["status"] == 503
            async with session.get(f"{server.base}/readyz") as resp:
                assert resp.status == 503
                checks = (await resp.json())["checks"]
                assert checks["database"].startswith("unreachable")

            await asyncio.to_thread(scratch.start)
            async with asyncio.timeout(30):
                while True:
                    status, _, body = await _post(session, server.base, agency_id, key, "during")
                    if status == 202:
                        break
                    assert status == 503, body
                    await asyncio.sleep(0.5)
            assert body["status"] == "created"
        # Every worker lived through the outage: ready again without a restart.
        await server.wait_ready(timeout_s=30)
    finally:
        assert await server.terminate() == 0
    output = server.output()
    assert "Traceback" not in output
    lines = _log_lines(server)
    assert any(x["event"] == "database_unavailable" for x in lines)
    assert not [x for x in lines if x["event"] == "unhandled_error"]
