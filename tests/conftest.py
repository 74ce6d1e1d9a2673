"""Fixtures shared by every test package: only what needs no project imports."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.loop_guard import BlockWatch, describe, leftover_tasks

if TYPE_CHECKING:
    from tests.fakes.webpush import FakeWebPush

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the checkout; tests that need it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"reference material not present at {SHARED}")
    return SHARED


@pytest.fixture(scope="module")
def push_service() -> Iterator[FakeWebPush]:
    """The Web Push service wire fake, started once per test module."""
    from tests.fakes.webpush import FakeWebPush  # its crypto imports only where it is used

    fake = FakeWebPush().start()
    yield fake
    fake.stop()


@pytest.fixture
def push(push_service: FakeWebPush) -> Iterator[FakeWebPush]:
    """The module's Web Push fake with nothing received or scripted before or after the test."""
    push_service.reset()
    yield push_service
    push_service.reset()


# Every database fixture (tests/dispatch/conftest.py) starts from this one.
_DATABASE_FIXTURE = "admin_dsn"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches PostgreSQL through the fixtures ``storage``.

    ``fixturenames`` is the whole closure, so a test asking for ``client`` or ``agency``
    is marked as surely as one asking for ``db``; ``pytest -m "not storage"`` is then
    the pure suite.
    """
    for item in items:
        if _DATABASE_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.storage)


@pytest.fixture
async def _loop_guard() -> AsyncIterator[None]:
    """Fail the test that leaves a task running or holds its event loop (see loop_guard)."""
    before = asyncio.all_tasks()
    watch = BlockWatch(asyncio.get_running_loop())
    watch.start()
    yield
    watch.stop()
    problems = list(watch.blocks)
    left = await leftover_tasks(before)
    if left:
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=1.0)
        problems.append("tasks left running: " + ", ".join(describe(t) for t in left))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _guard_async_tests(request: pytest.FixtureRequest) -> None:
    # Requested first, so its teardown runs after every other fixture's (the app's
    # cleanup included): what it finds was left behind by the test as a whole.
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        request.getfixturevalue("_loop_guard")


def _hypothesis_profiles() -> None:
    from hypothesis import settings

    # CI machines are small and shared: no per-example deadline, and a fixed seed so a
    # red run can be reproduced exactly.
    settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
    settings.register_profile("dev", deadline=None)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")


_hypothesis_profiles()
