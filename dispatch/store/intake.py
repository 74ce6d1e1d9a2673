"""Intake protection that needs the database: the signature replay window."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.secrets import SIGNATURE_WINDOW_S

# Keep signatures a little longer than the window a timestamp is accepted in.
_KEEP = timedelta(seconds=SIGNATURE_WINDOW_S * 2)


async def remember_signature(conn: Conn, agency_id: UUID, signature: bytes, now: datetime) -> bool:
    """Record a body signature; False when it was seen before (a replay)."""
    await conn.execute(
        "DELETE FROM intake_signatures WHERE agency_id = $1 AND seen_at < $2",
        agency_id,
        now - _KEEP,
    )
    inserted = await conn.fetchval(
        """
        INSERT INTO intake_signatures (agency_id, signature, seen_at) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING RETURNING true
        """,
        agency_id,
        signature,
        now,
    )
    return bool(inserted)
