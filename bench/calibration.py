"""The calibration line every benchmark prints first, so runs on different days compare.

Two numbers that depend only on the machine and its load at the time: the p50 of a
``SELECT 1`` round trip to the PostgreSQL server the benchmark uses, and the time of a
fixed pure-Python CPU loop (best of three).
"""

from __future__ import annotations

import statistics
import time

import asyncpg

_LOOP_N = 2_000_000


def _cpu_loop_ms() -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(_LOOP_N):
            total += i * i
        best = min(best, (time.perf_counter() - started) * 1000)
    assert total > 0
    return best


DEFAULT_DSN = "postgresql://127.0.0.1/postgres"


def print_calibration(dsn: str | None = None) -> None:
    """For benchmarks without an event loop of their own: print the line, flushed."""
    import asyncio
    import os

    line = asyncio.run(calibration_line(dsn or os.environ.get("DATABASE_URL", DEFAULT_DSN)))
    print(line, flush=True)


async def calibration_line(dsn: str, *, round_trips: int = 500) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.fetchval("SELECT 1")
        samples = []
        for _ in range(round_trips):
            started = time.perf_counter()
            await conn.fetchval("SELECT 1")
            samples.append((time.perf_counter() - started) * 1e6)
    finally:
        await conn.close()
    return (
        f"calibration: PostgreSQL SELECT 1 round trip p50 {statistics.median(samples):.0f} us"
        f" ({round_trips} on one connection); CPU loop ({_LOOP_N:,} multiply-adds, best of 3)"
        f" {_cpu_loop_ms():.0f} ms"
    )
