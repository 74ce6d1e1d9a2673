"""A clock that runs ahead of real time by an offset read from a file: for drills and tests.

Scenario tests drive the real server process through waves and time-outs
without waiting minutes: they write a number of seconds to the file named by
``DISPATCH_CLOCK_OFFSET_FILE`` and the service's "now" jumps forward. Never set
in production; the service logs a warning at start when it is.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path


class OffsetFileClock:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime_ns = -1
        self._offset = timedelta(0)

    def _refresh(self) -> None:
        try:
            mtime = os.stat(self._path).st_mtime_ns
        except FileNotFoundError:
            self._offset = timedelta(0)
            return
        if mtime != self._mtime_ns:
            text = self._path.read_text().strip() or "0"
            self._offset = timedelta(seconds=float(text))
            self._mtime_ns = mtime

    def now(self) -> datetime:
        self._refresh()
        return datetime.now(UTC) + self._offset
