"""Send slots per sending number, shared by every process (one row per sender)."""

from __future__ import annotations

from dispatch.db.types import Conn


async def reserve_slot(
    conn: Conn, sender: str, *, interval_s: float, max_wait_s: float
) -> float | None:
    """Take the sender's next slot; seconds to wait for it, or None when it is too far off.

    The database's clock decides, so processes whose clocks differ still space sends evenly.
    """
    wait: float | None = await conn.fetchval(
        """
        INSERT INTO sender_pacing AS s (sender, next_slot)
        VALUES ($1, now() + $2 * interval '1 second')
        ON CONFLICT (sender) DO UPDATE
            SET next_slot = greatest(s.next_slot, now()) + $2 * interval '1 second'
            WHERE greatest(s.next_slot, now()) <= now() + $3 * interval '1 second'
        RETURNING greatest(extract(epoch FROM next_slot - now())::float8 - $2, 0)
        """,
        sender,
        interval_s,
        max_wait_s,
    )
    return wait
