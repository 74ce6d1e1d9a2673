"""A volunteer's self-check: a test alert down their real delivery chain, at most 3 a day.

It goes through the alerts' own outbox (push, then text, then call, with the agency's
windows and the volunteer's preferences), so it proves what a real alert would do,
including breaking through silent mode. It says it is a test, belongs to an incident of
its own that is stored closed and as a test, and counts against nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from uuid import UUID

import asyncpg

from dispatch.service.events import EventBuffer
from dispatch.store import self_test as self_test_store
from dispatch.store import volunteers as volunteer_store

PER_DAY: Final = 3
LIFETIME: Final = timedelta(minutes=5)
"""Long enough for the chain to reach the call step with the default windows."""


class TooMany(Exception):
    def __init__(self, wait_s: int) -> None:
        super().__init__(f"{PER_DAY} test alerts a day")
        self.wait_s = wait_s


@dataclass(frozen=True, slots=True)
class TestAlert:
    alert_id: UUID
    incident_id: UUID
    expires_at: datetime
    left_today: int


async def send(
    pool: asyncpg.Pool, *, agency_id: UUID, volunteer_id: int, now: datetime
) -> TestAlert:
    day = timedelta(days=1)
    async with pool.acquire() as conn, conn.transaction():
        await volunteer_store.lock(conn, volunteer_id)
        recent = await self_test_store.recent(conn, volunteer_id, now - day)
        if len(recent) >= PER_DAY:
            frees_at = recent[-PER_DAY] + day
            raise TooMany(max(1, math.ceil((frees_at - now).total_seconds())))
        incident_id, alert_id = await self_test_store.create(
            conn,
            agency_id=agency_id,
            volunteer_id=volunteer_id,
            now=now,
            expires_at=now + LIFETIME,
        )
        events = EventBuffer(agency_id, incident_id, now)
        events.add("self_test_requested", volunteer_id=volunteer_id, is_test=True)
        events.add("alert_queued", alert_id=alert_id, volunteer_id=volunteer_id, role="test")
        await events.flush(conn)
    return TestAlert(alert_id, incident_id, now + LIFETIME, PER_DAY - len(recent) - 1)
