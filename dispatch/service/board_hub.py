"""The live board's fan-out: one watcher per process, any number of listening consoles.

Every change a board shows (an incident received or closed, an alert answered, a unit's
status) appends to the response log, so the watcher polls the log's newest id and count
every ``tick_s`` while anyone listens, and then rebuilds the boards of the agencies being
watched, giving each listener a board only when it differs from the one it last got. Polling the
shared table, not a signal inside the process, means a change made by any process sharing
the database reaches every process's listeners; a full rebuild every ``refresh_s``
catches anything the mark could miss.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from dispatch.db.pool import DATABASE_ERRORS
from dispatch.domain.clock import Clock
from dispatch.store import board as board_store

log = structlog.get_logger(__name__)

# Rows a late-committing transaction may trail the newest id by and still be noticed.
_WINDOW = 512
CLOSED = ""
"""Sent to a listener when the hub shuts down: the stream ends."""


async def board(pool: asyncpg.Pool, clock: Clock, agency_id: UUID) -> dict[str, Any]:
    """The agency's live board as the API answers it."""
    async with pool.acquire() as conn:
        incidents = await board_store.active_incidents(conn, agency_id)
    return {"agency_id": str(agency_id), "now": clock.now().isoformat(), "incidents": incidents}


def fingerprint(found: dict[str, Any]) -> str:
    """What decides whether a board is news: all but the time stamp of its build."""
    return json.dumps(found["incidents"], separators=(",", ":"), sort_keys=True)


class _Listener:
    def __init__(self) -> None:
        self.latest: str | None = None
        self.seen: str | None = None
        """The fingerprint of the last board this listener was given."""
        self.ready = asyncio.Event()

    def offer(self, text: str, key: str | None = None) -> None:
        if key is not None:
            if key == self.seen:
                return
            self.seen = key
        # Only the newest board matters: a slow reader skips the ones it missed.
        self.latest = text
        self.ready.set()

    async def next(self, timeout_s: float) -> str | None:
        """The newest board (CLOSED at shutdown), or None after ``timeout_s`` of quiet."""
        try:
            await asyncio.wait_for(self.ready.wait(), timeout_s)
        except TimeoutError:
            return None
        self.ready.clear()
        text, self.latest = self.latest, None
        return text


class BoardHub:
    def __init__(
        self, pool: asyncpg.Pool, clock: Clock, *, tick_s: float, refresh_s: float = 5.0
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._tick_s = tick_s
        self._refresh_s = refresh_s
        self._listeners: dict[UUID, set[_Listener]] = {}
        self._joined = asyncio.Event()
        self._closed = False

    @property
    def listening(self) -> int:
        return sum(len(group) for group in self._listeners.values())

    @asynccontextmanager
    async def listen(self, agency_id: UUID) -> AsyncIterator[_Listener]:
        listener = _Listener()
        if self._closed:
            listener.offer(CLOSED)
        self._listeners.setdefault(agency_id, set()).add(listener)
        self._joined.set()
        try:
            yield listener
        finally:
            group = self._listeners.get(agency_id, set())
            group.discard(listener)
            if not group:
                self._listeners.pop(agency_id, None)

    def close(self) -> None:
        """End every stream (the server is stopping; browsers reconnect elsewhere)."""
        self._closed = True
        for group in self._listeners.values():
            for listener in group:
                listener.offer(CLOSED)

    async def run(self, stop: asyncio.Event) -> None:
        mark: tuple[int, int] | None = None
        since = 0
        loop = asyncio.get_running_loop()
        refreshed = loop.time()
        while not stop.is_set():
            if not self._listeners:
                # Nobody watching: no queries at all until someone is.
                self._joined.clear()
                mark = None
                waiter = asyncio.ensure_future(self._joined.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            try:
                async with self._pool.acquire() as conn:
                    if mark is None:
                        since = max(0, await board_store.newest_id(conn) - _WINDOW)
                    now_mark = await board_store.change_mark(conn, since)
                due = loop.time() - refreshed >= self._refresh_s
                if now_mark != mark or due:
                    await self._rebuild()
                    refreshed = loop.time()
                    since = max(0, now_mark[0] - _WINDOW)
                    async with self._pool.acquire() as conn:
                        mark = await board_store.change_mark(conn, since)
            except DATABASE_ERRORS as exc:
                # Every error a restarting server makes asyncpg raise: the hub must outlive it.
                log.warning("board_watch_failed", error=type(exc).__name__)
            await _sleep_or_stop(stop, self._tick_s)

    async def _rebuild(self) -> None:
        for agency_id in list(self._listeners):
            found = await board(self._pool, self._clock, agency_id)
            key = fingerprint(found)
            text = json.dumps(found, separators=(",", ":"))
            for listener in self._listeners.get(agency_id, ()):
                listener.offer(text, key)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
