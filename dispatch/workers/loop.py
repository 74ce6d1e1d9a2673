"""The shape every polling worker shares: do a round, then wait for the tick or the stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from dispatch.db.pool import DATABASE_ERRORS, is_unavailable

log = structlog.get_logger(__name__)


async def run_rounds(
    stop: asyncio.Event,
    round_: Callable[[], Awaitable[bool]],
    *,
    tick_s: float,
    name: str,
    wakeup: asyncio.Event | None = None,
) -> None:
    """Call ``round_`` until ``stop``; it returns True when more work is waiting (no pause).

    Between rounds the worker waits ``tick_s``, or less when ``wakeup`` is set (a commit
    that made work for it); a set made during a round leads straight to the next one.
    Database and network trouble is logged and the next round tries again: a worker
    that died on a transient error would leave deadlines unserved until a restart, and
    asyncpg raises InterfaceError and InternalClientError, not only OSError, on a
    connection a restarting server closed.
    """
    while not stop.is_set():
        if wakeup is not None:
            wakeup.clear()
        busy = False
        try:
            busy = await round_()
        except DATABASE_ERRORS as exc:
            _round_failed(name, exc)
        if busy:
            continue
        await _pause(stop, wakeup, tick_s)


async def _pause(stop: asyncio.Event, wakeup: asyncio.Event | None, tick_s: float) -> None:
    waits = {asyncio.ensure_future(stop.wait())}
    if wakeup is not None:
        waits.add(asyncio.ensure_future(wakeup.wait()))
    try:
        await asyncio.wait(waits, timeout=tick_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            waiter.cancel()


def _round_failed(name: str, exc: BaseException) -> None:
    """Log a round that failed on a database error (from inside its ``except``).

    An outage is one warning line per round, without a traceback (a restart of the
    server would otherwise fill the log with them); any other error is a bug, logged
    with its traceback.
    """
    if is_unavailable(exc):
        log.warning("worker_round_failed", worker=name, error=type(exc).__name__)
    else:
        log.exception("worker_round_failed", worker=name)
