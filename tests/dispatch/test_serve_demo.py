"""The README's first command on a machine without DATABASE_URL: embedded PostgreSQL + demo."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.dispatch.serve_process import ServeProcess

pytestmark = [pytest.mark.slow, pytest.mark.storage]


async def _curl(command: str) -> dict[str, object]:
    done = await asyncio.to_thread(
        subprocess.run, ["bash", "-c", command], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_demo_on_embedded_postgres_alerts_with_the_printed_curl(tmp_path: Path) -> None:
    """No DATABASE_URL: a private server starts in DISPATCH_DATA_DIR, ready within 30 s;
    the printed curl creates alerts visible in the timeline; a restart reuses the data."""
    env = {"DATABASE_URL": "", "DISPATCH_DATA_DIR": str(tmp_path / "var")}
    server = ServeProcess(env, tmp_path / "log", "--demo")
    try:
        seconds = await server.wait_ready(timeout_s=30)
        assert seconds < 30
        output = server.output()
        post = next(line for line in output.splitlines() if line.startswith("curl -sS -X POST"))
        timeline = next(line for line in output.splitlines() if "/timeline" in line)
        answer = await _curl(post)
        assert answer["status"] == "created"
        assert answer["alerts_queued"] == 7
        timeline = timeline.replace("INCIDENT_ID", str(answer["incident_id"]))
        async with asyncio.timeout(15):
            while True:
                events = (await _curl(timeline))["events"]
                assert isinstance(events, list)
                if sum(e["event"] == "alert_sent" for e in events) == 7:
                    break
                await asyncio.sleep(0.1)
        assert (await _curl(post))["status"] == "unchanged"
        assert re.search(r"dak_[A-Za-z0-9_\-]{20,}", output)
        assert "dak_" not in "".join(
            line for line in output.splitlines() if line.startswith("{")
        ), "the key must not reach the JSON logs"
    finally:
        assert await server.terminate() == 0
    pgdata = tmp_path / "var" / "pg"
    assert (pgdata / "PG_VERSION").exists()
    assert not (pgdata / "postmaster.pid").exists(), "embedded server left running"

    again = ServeProcess(env, tmp_path / "log2", "--demo")
    try:
        await again.wait_ready(timeout_s=30)
        assert "no PG_VERSION" not in again.output()
    finally:
        assert await again.terminate() == 0
