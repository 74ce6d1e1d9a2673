"""Alert states as the outbox worker and provider receipts read and write them."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.domain.alert_states import AlertState
from dispatch.store.alerts import AlertRow, alert_row


async def lock_states(
    conn: Conn, alert_ids: Sequence[UUID], *, incident_ids: Sequence[UUID]
) -> dict[UUID, AlertState]:
    """Lock these alerts (in id order, so two workers cannot deadlock) and read their states;
    first, in the same statement, key-share-lock ``incident_ids`` (in id order).

    Intake locks an incident, then its alerts, and a response-log row key-share-locks its
    incident through its foreign key: taking the incidents first, as intake does, keeps a
    delivery transaction and intake from deadlocking. The incidents' lock is an uncorrelated
    subquery in a condition that names no row, so it runs once, as the plan's gate, before
    the first alert is looked at (one round trip for both, where two statements took two).
    """
    # Each row looked up by its key in turn (the ids come sorted): a plan made without
    # statistics for the table filtered a full scan of it by the whole list instead.
    rows = await conn.fetch(
        """
        SELECT a.id, a.state FROM unnest($1::uuid[]) AS k(id)
        CROSS JOIN LATERAL (
            SELECT id, state FROM alerts WHERE id = k.id FOR NO KEY UPDATE
        ) a
        WHERE (
            SELECT count(*) FROM unnest($2::uuid[]) AS j(id)
            CROSS JOIN LATERAL (SELECT 1 FROM incidents WHERE id = j.id FOR KEY SHARE) i
        ) >= 0
        """,
        sorted(set(alert_ids)),
        sorted(set(incident_ids)),
    )
    return {r["id"]: AlertState(r["state"]) for r in rows}


async def alert_of_provider_ref(conn: Conn, provider_ref: str) -> UUID | None:
    """The alert whose latest text or call Twilio knows by this id (a message or call SID).

    Only those steps are in the index of provider ids (0023): a push's id is never asked for.
    """
    found: UUID | None = await conn.fetchval(
        "SELECT alert_id FROM outbox WHERE provider_ref = $1 AND channel IN ('sms', 'voice')"
        " ORDER BY id DESC LIMIT 1",
        provider_ref,
    )
    return found


async def find_alert(conn: Conn, alert_id: UUID) -> AlertRow | None:
    """The alert, without a lock."""
    row = await conn.fetchrow(
        "SELECT id, agency_id, incident_id, volunteer_id, state FROM alerts WHERE id = $1",
        alert_id,
    )
    return None if row is None else alert_row(row)
