"""A provider that only records what it would send: for development, demos and tests.

With a ``record_path`` each message is appended as one JSON line and flushed to
disk before ``send`` returns, so a test can count deliveries across a crash and
restart of the service. In memory it keeps only the most recent messages
(:attr:`LogNotifier.sent`), so a long-running demo does not grow with every alert.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import structlog

from notify.ports import AlertMessage, Channel, DeliveryResult
from notify.results import accepted

log = structlog.get_logger(__name__)


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


RECENT = 100
"""How many of the latest messages :attr:`LogNotifier.sent` holds."""


class LogNotifier:
    def __init__(self, record_path: Path | None = None, *, recent: int = RECENT) -> None:
        self._path = record_path
        self.sent: deque[AlertMessage] = deque(maxlen=recent)
        """The latest ``recent`` messages, oldest first (the file has all of them)."""

    @property
    def channel(self) -> Channel:
        return Channel.LOG

    async def send(self, message: AlertMessage, *, timeout_s: float) -> DeliveryResult:
        started = time.perf_counter()
        record: dict[str, Any] = {
            "alert_id": message.alert_id,
            "incident_id": message.incident_id,
            "volunteer_id": message.volunteer_id,
            "role": message.role,
            "title": message.title,
            "expires_at": message.expires_at.isoformat(),
        }
        if self._path is not None:
            # The file stands for the recipient's phone: it gets the whole message (a sign-in
            # code is read from it in demos and tests). The log line below never does.
            delivered = {
                **record,
                "to": message.address,
                "body": message.body,
                "data": dict(message.data),
            }
            async with asyncio.timeout(timeout_s):
                await asyncio.to_thread(_append_line, self._path, json.dumps(delivered))
        self.sent.append(message)
        log.info("log_provider_alert", **record)
        return accepted(Channel.LOG, started, f"log-{message.alert_id}")

    async def aclose(self) -> None:
        return None
