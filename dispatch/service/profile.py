"""A volunteer's own profile: what it says, what they may change, why they are not alerted.

Going off duty deletes the last position at once (from the database, the in-memory
index and the writer's queue): nobody's whereabouts are kept while they are off duty.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from dispatch.db.types import Conn
from dispatch.domain.eligibility import Tier, VolunteerProfile
from dispatch.domain.volunteer_settings import ProfileChange
from dispatch.service.positions import PositionCache, PositionWriter
from dispatch.store import devices as device_store
from dispatch.store import volunteer_data
from dispatch.store import volunteer_events as event_store
from dispatch.store import volunteers as volunteer_store


def _stamp(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def not_alerted_because(row: dict[str, Any], now: datetime) -> list[str]:
    """Why the volunteer cannot be alerted now, whatever the incident (empty: they can)."""
    reasons = []
    if not row["available"]:
        reasons.append("suspended")
    if not row["verified"]:
        reasons.append("unverified")
    certified = _stamp(row["certified_until"])
    if certified is None:
        reasons.append("no_approved_credential")
    elif certified <= now:
        reasons.append("credential_expired")
    if not row["on_duty"]:
        reasons.append("off_duty")
    return reasons


def view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    profile = VolunteerProfile(
        row["id"],
        tier=Tier(row["tier"]),
        tier_requested=Tier(row["tier_requested"]) if row["tier_requested"] else None,
        professional_until=_stamp(row["professional_until"]),
    )
    reasons = not_alerted_because(row, now)
    return {
        "volunteer_id": row["id"],
        "agency_id": row["agency_id"],
        "display_name": row["display_name"],
        "phone_e164": row["phone_e164"],
        "language": row["language"],
        "tier": profile.tier_at(now).value,
        "tier_granted": row["tier"],
        "tier_requested": row["tier_requested"],
        "certified_until": row["certified_until"],
        "professional_until": row["professional_until"],
        "on_duty": row["on_duty"],
        "quiet_from": row["quiet_from"],
        "quiet_until": row["quiet_until"],
        "time_zone": row["time_zone"],
        "daily_budget": row["daily_budget"],
        "channels": {
            "preferred": row["preferred"],
            "refused": list(row["refused"]),
            "sms_opt_out": row["sms_opt_out"],
            "phone_invalid": row["phone_invalid"],
        },
        "alertable": not reasons,
        "not_alertable_because": reasons,
        "self_registered": row["self_registered"],
        "created_at": row["created_at"],
    }


async def get(pool: asyncpg.Pool, volunteer_id: int, now: datetime) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await volunteer_data.profile(conn, volunteer_id)
    return view(row, now) if row is not None else None


async def forget_position(
    conn: Conn, volunteer_id: int, cache: PositionCache, writer: PositionWriter
) -> None:
    """The volunteer's last position, gone from memory, the queue and the database."""
    cache.remove(volunteer_id)
    writer.forget(volunteer_id)
    await volunteer_store.delete_position(conn, volunteer_id)


async def change(
    pool: asyncpg.Pool,
    *,
    agency_id: UUID,
    volunteer_id: int,
    change: ProfileChange,
    cache: PositionCache,
    writer: PositionWriter,
    now: datetime,
) -> dict[str, Any] | None:
    """Apply the volunteer's own changes; their timeline names the fields, not the values."""
    async with pool.acquire() as conn, conn.transaction():
        await volunteer_data.update_profile(conn, volunteer_id, change.columns)
        if change.refused is not None:
            await device_store.set_preferences(
                conn,
                agency_id=agency_id,
                volunteer_id=volunteer_id,
                preferred=change.preferred,
                refused=change.refused,
                now=now,
            )
        if change.columns.get("on_duty") is False:
            await forget_position(conn, volunteer_id, cache, writer)
        fields = sorted(change.columns) + (["channels"] if change.refused is not None else [])
        await event_store.record(
            conn, agency_id, volunteer_id, "profile_changed", now, {"fields": fields}
        )
        row = await volunteer_data.profile(conn, volunteer_id)
    return view(row, now) if row is not None else None
