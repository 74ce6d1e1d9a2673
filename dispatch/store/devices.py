"""Volunteers' push devices, channel preferences, and what providers told us about their numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class ChannelPrefs:
    preferred: str | None
    refused: tuple[str, ...]
    sms_opt_out: bool
    phone_invalid: bool


async def register_device(
    conn: Any,
    *,
    agency_id: UUID,
    volunteer_id: int,
    platform: str,
    fcm_token: str,
    now: datetime,
) -> int:
    """Add or re-activate a device. A token moves to whoever registers it last.

    A phone handed on, or an app reinstalled under another login, keeps its
    FCM token; the alert must follow the person now signed in.
    """
    device_id: int = await conn.fetchval(
        """
        INSERT INTO devices (agency_id, volunteer_id, platform, fcm_token, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $5)
        ON CONFLICT (fcm_token) DO UPDATE
            SET agency_id = EXCLUDED.agency_id, volunteer_id = EXCLUDED.volunteer_id,
                platform = EXCLUDED.platform, active = true, deactivated_reason = NULL,
                updated_at = EXCLUDED.updated_at
        RETURNING id
        """,
        agency_id,
        volunteer_id,
        platform,
        fcm_token,
        now,
    )
    return device_id


async def deactivate_devices(
    conn: Any, device_ids: Sequence[int], *, reason: str, now: datetime
) -> list[tuple[int, int]]:
    """Deactivate devices; returns ``(device_id, volunteer_id)`` of those that were active."""
    rows = await conn.fetch(
        """
        UPDATE devices SET active = false, deactivated_reason = $2, updated_at = $3
        WHERE id = ANY($1::bigint[]) AND active RETURNING id, volunteer_id
        """,
        list(device_ids),
        reason,
        now,
    )
    return [(r["id"], r["volunteer_id"]) for r in rows]


async def set_preferences(
    conn: Any,
    *,
    agency_id: UUID,
    volunteer_id: int,
    preferred: str | None,
    refused: Sequence[str],
    now: datetime,
) -> ChannelPrefs:
    row = await conn.fetchrow(
        """
        INSERT INTO volunteer_channels (volunteer_id, agency_id, preferred, refused, updated_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (volunteer_id) DO UPDATE
            SET preferred = EXCLUDED.preferred, refused = EXCLUDED.refused,
                updated_at = EXCLUDED.updated_at
        RETURNING preferred, refused, sms_opt_out, phone_invalid
        """,
        volunteer_id,
        agency_id,
        preferred,
        list(refused),
        now,
    )
    return ChannelPrefs(
        row["preferred"], tuple(row["refused"]), row["sms_opt_out"], row["phone_invalid"]
    )


async def flag_volunteers(
    conn: Any, volunteer_ids: Sequence[int], *, flag: str, now: datetime
) -> None:
    """Set ``sms_opt_out`` or ``phone_invalid`` for these volunteers."""
    if flag not in ("sms_opt_out", "phone_invalid"):
        raise ValueError(flag)
    await conn.execute(
        f"""
        INSERT INTO volunteer_channels (volunteer_id, agency_id, {flag}, updated_at)
        SELECT v.id, v.agency_id, true, $2 FROM volunteers v WHERE v.id = ANY($1::bigint[])
        ON CONFLICT (volunteer_id) DO UPDATE SET {flag} = true, updated_at = EXCLUDED.updated_at
        """,  # noqa: S608 - flag is one of two literals, checked above
        list(volunteer_ids),
        now,
    )


async def set_sms_opt_out(
    conn: Any, phone_e164: str, *, opted_out: bool, now: datetime
) -> list[int]:
    """STOP / START from a number: applies to every volunteer with that number.

    Twilio enforces the opt-out per sender for the whole account, so it cannot be
    narrower than the number. Returns the volunteer ids affected.
    """
    rows = await conn.fetch(
        """
        INSERT INTO volunteer_channels (volunteer_id, agency_id, sms_opt_out, updated_at)
        SELECT v.id, v.agency_id, $2, $3 FROM volunteers v WHERE v.phone_e164 = $1
        ON CONFLICT (volunteer_id) DO UPDATE
            SET sms_opt_out = EXCLUDED.sms_opt_out, updated_at = EXCLUDED.updated_at
        RETURNING volunteer_id
        """,
        phone_e164,
        opted_out,
        now,
    )
    return [r["volunteer_id"] for r in rows]
