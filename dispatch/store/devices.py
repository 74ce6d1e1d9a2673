"""Volunteers' push devices, channel preferences, and what providers told us about their numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.store.push_addresses import AddressTable, HeldElsewhere, deactivate, previous_holder


@dataclass(frozen=True, slots=True)
class ChannelPrefs:
    preferred: str | None
    refused: tuple[str, ...]
    sms_opt_out: bool
    phone_invalid: bool


class DeviceHeldElsewhere(HeldElsewhere):
    """The push token is registered to a volunteer of another agency."""


@dataclass(frozen=True, slots=True)
class Registration:
    device_id: int
    moved_from: int | None
    """The volunteer (same agency) who held the device until now, if it moved."""


_DEVICES = AddressTable("devices", "fcm_token", 0x44455600, DeviceHeldElsewhere)


async def register_device(
    conn: Conn,
    *,
    agency_id: UUID,
    volunteer_id: int,
    platform: str,
    fcm_token: str,
    now: datetime,
    session_id: int | None = None,
) -> Registration:
    """Add or re-activate a device; call inside a transaction.

    A device belongs to one volunteer. Within an agency it moves to whoever registers
    it last (a phone handed on, an app signed in under another login: the alert must
    follow the person now signed in). A token held in another agency is refused with
    :class:`DeviceHeldElsewhere`: moving it would silently cut that agency's volunteer
    off from push.
    """
    moved_from = await previous_holder(
        conn, _DEVICES, fcm_token, agency_id=agency_id, volunteer_id=volunteer_id
    )
    device_id: int = await conn.fetchval(
        """
        INSERT INTO devices (agency_id, volunteer_id, platform, fcm_token, created_at, updated_at,
                             session_id)
        VALUES ($1, $2, $3, $4, $5, $5, $6)
        ON CONFLICT (fcm_token) DO UPDATE
            SET volunteer_id = EXCLUDED.volunteer_id, platform = EXCLUDED.platform,
                active = true, deactivated_reason = NULL, updated_at = EXCLUDED.updated_at,
                session_id = EXCLUDED.session_id
        RETURNING id
        """,
        agency_id,
        volunteer_id,
        platform,
        fcm_token,
        now,
        session_id,
    )
    return Registration(device_id, moved_from)


async def deactivate_devices(
    conn: Conn, device_ids: Sequence[int], *, reason: str, now: datetime
) -> list[tuple[int, int]]:
    """Deactivate devices; returns ``(device_id, volunteer_id)`` of those that were active."""
    return await deactivate(conn, _DEVICES, device_ids, reason=reason, now=now)


async def set_preferences(
    conn: Conn,
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
    assert row is not None  # an upsert always returns its row
    return ChannelPrefs(
        row["preferred"], tuple(row["refused"]), row["sms_opt_out"], row["phone_invalid"]
    )


async def flag_volunteers(
    conn: Conn, volunteer_ids: Sequence[int], *, flag: str, now: datetime
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
    conn: Conn, phone_e164: str, *, opted_out: bool, now: datetime
) -> list[tuple[UUID, int]]:
    """STOP / START from a number: applies to every volunteer with that number.

    The provider enforces the opt-out per number for the whole account, so once a
    number has sent STOP no agency can text it, whichever volunteer record holds
    it. Returns ``(agency_id, volunteer_id)`` of each volunteer with the number.
    """
    rows = await conn.fetch(
        """
        INSERT INTO volunteer_channels (volunteer_id, agency_id, sms_opt_out, updated_at)
        SELECT v.id, v.agency_id, $2, $3 FROM volunteers v WHERE v.phone_e164 = $1
        ON CONFLICT (volunteer_id) DO UPDATE
            SET sms_opt_out = EXCLUDED.sms_opt_out, updated_at = EXCLUDED.updated_at
        RETURNING agency_id, volunteer_id
        """,
        phone_e164,
        opted_out,
        now,
    )
    return [(r["agency_id"], r["volunteer_id"]) for r in rows]
