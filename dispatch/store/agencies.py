"""Agencies, their integration keys and supervisors."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from dispatch.domain.models import AgencyPolicy
from dispatch.secrets import TokenKind, hash_token, new_token, token_matches


def _policy(row: Any) -> AgencyPolicy:
    return AgencyPolicy(
        agency_id=row["id"],
        radius_m=row["alert_radius_m"],
        limit=row["alert_limit"],
        position_max_age_s=row["position_max_age_s"],
        alert_ttl_s=row["alert_ttl_s"],
        time_zone=row["time_zone"],
    )


async def create_agency(
    conn: Any, *, name: str, radius_m: float | None = None, limit: int | None = None
) -> tuple[UUID, str]:
    """Create an agency with one integration key; returns (agency id, key), the key unstored."""
    agency_id = uuid4()
    key = new_token(TokenKind.AGENCY_KEY)
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO agencies (id, name, alert_radius_m, alert_limit)
            VALUES ($1, $2, coalesce($3, 500), coalesce($4, 7))
            """,
            agency_id,
            name,
            radius_m,
            limit,
        )
        await conn.execute(
            "INSERT INTO agency_keys (agency_id, key_hash, label) VALUES ($1, $2, 'initial')",
            agency_id,
            hash_token(key),
        )
    return agency_id, key


async def policy(conn: Any, agency_id: UUID) -> AgencyPolicy | None:
    row = await conn.fetchrow("SELECT * FROM agencies WHERE id = $1", agency_id)
    return _policy(row) if row else None


async def authenticate_key(conn: Any, agency_id: UUID, presented: str) -> AgencyPolicy | None:
    """The agency's policy when ``presented`` is one of its live keys, else None.

    Every live key is compared in constant time, so the answer's timing does not
    reveal which key (if any) came close.
    """
    rows = await conn.fetch(
        """
        SELECT k.key_hash, a.*
        FROM agencies a JOIN agency_keys k ON k.agency_id = a.id
        WHERE a.id = $1 AND k.revoked_at IS NULL
        """,
        agency_id,
    )
    matched = None
    for row in rows:
        if token_matches(presented, row["key_hash"]):
            matched = row
    return _policy(matched) if matched is not None else None


async def create_supervisor(conn: Any, *, agency_id: UUID, name: str) -> tuple[int, str]:
    token = new_token(TokenKind.SUPERVISOR)
    supervisor_id: int = await conn.fetchval(
        "INSERT INTO supervisors (agency_id, name, token_hash) VALUES ($1, $2, $3) RETURNING id",
        agency_id,
        name,
        hash_token(token),
    )
    return supervisor_id, token


async def supervisor_agency(conn: Any, presented: str) -> UUID | None:
    """The agency of the supervisor holding ``presented``, or None."""
    row = await conn.fetchrow(
        "SELECT agency_id, token_hash FROM supervisors WHERE token_hash = $1", hash_token(presented)
    )
    if row is None or not token_matches(presented, row["token_hash"]):
        return None
    agency: UUID = row["agency_id"]
    return agency
