"""Guards on each async test's event loop: no task left running, no call that holds the loop.

Blocking is found by a heartbeat: a callback on the loop every ``BEAT_S`` notes the time,
and a watchdog thread checks that the next one came on time. When the loop is late by
more than the limit, the watchdog records where the loop thread is (its stack at that
moment), which names the blocking call.

The limit is generous (``BLOCK_LIMIT_S``) and counts only time the loop thread was
running or sleeping in a call, never the time it waited for a CPU: on Linux each
thread's run-queue wait is in ``/proc/self/task/<tid>/schedstat``, and that wait is
subtracted, and so is time the garbage collector held every thread (a full collection of
a long test session's heap takes tenths of a second on a slow machine, wherever it
happens to fall). So a loaded, shared machine (many processes on two cores) slows a test
down without making it fail, while a ``time.sleep``, a synchronous socket or a long
computation inside a coroutine still trips it. (asyncio's own debug mode reports slow
callbacks by wall-clock time alone, which a busy machine inflates, and it changes how
the loop runs; this watchdog does neither.) Without ``/proc`` the wall-clock lateness
is used.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import traceback
from pathlib import Path

BLOCK_LIMIT_S = 0.5
BEAT_S = 0.05
TASK_GRACE_S = 0.5


class _GcClock:
    """Seconds spent in garbage collections since import, counted from ``gc.callbacks``."""

    def __init__(self) -> None:
        self._total_s = 0.0
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.monotonic()
        elif self._started is not None:
            self._total_s += time.monotonic() - self._started
            self._started = None

    def spent_s(self) -> float:
        running = 0.0 if self._started is None else time.monotonic() - self._started
        return self._total_s + running


_GC = _GcClock()
gc.callbacks.append(_GC)


def _run_queue_wait_s(native_id: int) -> float | None:
    """Seconds the thread has spent runnable but waiting for a CPU (None without /proc)."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/schedstat").read_text().split()
    except OSError:
        return None
    return int(fields[1]) / 1e9


class BlockWatch:
    """Watches one event loop, run by the calling thread, for stretches it cannot answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, limit_s: float = BLOCK_LIMIT_S) -> None:
        self._loop = loop
        self._limit_s = limit_s
        self._ident = threading.get_ident()
        self._native_id = threading.get_native_id()
        self._mark: tuple[float, float | None, float] = (time.monotonic(), None, 0.0)
        self._reported: tuple[float, float | None, float] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loop-block-watch", daemon=True)
        self.blocks: list[str] = []

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._handle is not None:
            self._handle.cancel()

    def _beat(self) -> None:
        self._mark = self._now()
        self._handle = self._loop.call_later(BEAT_S, self._beat)

    def _now(self) -> tuple[float, float | None, float]:
        # One tuple, replaced whole: the watchdog never sees a time from one beat and a
        # run-queue or collection figure from another.
        return (time.monotonic(), _run_queue_wait_s(self._native_id), _GC.spent_s())

    def _watch(self) -> None:
        while not self._stop.wait(BEAT_S):
            if not self._loop.is_running():
                # Between a test's async steps (sync fixtures, pytest's own work) the loop
                # is stopped: nothing is waiting on it, so the clock starts again here.
                self._mark = self._now()
                continue
            mark = self._mark
            at, waited_before, gc_before = mark
            late_s = time.monotonic() - at - BEAT_S
            if late_s < self._limit_s or mark is self._reported:
                continue
            waited_now = _run_queue_wait_s(self._native_id)
            if waited_before is not None and waited_now is not None:
                late_s -= waited_now - waited_before
            late_s -= _GC.spent_s() - gc_before
            if late_s < self._limit_s:
                continue
            self._reported = mark
            frame = sys._current_frames().get(self._ident)
            where = "".join(traceback.format_stack(frame)[-12:]) if frame else "(no stack)\n"
            self.blocks.append(
                f"the event loop answered nothing for over {late_s:.2f} s"
                f" (time waiting for a CPU or in garbage collection not counted);"
                f" the loop thread was in:\n{where}"
            )


def describe(task: asyncio.Task[object]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", repr(coro))
    return f"{task.get_name()} ({name})"


async def leftover_tasks(
    before: set[asyncio.Task[object]], *, grace_s: float = TASK_GRACE_S
) -> list[asyncio.Task[object]]:
    """Tasks started since ``before`` that are still running after a short grace.

    The grace lets tasks that were cancelled during teardown finish unwinding; a task
    nobody cancelled is still running after it.
    """
    current = asyncio.current_task()
    started = [t for t in asyncio.all_tasks() if t not in before and t is not current]
    pending = [t for t in started if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=grace_s)
    return [t for t in pending if not t.done()]
