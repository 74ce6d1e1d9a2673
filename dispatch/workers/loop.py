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
) -> None:
    """Call ``round_`` until ``stop``; it returns True when more work is waiting (no pause).

    Database and network trouble is logged and the next round tries again: a worker
    that died on a transient error would leave deadlines unserved until a restart.
    """
    while not stop.is_set():
        busy = False
        try:
            busy = await round_()
        except DATABASE_ERRORS as exc:
            round_failed(name, exc)
        if busy:
            continue
        try:
            async with asyncio.timeout(tick_s):
                await stop.wait()
        except TimeoutError:
            pass


def round_failed(name: str, exc: BaseException) -> None:
    """Log a round that failed on a database error (from inside its ``except``).

    An outage is one warning line per round, without a traceback (a restart of the
    server would otherwise fill the log with them); any other error is a bug, logged
    with its traceback.
    """
    if is_unavailable(exc):
        log.warning("worker_round_failed", worker=name, error=type(exc).__name__)
    else:
        log.exception("worker_round_failed", worker=name)
