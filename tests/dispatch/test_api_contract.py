"""Schemathesis against a started ``dispatch serve``: every operation, every check, three callers.

The served OpenAPI document is used as is, except that the agency id in paths is pinned
to the agency this test created (random ids only ever reach 404). Cross-field
rules that JSON Schema cannot state (a policy's waves growing, an AED id used twice, a fix
from the future) answer 422 to data the schema allows; those operations, and only those
checks, accept 422 — each listed below with its reason.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.dispatch.helpers import cli_agency
from tests.dispatch.serve_process import ServeProcess, run_cli

pytestmark = pytest.mark.slow

# (path, method, why a schema-valid body may still be refused with 400 or 422)
_CROSS_FIELD = [
    ("/v1/agencies/{agency_id}/policy", "PUT", "waves must start later, never narrow or shrink"),
    (
        "/v1/agencies/{agency_id}/delivery-settings",
        "PUT",
        "the chain's last step must be due before the policy's not_coming_after_s",
    ),
    ("/v1/agencies/{agency_id}/aeds", "POST", "ids unique, 0,0 refused, opening hours ordered"),
    ("/v1/me/location", "PUT", "a fix may not be from the future"),
    ("/v1/me/channels", "PUT", "the preferred channel cannot also be refused"),
    ("/v1/agencies/{agency_id}/settings", "PATCH", "cap_signing_cert must parse as a PEM"),
    # The two standards' own schemas are not restated in ours; their parsers are the check.
    ("/v1/cad/{agency_id}/eido", "POST", "a NENA EIDO 1.0 document, checked by its parser"),
    ("/v1/cad/{agency_id}/cap", "POST", "an OASIS CAP 1.2 XML alert, checked by its parser"),
    ("/v1/me", "PATCH", "the preferred channel cannot also be refused"),
    ("/v1/me/credentials", "POST", "the expiry date must be later than today"),
    ("/v1/me/credentials/{credential_id}/scan", "PUT", "the bytes must be the declared type"),
    ("/v1/me/devices", "PUT", "a Web Push p256dh must be a point on P-256, the endpoint https"),
    # A date must exist (no 30 February), `to` must follow `from`, and a cursor must be one
    # the API gave out: no pattern can say so.
    ("/v1/agencies/{agency_id}/incidents", "GET", "real dates, to after from, a cursor we issued"),
    ("/v1/agencies/{agency_id}/volunteers", "GET", "a real date, a cursor we issued"),
    ("/v1/agencies/{agency_id}/reports/activations", "GET", "real dates, to after from"),
    ("/v1/agencies/{agency_id}/reports/coverage", "GET", "a cursor we issued"),
    ("/v1/agencies/{agency_id}/reports/utstein.csv", "GET", "real dates, a cursor we issued"),
]
# Erasing the volunteer would leave the rest of the volunteer run to answer 401; erasure
# has its own round trip through the real server (test_erasure_e2e).
_NOT_AS_VOLUNTEER = "DELETE /v1/me"
# Per operation and principal. At 25, with the principals one after another, this one test
# took 256 s of CI's 15-minute budget on a slow machine; now 142 s.
_EXAMPLES_PER_OPERATION = 15
_SEED = 20261130


def _config(path: Path) -> None:
    lines = [
        "[generation]",
        f"max-examples = {_EXAMPLES_PER_OPERATION}",
        # No string may hold U+0000 (the document says so: PostgreSQL text cannot).
        "allow-x00 = false",
        "",
        "[phases.stateful]",
        "enabled = false",
    ]
    for route, method, why in _CROSS_FIELD:
        lines += [
            "",
            f"# {why}",
            "[[operations]]",
            # One filter: include-path and include-method in one block match either.
            f'include-name = "{method} {route}"',
            "checks.positive_data_acceptance.expected-statuses = "
            '["2xx", "400", "401", "403", "404", "409", "422", "429"]',
        ]
    path.write_text("\n".join(lines) + "\n")


def _pinned(document: dict[str, Any], **ids: str | int) -> dict[str, Any]:
    """The document with the named path parameters limited to the ids this test created."""
    pinned = copy.deepcopy(document)
    for item in pinned["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] in ids:
                    parameter["schema"] = {**parameter["schema"], "enum": [ids[parameter["name"]]]}
    return pinned


async def _schemathesis(
    spec: Path, config: Path, base: str, token: str, *extra: str, run_in: Path
) -> tuple[int, str]:
    await asyncio.to_thread(run_in.mkdir, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        str(spec),
        *extra,
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--seed",
        str(_SEED),
        "--no-color",
        "--request-timeout",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=run_in,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.mark.timeout(600)
async def test_schemathesis_finds_nothing_as_supervisor_volunteer_and_agency(
    database_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url}
    agency_id, key = await cli_agency(env, "Contract agency")
    supervisor = await run_cli(env, "supervisor", "create", "--agency", agency_id, "--name", "Sup")
    volunteer = await run_cli(env, "volunteer", "create", "--agency", agency_id, "--name", "Vol")
    assert volunteer["token"].startswith("dvt_")
    # Thousands of generated documents: the default 600/min would leave most of them at 429.
    limits = json.dumps({"intake_rate_per_min": 100_000})
    await run_cli(env, "agency", "configure", "--agency", agency_id, "--settings", limits)
    # Thousands of probes without or with wrong credentials come from this one client: the
    # failed-auth throttle (tested in test_isolation) would answer them 429, not the 401
    # the contract says.
    server = ServeProcess(
        {
            **env,
            "DISPATCH_AUTH_CLIENT_FAILURES": "1000000",
            "DISPATCH_AUTH_AGENCY_FAILURES": "1000000",
            # The live stream ends after a second, so its checks see a whole response.
            "DISPATCH_LIVE_STREAM_MAX_S": "1",
        },
        tmp_path / "serve.log",
    )
    try:
        await server.wait_ready()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{server.base}/v1/openapi.json") as resp,
        ):
            document = await resp.json()
        spec = tmp_path / "openapi.json"
        # Only the agency is pinned: other volunteer ids are created during the run, so a
        # pinned one would make "another valid id" look like schema-violating data.
        spec.write_text(json.dumps(_pinned(document, agency_id=agency_id)))
        config = tmp_path / "schemathesis.toml"
        _config(config)
        runs = {
            "supervisor": (supervisor["token"], ()),
            "volunteer": (volunteer["token"], ("--exclude-name", _NOT_AS_VOLUNTEER)),
            "agency key": (key, ()),
        }
        # The three principals probe at once, each from a folder of its own (schemathesis
        # keeps a cache where it runs): one after another they were a quarter of the suite.
        results = await asyncio.gather(
            *(
                _schemathesis(spec, config, server.base, token, *extra, run_in=tmp_path / who)
                for who, (token, extra) in runs.items()
            )
        )
        failures = []
        for who, (code, output) in zip(runs, results, strict=True):
            (tmp_path / f"schemathesis-{who.replace(' ', '-')}.txt").write_text(output)
            if code != 0:
                failures.append(f"--- as {who} (exit {code}) ---\n{output[-12000:]}")
        assert not failures, "\n".join(failures)
        # aiohttp reports a request it cannot parse (schemathesis probes a NUL byte in a
        # header) with a traceback of its own parser: the client's fault, not ours.
        ours = [
            line
            for line in server.output().splitlines()
            if "Traceback" in line and "aiohttp.http_exceptions.BadHttpMessage" not in line
        ]
        assert not ours, "\n".join(ours)[-4000:]
    finally:
        await server.terminate()
