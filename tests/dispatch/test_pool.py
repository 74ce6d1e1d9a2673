"""The pool bounds every acquire and every command."""

from __future__ import annotations

import asyncpg
import pytest

from dispatch.config import Settings
from dispatch.db.pool import open_pool


async def test_exhausted_pool_fails_fast(database_url: str) -> None:
    """With every connection taken, acquire gives up after the bound instead of hanging."""
    settings = Settings(db_pool_min=1, db_pool_max=1, db_acquire_timeout_s=0.2)
    async with open_pool(database_url, settings) as pool, pool.acquire():
        with pytest.raises(TimeoutError):
            async with pool.acquire():
                pass


async def test_slow_command_is_cut_off(database_url: str) -> None:
    """A statement running past command_timeout is cancelled, and the pool stays usable."""
    settings = Settings(db_command_timeout_s=0.2)
    async with open_pool(database_url, settings) as pool:
        async with pool.acquire() as conn:
            with pytest.raises(TimeoutError):
                await conn.execute("SELECT pg_sleep(2)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1


async def test_released_connection_has_no_open_transaction(database_url: str) -> None:
    """Skipping the reset query still rolls back a transaction left open by a failure."""
    settings = Settings(db_pool_min=1, db_pool_max=1)
    async with open_pool(database_url, settings) as pool:

        async def fail_inside_transaction() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("CREATE TEMP TABLE t (x int PRIMARY KEY)")
                await conn.execute("INSERT INTO t VALUES (1), (1)")

        with pytest.raises(asyncpg.UniqueViolationError):
            await fail_inside_transaction()
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
