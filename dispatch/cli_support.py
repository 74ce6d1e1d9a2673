"""What every ``dispatch`` admin verb shares: output, refusals, a migrated connection."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from dispatch.config import Settings
from dispatch.db.embedded import embedded_postgres
from dispatch.db.migrate import migrate
from dispatch.db.pool import open_pool
from dispatch.db.types import Conn


class CliError(Exception):
    """A refusal to print without a traceback."""


def out(text: str) -> None:
    sys.stdout.write(text + "\n")


@asynccontextmanager
async def connection(settings: Settings) -> AsyncIterator[Conn]:
    """A migrated database connection, starting the embedded server when needed."""
    async with AsyncExitStack() as stack:
        dsn = settings.database_url
        if dsn is None:
            dsn = await stack.enter_async_context(embedded_postgres(settings.data_dir))
        pool = await stack.enter_async_context(
            open_pool(dsn, settings.with_overrides(db_pool_min=1, db_pool_max=2))
        )
        async with pool.acquire() as conn:
            await migrate(conn)
            yield conn
