"""Caches that every process keeps, dropped when any process (or the command line) changes
what they hold.

Triggers notify ``dispatch_invalidate`` with the agency's id when its settings, policy,
keys or AEDs change (see migration ``position_changes``); the listener hands the payload
here. An empty payload (the listener has just reconnected and may have missed some)
drops everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final
from uuid import UUID

import structlog

log = structlog.get_logger(__name__)

CHANNEL: Final = "dispatch_invalidate"

AgencyForget = Callable[[UUID | None], None]
"""Forget what is cached about one agency (None: about every agency)."""


class Invalidations:
    def __init__(self) -> None:
        self._forgets: list[AgencyForget] = []
        self.received = 0

    def on_agency_change(self, forget: AgencyForget) -> None:
        self._forgets.append(forget)

    def callbacks(self) -> dict[str, Callable[[str], None]]:
        return {CHANNEL: self.received_payload}

    def received_payload(self, payload: str) -> None:
        self.received += 1
        agency: UUID | None = None
        if payload:
            try:
                agency = UUID(payload)
            except ValueError:
                log.warning("invalidation_unreadable")
        for forget in self._forgets:
            forget(agency)
