"""Response-log rows gathered during one transaction, written with one statement at its end."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.store import response_log
from dispatch.store.response_log import LogEvent


class EventBuffer:
    """Events for one incident, stamped with the transaction's ``now`` unless given a time."""

    def __init__(self, agency_id: UUID, incident_id: UUID, now: datetime) -> None:
        self.agency_id = agency_id
        self.incident_id = incident_id
        self.now = now
        self.rows: list[LogEvent] = []

    def add(
        self,
        name: str,
        *,
        alert_id: UUID | None = None,
        volunteer_id: int | None = None,
        at: datetime | None = None,
        **details: Any,
    ) -> None:
        self.rows.append(
            LogEvent(
                self.agency_id,
                self.incident_id,
                name,
                at or self.now,
                alert_id,
                volunteer_id,
                details,
            )
        )

    def take(self) -> list[LogEvent]:
        """The events gathered so far, handed to a store call that writes them itself."""
        rows, self.rows = self.rows, []
        return rows

    async def flush(self, conn: Conn) -> None:
        await response_log.append(conn, self.rows)
        self.rows = []
