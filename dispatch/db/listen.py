"""One dedicated connection that LISTENs, so any process hears what another just committed.

Notifications are only a wake-up: whoever listens also polls, so a notification lost
while the connection was down costs at most a poll interval. After every (re)connect
each callback is called once with an empty payload ("anything may have changed").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import asyncpg
import structlog

from dispatch.db.pool import DATABASE_ERRORS, is_unavailable

log = structlog.get_logger(__name__)

Callback = Callable[[str], None]


class Listener:
    def __init__(
        self,
        dsn: str,
        callbacks: Mapping[str, Callback],
        *,
        connect_timeout_s: float = 5.0,
        retry_s: float = 1.0,
        check_s: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._callbacks = dict(callbacks)
        self._connect_timeout_s = connect_timeout_s
        self._retry_s = retry_s
        self._check_s = check_s
        self.connected = False

    def _deliver(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        callback = self._callbacks.get(channel)
        if callback is not None:
            callback(str(payload))

    async def _listen(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        for channel in self._callbacks:
            await conn.add_listener(channel, self._deliver)
        self.connected = True
        for callback in self._callbacks.values():
            callback("")
        while not stop.is_set() and not conn.is_closed():
            try:
                async with asyncio.timeout(self._check_s):
                    await stop.wait()
            except TimeoutError:
                # A connection that died quietly (a failover) only shows when used.
                await conn.execute("SELECT 1", timeout=self._check_s)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout_s)
            except DATABASE_ERRORS as exc:
                log.warning("listener_connect_failed", error=type(exc).__name__)
            else:
                try:
                    await self._listen(conn, stop)
                except DATABASE_ERRORS as exc:
                    if not is_unavailable(exc):
                        log.exception("listener_failed")
                    else:
                        log.warning("listener_lost", error=type(exc).__name__)
                finally:
                    self.connected = False
                    await asyncio.shield(_close(conn))
            if not stop.is_set():
                try:
                    async with asyncio.timeout(self._retry_s):
                        await stop.wait()
                except TimeoutError:
                    pass


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), timeout=2.0)
    except (*DATABASE_ERRORS, asyncio.CancelledError):
        conn.terminate()
