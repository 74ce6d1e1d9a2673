"""Helpers the benchmarks share: a scratch database, the app on a local port, percentiles.

Imported as ``bench.common`` after a benchmark has put the repository root on
``sys.path`` (the way ``bench.calibration`` is).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiohttp import web

from bench.calibration import DEFAULT_DSN
from tests.dispatch.serve_process import ServeProcess

INCIDENT_KEY_COLUMNS: Final = (
    "id agency_id source source_incident_id version_at version_seq content_hash status is_test"
    " is_cardiac_arrest call_type_code"
)
"""The incident columns every bench fill writes first (its rows start with these values)."""


async def copy_rows(
    conn: asyncpg.Connection, table: str, rows: Sequence[tuple[Any, ...]], columns: str
) -> None:
    """Binary COPY of ``rows`` into ``table``; ``columns`` names their values, space-separated."""
    await conn.copy_records_to_table(table, records=rows, columns=columns.split())


def bench_parser(doc: str | None, **defaults: float | str) -> argparse.ArgumentParser:
    """A benchmark's options: ``--database-url`` and one per keyword, spelled with dashes
    (``sample_s=30.0`` is ``--sample-s``), typed as its default; ``doc`` is the help text."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_DSN)
    for name, default in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    return parser


def with_database(dsn: str, name: str) -> str:
    """The same server address, naming another database."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


@asynccontextmanager
async def scratch_database(
    admin_dsn: str, prefix: str, *, keep: bool = False
) -> AsyncIterator[str]:
    """A new, empty database named ``prefix`` plus a random suffix; yields its address and
    drops it afterwards (forcing out any connection still open) unless ``keep``."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield with_database(admin_dsn, name)
    finally:
        if not keep:
            admin = await asyncpg.connect(admin_dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


def scratch_file(dsn: str, suffix: str) -> Path:
    """A file in ``$TMPDIR`` (else /tmp) named after the run's database, for its logs and
    outputs."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / (urlsplit(dsn).path.lstrip("/") + suffix)


def service_env(dsn: str, **extra: str) -> dict[str, str]:
    """The environment of a ``dispatch`` child process on ``dsn``: warnings only, plus
    ``extra`` (``DISPATCH_…`` names)."""
    return {"DATABASE_URL": dsn, "DISPATCH_LOG_LEVEL": "warning", **extra}


@asynccontextmanager
async def served(
    env: Mapping[str, str], *, timeout_s: float = 30.0
) -> AsyncIterator[tuple[ServeProcess, float]]:
    """``dispatch serve`` in a child process, logging to a scratch file named after its
    database; yields it once ready with the seconds that took, and stops it afterwards."""
    server = ServeProcess(env, scratch_file(env["DATABASE_URL"], ".log"))
    try:
        startup = await server.wait_ready(timeout_s=timeout_s)
        yield server, startup
    finally:
        try:
            await server.terminate()
        except subprocess.TimeoutExpired:
            await server.kill()  # stuck in its shutdown: leave no child running


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1 to 99), interpolated between the samples."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def p99_line(label: str, values: list[float], unit_p99: float, *, decimals: int = 2) -> str:
    """One row of a latency table: p50 and p99 of ``values`` in ms, and the p99 as a
    multiple of the unit's p99 measured in the same run."""
    p99 = percentile(values, 99)
    return (
        f"  {label:40s} p50 {statistics.median(values):8.{decimals}f} ms"
        f"  p99 {p99:8.{decimals}f} ms  = {p99 / unit_p99:6.1f}x the unit's p99"
    )


async def serve_locally(app: web.Application) -> tuple[web.AppRunner, str]:
    """Runs ``app`` on a free port of 127.0.0.1 (no access log); returns its runner, which
    the caller cleans up, and its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"
