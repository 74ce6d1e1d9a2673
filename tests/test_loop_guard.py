"""The test run's own guards catch what they are there for."""

from __future__ import annotations

import asyncio
import gc
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.conftest import pytest_collection_modifyitems
from tests.loop_guard import BlockWatch, leftover_tasks


async def test_the_block_watch_names_the_call_that_holds_the_loop() -> None:
    # Below the run-wide limit, so only this watch (with a lower limit) reports it.
    watch = BlockWatch(asyncio.get_running_loop(), limit_s=0.15)
    watch.start()
    await asyncio.sleep(0.1)
    time.sleep(0.35)  # noqa: ASYNC251 - the blocking call
    await asyncio.sleep(0.1)
    watch.stop()
    assert len(watch.blocks) == 1
    assert "time.sleep(0.35)  # noqa: ASYNC251 - the blocking call" in watch.blocks[0]


async def test_the_block_watch_is_quiet_while_the_loop_awaits() -> None:
    watch = BlockWatch(asyncio.get_running_loop(), limit_s=0.15)
    watch.start()
    await asyncio.sleep(0.4)
    await asyncio.to_thread(time.sleep, 0.3)  # blocking, but off the loop
    watch.stop()
    assert watch.blocks == []


async def test_the_block_watch_does_not_count_a_garbage_collection() -> None:
    """A full collection stops every thread wherever it falls; it is not the test's call."""

    def cycles(n: int) -> list[list[object]]:
        out: list[list[object]] = []
        for _ in range(n):
            item: list[object] = []
            item.append(item)
            out.append(item)
        return out

    garbage = cycles(1_000_000)
    del garbage  # a million self-referencing lists only the collector can free
    watch = BlockWatch(asyncio.get_running_loop(), limit_s=0.05)
    watch.start()
    await asyncio.sleep(0.1)
    started = time.monotonic()
    gc.collect()
    collected_s = time.monotonic() - started
    await asyncio.sleep(0.1)
    watch.stop()
    assert collected_s > 0.1, "the collection was too quick to tell anything"
    assert watch.blocks == []


def test_the_block_watch_ignores_time_the_loop_is_not_running() -> None:
    """Sync fixtures run between a test's async steps, while its loop is stopped."""

    async def watching() -> BlockWatch:
        watch = BlockWatch(asyncio.get_running_loop(), limit_s=0.15)
        watch.start()
        return watch

    loop = asyncio.new_event_loop()
    try:
        watch = loop.run_until_complete(watching())
        time.sleep(0.4)
        loop.run_until_complete(asyncio.sleep(0.2))
        watch.stop()
    finally:
        loop.close()
    assert watch.blocks == []


async def test_leftover_tasks_are_those_still_running_not_those_cancelled() -> None:
    before = asyncio.all_tasks()
    stray = asyncio.create_task(asyncio.sleep(10))
    cancelled = asyncio.create_task(asyncio.sleep(10))
    finished = asyncio.create_task(asyncio.sleep(0))
    cancelled.cancel()
    try:
        assert await leftover_tasks(before, grace_s=0.05) == [stray]
        assert cancelled.cancelled()
        assert finished.done()
    finally:
        stray.cancel()
        await asyncio.gather(stray, return_exceptions=True)


def test_tests_reaching_the_database_fixtures_are_marked_storage() -> None:
    def item(*fixtures: str) -> Any:
        marks: list[pytest.MarkDecorator] = []
        return SimpleNamespace(fixturenames=list(fixtures), add_marker=marks.append, marks=marks)

    pure, through_client, direct = item("tmp_path"), item("client", "admin_dsn"), item("admin_dsn")
    pytest_collection_modifyitems(cast(list[pytest.Item], [pure, through_client, direct]))
    assert pure.marks == []
    assert [m.name for m in through_client.marks] == ["storage"]
    assert [m.name for m in direct.marks] == ["storage"]
