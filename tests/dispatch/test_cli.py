"""The admin command line, run as an operator would (a real process per verb)."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from tests.dispatch.serve_process import dispatch_cli, run_cli

pytestmark = pytest.mark.slow


async def test_admin_verbs_end_to_end(database_url: str, tmp_path: Path) -> None:
    """Agency, keys, policy, volunteer settings and AED import through the CLI; bad input
    exits 1 with the field named and changes nothing."""
    env = {"DATABASE_URL": database_url}
    agency = (
        await run_cli(
            env, "agency", "create", "--name", "CLI agency", "--radius-m", "800", "--limit", "5"
        )
    )["agency_id"]
    first = json.loads((await dispatch_cli(env, "agency", "policy", "--agency", agency)).stdout)
    assert (first["version"], first["waves"][0]) == (1, {"after_s": 0, "radius_m": 800, "live": 5})
    second = await run_cli(env, "agency", "key-add", "--agency", agency, "--label", "rotation")
    assert second["integration_key"].startswith("dak_")
    third = await dispatch_cli(env, "agency", "key-add", "--agency", agency)
    assert third.returncode == 1
    assert "revoke one" in third.stderr

    policy = await dispatch_cli(
        env, "agency", "policy", "--agency", agency, "--set", '{"target_accepted": 2}'
    )
    assert policy.returncode == 0, policy.stderr
    assert '"target_accepted": 2' in policy.stdout
    bad = await dispatch_cli(
        env, "agency", "policy", "--agency", agency, "--set", '{"target_accepted": 0}'
    )
    assert bad.returncode == 1
    assert "/target_accepted" in bad.stderr

    volunteer = await run_cli(
        env, "volunteer", "create", "--agency", agency, "--name", "Ann",
        "--settings", '{"tier": "professional"}',
    )  # fmt: skip
    changed = await dispatch_cli(
        env, "volunteer", "set", "--agency", agency, "--id", volunteer["volunteer_id"],
        "--settings", '{"quiet_from": "23:00", "quiet_until": "07:00"}',
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    shown = json.loads(changed.stdout)
    assert (shown["tier"], shown["quiet_from"], shown["quiet_until"]) == (
        "professional",
        "23:00",
        "07:00",
    )

    registry = tmp_path / "aeds.csv"
    registry.write_text("id,name,lat,lon\nA1,Hall,52.37,4.89\nA2,Shop,52.38,4.90\n")
    imported = await run_cli(env, "aed", "import", "--agency", agency, str(registry))
    assert imported["imported"] == "2"
    broken = tmp_path / "broken.csv"
    broken.write_text("id,name,lat,lon\nB1,Bad,95,4.89\n")
    refused = await dispatch_cli(env, "aed", "import", "--agency", agency, str(broken))
    assert refused.returncode == 1
    assert "/line/2/lat" in refused.stderr

    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM aeds") == 2
        assert await conn.fetchval("SELECT count(*) FROM alert_policies") == 2
    finally:
        await conn.close()
