"""Run the real ``dispatch serve`` in a child process, as an operator would."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from tests.dispatch import pg


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    def __init__(self, env: Mapping[str, str], log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._env = {
            **os.environ,
            "DISPATCH_LOG_FORMAT": "json",
            "DISPATCH_NOTIFIER_POLL_S": "0.05",
            "DISPATCH_POSITION_FLUSH_S": "0.05",
            "DISPATCH_SHUTDOWN_GRACE_S": "5",
            **env,
        }
        self._args = args
        self._log = log_path.open("ab")
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "dispatch", "serve", "--port", str(self.port), *self._args],
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def restart(self) -> None:
        """Start the same command again, on the same port (as a load balancer knows it),
        after the previous process exited; its output goes on in the same log."""
        assert self.proc.poll() is not None, "restart() after terminate() or kill()"
        self._log = self.log_path.open("ab")
        self.proc = self._spawn()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self, timeout_s: float = 30.0) -> float:
        """Seconds until /readyz answered 200; fails if the process dies first."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with aiohttp.ClientSession() as session:
            while loop.time() - started < timeout_s:
                if self.proc.poll() is not None:
                    raise AssertionError(f"serve exited early:\n{self.output()[-4000:]}")
                try:
                    async with session.get(f"{self.base}/readyz") as resp:
                        if resp.status == 200:
                            return loop.time() - started
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"not ready after {timeout_s}s:\n{self.output()[-4000:]}")

    async def terminate(self, timeout_s: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.proc.wait, timeout_s)
        self._log.close()
        return code

    async def kill(self) -> None:
        self.proc.kill()
        await asyncio.to_thread(self.proc.wait, 10)
        self._log.close()


@contextmanager
def served_database(
    admin_dsn: str, template_name: str, env: Mapping[str, str], log_path: Path
) -> Iterator[tuple[str, ServeProcess]]:
    """A database of its own with ``dispatch serve`` on it, for a module's tests: its URL and
    the server. On exit the server must stop cleanly (exit 0, no traceback in its log)."""
    name = asyncio.run(pg.create_test_database(admin_dsn, template_name))
    dsn = pg.with_database(admin_dsn, name)
    server = ServeProcess({"DATABASE_URL": dsn, **env}, log_path)
    try:
        asyncio.run(server.wait_ready())
        yield dsn, server
    finally:
        code = asyncio.run(server.terminate())
        asyncio.run(pg.drop_test_database(admin_dsn, name))
    output = server.output()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-5000:]


async def dispatch_cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m dispatch *args`` in a child process with ``env`` added to ours, whatever
    its exit code; in a thread, so that the test's event loop stays free meanwhile."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dispatch", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def run_cli(env: Mapping[str, str], *args: str) -> dict[str, str]:
    """Run a ``dispatch`` admin verb that must succeed; returns its ``key: value`` lines."""
    done = await dispatch_cli(env, *args)
    assert done.returncode == 0, done.stderr
    pairs = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs
