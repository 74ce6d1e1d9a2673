"""Long CPU work done in slices, so the event loop keeps serving everyone else meanwhile.

A worker thread would not help here: parsing is Python (and C that holds the
interpreter), so a thread would only hand the loop the interpreter every switch
interval (5 ms) at each of a request's many wake-ups. A slice of at most a
millisecond, then ``sleep(0)``, lets every waiting request take its turn in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")

SLICE_S = 0.001


async def collect(items: Iterable[T], *, slice_s: float = SLICE_S) -> list[T]:
    """Every item of ``items``, handing the loop back after each ``slice_s`` of work.

    Exceptions raised by the iterator propagate unchanged.
    """
    out: list[T] = []
    iterator = iter(items)
    deadline = time.perf_counter() + slice_s
    for item in iterator:
        out.append(item)
        if time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = time.perf_counter() + slice_s
    return out


async def chunks(
    items: Iterable[T], *, size: int, slice_s: float = SLICE_S
) -> AsyncIterator[list[T]]:
    """``items`` in lists of up to ``size``, handing the loop back after each ``slice_s``."""
    chunk: list[T] = []
    deadline = time.perf_counter() + slice_s
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
            deadline = time.perf_counter() + slice_s
        elif time.perf_counter() >= deadline:
            await asyncio.sleep(0)
            deadline = time.perf_counter() + slice_s
    if chunk:
        yield chunk
