"""What push devices and Web Push subscriptions share: an address (an FCM token, a push
endpoint) belongs to one volunteer; within an agency it follows whoever registers it last,
and one held in another agency is refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from dispatch.db.types import Conn


class HeldElsewhere(Exception):
    """The address is registered to a volunteer of another agency."""


@dataclass(frozen=True, slots=True)
class AddressTable:
    table: Literal["devices", "webpush_subscriptions"]
    column: Literal["fcm_token", "endpoint"]
    """The column that holds the address (unique)."""
    lock_space: int
    """Advisory-lock namespace for the address (the two-integer form, so it never meets the
    single-bigint lock that migrations take)."""
    held_elsewhere: type[HeldElsewhere]


async def previous_holder(
    conn: Conn, where: AddressTable, address: str, *, agency_id: UUID, volunteer_id: int
) -> int | None:
    """Call inside a transaction, before registering ``address`` for ``volunteer_id``.

    Locks the address until the transaction ends (two registrations of it queue up), then
    returns the volunteer of this agency who holds it, when that is someone else. Raises
    ``where.held_elsewhere`` when a volunteer of another agency holds it.
    """
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", where.lock_space, address)
    held = await conn.fetchrow(
        f"SELECT agency_id, volunteer_id FROM {where.table} WHERE {where.column} = $1",  # noqa: S608 - fixed literals
        address,
    )
    if held is None:
        return None
    if held["agency_id"] != agency_id:
        raise where.held_elsewhere
    holder: int = held["volunteer_id"]
    return holder if holder != volunteer_id else None


async def deactivate(
    conn: Conn, where: AddressTable, ids: Sequence[int], *, reason: str, now: datetime
) -> list[tuple[int, int]]:
    """Deactivate rows by id; ``(id, volunteer_id)`` of those that were active."""
    rows = await conn.fetch(
        f"""
        UPDATE {where.table} SET active = false, deactivated_reason = $2, updated_at = $3
        WHERE id = ANY($1::bigint[]) AND active RETURNING id, volunteer_id
        """,  # noqa: S608 - fixed literals; every value is a bound parameter
        list(ids),
        reason,
        now,
    )
    return [(r["id"], r["volunteer_id"]) for r in rows]
