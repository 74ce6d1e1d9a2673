"""The asyncpg pool, with a bound on every command and every acquire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from dispatch.config import Settings


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


@asynccontextmanager
async def open_pool(dsn: str, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        command_timeout=settings.db_command_timeout_s,
        timeout=settings.db_acquire_timeout_s,
        init=_init_connection,
    )
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def acquire(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Any]:
    """A connection from the pool, failing fast when the pool is exhausted."""
    async with pool.acquire(timeout=settings.db_acquire_timeout_s) as conn:
        yield conn
