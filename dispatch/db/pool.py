"""The asyncpg pool, with a bound on every command and every acquire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import asyncpg
from asyncpg.connection import LoggedQuery
from asyncpg.exceptions import (
    InsufficientResourcesError,
    InternalClientError,
    OperatorInterventionError,
    PostgresConnectionError,
)
from asyncpg.pool import PoolAcquireContext

from dispatch.config import Settings
from dispatch.db.types import Conn

DATABASE_ERRORS: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    InternalClientError,
)
"""What a database call can raise that a worker survives by trying again next round.

``InternalClientError`` is there because asyncpg raises it (not a connection error)
when a connection breaks mid-protocol, as it does while the server restarts.
"""

# Overload or a server that is down, restarting or out of resources: "try again later".
_UNAVAILABLE: Final = (
    TimeoutError,  # pool acquire and command timeouts
    OSError,  # connection refused or reset
    PostgresConnectionError,  # class 08 (includes a connection lost mid-query)
    OperatorInterventionError,  # class 57: shutting down, starting up, statement cancelled
    InsufficientResourcesError,  # class 53: too many connections, out of memory or disk
    InternalClientError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot serve now, rather than a bug in a query.

    The HTTP layer answers these with 503 and ``Retry-After``; anything else stays a 500.
    """
    if isinstance(exc, _UNAVAILABLE):
        return True
    # asyncpg's own "connection is closed" / "pool is closing" are plain InterfaceErrors;
    # other InterfaceErrors (a wrong argument count) are bugs.
    return isinstance(exc, asyncpg.InterfaceError) and any(
        word in str(exc) for word in ("closed", "closing")
    )


async def ping(conn: Conn, *, limit_s: float) -> None:
    """One trivial round trip: the server is up and this connection works."""
    await conn.fetchval("SELECT 1", timeout=limit_s)


async def init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release (asyncpg still rolls back open transactions).

    The service never leaves session state behind (no SET, LISTEN or held advisory
    locks; migrations unlock explicitly), and the default reset costs one round trip
    per request on the intake path.
    """


class BoundedPool(asyncpg.Pool):
    """A pool whose ``acquire()`` gives up after the configured bound instead of waiting forever.

    asyncpg's own default is no acquire timeout; an exhausted pool must fail fast
    (and show in /readyz) rather than hold every request until the alert is useless.
    """

    acquire_timeout_s: float = 2.0

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)


@asynccontextmanager
async def open_pool(
    dsn: str,
    settings: Settings,
    *,
    min_size: int | None = None,
    max_size: int | None = None,
    on_statement: Callable[[LoggedQuery], None] | None = None,
) -> AsyncIterator[asyncpg.Pool]:
    """A pool sized by ``settings`` (``DISPATCH_DB_POOL_MIN/MAX``) unless sizes are given.

    ``on_statement`` is asyncpg's query logger, called soon after each statement of every
    connection (the service counts round trips with it).
    """

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if on_statement is not None:
            conn.add_query_logger(on_statement)

    pool = BoundedPool(
        dsn,
        min_size=settings.db_pool_min if min_size is None else min_size,
        max_size=settings.db_pool_max if max_size is None else max_size,
        command_timeout=settings.db_command_timeout_s,
        timeout=settings.db_acquire_timeout_s,
        init=init,
        reset=_keep_session,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        setup=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        loop=None,
    )
    pool.acquire_timeout_s = settings.db_acquire_timeout_s
    await pool
    try:
        yield pool
    finally:
        await pool.close()
