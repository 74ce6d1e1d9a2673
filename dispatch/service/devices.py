"""Registering a volunteer's push device, with the move recorded on both timelines."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from dispatch.store import devices as device_store
from dispatch.store import volunteer_events
from dispatch.store.devices import DeviceHeldElsewhere
from dispatch.store.volunteer_events import VolunteerEvent
from dispatch.store.volunteers import VolunteerIdentity

__all__ = ["DeviceHeldElsewhere", "register_device"]


async def register_device(
    pool: asyncpg.Pool,
    volunteer: VolunteerIdentity,
    *,
    platform: str,
    fcm_token: str,
    now: datetime,
) -> int:
    """The device's id. Raises DeviceHeldElsewhere for a token of another agency's volunteer."""
    async with pool.acquire() as conn, conn.transaction():
        done = await device_store.register_device(
            conn,
            agency_id=volunteer.agency_id,
            volunteer_id=volunteer.volunteer_id,
            platform=platform,
            fcm_token=fcm_token,
            now=now,
            session_id=volunteer.session_id,
        )
        if done.moved_from is not None:
            common = {"device_id": done.device_id, "platform": platform}
            await volunteer_events.append(
                conn,
                [
                    VolunteerEvent(
                        volunteer.agency_id,
                        done.moved_from,
                        "device_moved_away",
                        now,
                        {**common, "to_volunteer_id": volunteer.volunteer_id},
                    ),
                    VolunteerEvent(
                        volunteer.agency_id,
                        volunteer.volunteer_id,
                        "device_moved_in",
                        now,
                        {**common, "from_volunteer_id": done.moved_from},
                    ),
                ],
            )
    return done.device_id
