"""Wire-level fakes of outside services, served by aiohttp on 127.0.0.1 in a background thread.

Each fake runs its own event loop in its own thread: firebase-admin refreshes
OAuth tokens with synchronous ``requests`` inside the caller's loop, so a fake
sharing that loop would deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

from aiohttp import web


class ThreadedServer:
    """Run an ``aiohttp.web.Application`` on ``127.0.0.1:<free port>`` in a daemon thread."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self._stop: asyncio.Event | None = None
        self.release: asyncio.Event | None = None
        """Set on stop so stalled handlers return at once."""
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self.release = asyncio.Event()
        self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._ready.set()
        await self._stop.wait()
        await self._runner.cleanup()

    def start(self) -> ThreadedServer:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("fake server did not start")
        return self

    def stop(self) -> None:
        def _signal() -> None:
            assert self._stop is not None
            assert self.release is not None
            self.release.set()
            self._stop.set()

        self._loop.call_soon_threadsafe(_signal)
        self._thread.join(5)

    async def stall(self, seconds: float) -> None:
        """Sleep in a handler, but wake up when the server stops."""
        assert self.release is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), seconds)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def form_to_lists(form: Any) -> dict[str, list[str]]:
    """A ``MultiDictProxy`` as ``{name: [values…]}`` (repeated keys kept)."""
    out: dict[str, list[str]] = {}
    for key in form:
        if key not in out:
            out[key] = [str(v) for v in form.getall(key)]
    return out


class ServedFake:
    """A fake whose :meth:`app` runs on a :class:`ThreadedServer` from :meth:`start` to
    :meth:`stop`. Subclasses (dataclasses) declare ``server: ThreadedServer | None = None``."""

    server: ThreadedServer | None

    def app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def start(self) -> Self:
        self.server = ThreadedServer(self.app()).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


Reply = TypeVar("Reply")


def next_reply(replies: dict[str, Reply | list[Reply]], key: str, default: Reply) -> Reply:
    """The answer scripted for ``key``: one reply for every request, or a list consumed in
    order whose last entry repeats; ``default`` when nothing is scripted."""
    scripted = replies.get(key, default)
    if not isinstance(scripted, list):
        return scripted
    return scripted.pop(0) if len(scripted) > 1 else scripted[0]
