"""Self-test alerts: a test incident of its own and one alert down the volunteer's real chain.

The incident is stored closed, as a test (``is_test``) from the source ``self_test``, so
nothing that follows open or real incidents (waves, the busy check, reports) sees it; the
alert has the role ``test``, which the daily budget does not count.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from uuid import UUID, uuid4

from dispatch.db.types import Conn

SOURCE = "self_test"
ROLE = "test"


async def recent(conn: Conn, volunteer_id: int, since: datetime) -> list[datetime]:
    rows = await conn.fetch(
        "SELECT created_at FROM alerts WHERE volunteer_id = $1 AND role = $2"
        " AND created_at > $3 ORDER BY created_at",
        volunteer_id,
        ROLE,
        since,
    )
    return [r["created_at"] for r in rows]


async def create(
    conn: Conn, *, agency_id: UUID, volunteer_id: int, now: datetime, expires_at: datetime
) -> tuple[UUID, UUID]:
    """(incident id, alert id) of a new self-test; its chain starts at the next outbox claim."""
    incident_id, alert_id = uuid4(), uuid4()
    await conn.execute(
        """
        INSERT INTO incidents (id, agency_id, source, source_incident_id, version_at,
            version_seq, content_hash, status, is_test, is_cardiac_arrest, call_type_code,
            place_type, received_at, report, state, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, 0, $6, 'closed', true, false, 'SELF_TEST', 'unknown',
                $5, '{"self_test": true}'::jsonb, 'closed', $5, $5)
        """,
        incident_id,
        agency_id,
        SOURCE,
        f"self-test-{alert_id}",
        now,
        hashlib.sha256(incident_id.bytes).digest(),
    )
    await conn.execute(
        """
        INSERT INTO alerts (id, agency_id, incident_id, volunteer_id, role, state, distance_m,
                            expires_at, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $7)
        """,
        alert_id,
        agency_id,
        incident_id,
        volunteer_id,
        ROLE,
        expires_at,
        now,
    )
    await conn.execute(
        "INSERT INTO outbox (agency_id, alert_id, channel, available_at, created_at)"
        " VALUES ($1, $2, 'auto', $3, $3)",
        agency_id,
        alert_id,
        now,
    )
    return incident_id, alert_id
