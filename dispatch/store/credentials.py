"""Credentials, their scans and their review (migration 0011)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

import asyncpg

from dispatch.db.types import Conn
from dispatch.domain.credentials import Approved, CredentialKind, CredentialState, Standing

_COLUMNS = """
    c.id, c.volunteer_id, c.kind, c.issuer, c.number, c.expires_on, c.expires_at, c.state,
    c.reason, c.submitted_at, c.reviewed_at, c.reviewed_by,
    s.media_type, s.size_bytes
"""


@dataclass(frozen=True, slots=True)
class CredentialRow:
    credential_id: int
    agency_id: UUID
    volunteer_id: int
    kind: CredentialKind
    expires_on: date
    state: CredentialState


def view(row: asyncpg.Record) -> dict[str, Any]:
    """A credential as the API shows it (never the scan's bytes)."""
    return {
        "credential_id": row["id"],
        "volunteer_id": row["volunteer_id"],
        "kind": row["kind"],
        "issuer": row["issuer"],
        "number": row["number"],
        "expires_on": row["expires_on"].isoformat(),
        "expires_at": row["expires_at"].isoformat(),
        "state": row["state"],
        "reason": row["reason"],
        "submitted_at": row["submitted_at"].isoformat(),
        "reviewed_at": row["reviewed_at"].isoformat() if row["reviewed_at"] else None,
        "scan": (
            {"media_type": row["media_type"], "size_bytes": row["size_bytes"]}
            if row["media_type"]
            else None
        ),
    }


async def insert(
    conn: Conn,
    *,
    agency_id: UUID,
    volunteer_id: int,
    kind: CredentialKind,
    issuer: str,
    number: str | None,
    expires_on: date,
    expires_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """
        WITH c AS (
            INSERT INTO credentials (agency_id, volunteer_id, kind, issuer, number, expires_on,
                                     expires_at, submitted_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *
        )
        SELECT c.*, NULL::text AS media_type, NULL::integer AS size_bytes FROM c
        """,
        agency_id,
        volunteer_id,
        kind.value,
        issuer,
        number,
        expires_on,
        expires_at,
        now,
    )
    assert row is not None  # an INSERT … RETURNING returns its row
    return view(row)


async def of_volunteer(conn: Conn, volunteer_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM credentials c LEFT JOIN credential_scans s ON s.credential_id = c.id
        WHERE c.volunteer_id = $1 ORDER BY c.id DESC
        """,  # noqa: S608 - the interpolated part is a constant
        volunteer_id,
    )
    return [view(r) for r in rows]


async def for_agency(
    conn: Conn, agency_id: UUID, *, state: str | None, limit: int, before_id: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, v.display_name
        FROM credentials c LEFT JOIN credential_scans s ON s.credential_id = c.id
        JOIN volunteers v ON v.id = c.volunteer_id
        WHERE c.agency_id = $1 AND ($2::text IS NULL OR c.state = $2) AND c.id < $3
        ORDER BY c.id DESC LIMIT $4
        """,  # noqa: S608 - the interpolated part is a constant
        agency_id,
        state,
        before_id,
        limit,
    )
    return [{**view(r), "display_name": r["display_name"]} for r in rows]


_ONE: Final = "SELECT id, agency_id, volunteer_id, kind, expires_on, state FROM credentials"


async def lock(conn: Conn, credential_id: int) -> CredentialRow | None:
    return await _one(conn, credential_id, " FOR NO KEY UPDATE")


async def get(conn: Conn, credential_id: int) -> CredentialRow | None:
    """The credential as it stands, without a lock."""
    return await _one(conn, credential_id, "")


async def _one(conn: Conn, credential_id: int, suffix: str) -> CredentialRow | None:
    row = await conn.fetchrow(f"{_ONE} WHERE id = $1{suffix}", credential_id)
    return None if row is None else _credential_row(row)


def _credential_row(row: asyncpg.Record) -> CredentialRow:
    return CredentialRow(
        row["id"],
        row["agency_id"],
        row["volunteer_id"],
        CredentialKind(row["kind"]),
        row["expires_on"],
        CredentialState(row["state"]),
    )


async def review(
    conn: Conn,
    credential_id: int,
    *,
    state: CredentialState,
    reason: str | None,
    supervisor_id: int,
    expires_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    await conn.execute(
        """
        UPDATE credentials SET state = $2, reason = $3, reviewed_by = $4, reviewed_at = $5,
            expires_at = $6
        WHERE id = $1
        """,
        credential_id,
        state.value,
        reason,
        supervisor_id,
        now,
        expires_at,
    )
    found = await one(conn, credential_id)
    assert found is not None
    return found


async def one(conn: Conn, credential_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""
        SELECT {_COLUMNS} FROM credentials c LEFT JOIN credential_scans s ON s.credential_id = c.id
        WHERE c.id = $1
        """,  # noqa: S608 - the interpolated part is a constant
        credential_id,
    )
    return view(row) if row is not None else None


async def approved(conn: Conn, volunteer_id: int) -> list[Approved]:
    rows = await conn.fetch(
        "SELECT kind, expires_at FROM credentials WHERE volunteer_id = $1 AND state = 'approved'",
        volunteer_id,
    )
    return [Approved(CredentialKind(r["kind"]), r["expires_at"]) for r in rows]


async def apply_standing(conn: Conn, volunteer_id: int, standing: Standing) -> None:
    """What the approved credentials grant becomes the volunteer's eligibility."""
    await conn.execute(
        "UPDATE volunteers SET certified_until = $2, tier = $3, professional_until = $4"
        " WHERE id = $1",
        volunteer_id,
        standing.certified_until,
        standing.tier.value,
        standing.professional_until,
    )


async def later_approved(conn: Conn, credential_id: int) -> list[date]:
    """Expiry dates of other approved credentials of the same volunteer and kind."""
    rows = await conn.fetch(
        """
        SELECT o.expires_on FROM credentials c JOIN credentials o
            ON o.volunteer_id = c.volunteer_id AND o.kind = c.kind AND o.id <> c.id
        WHERE c.id = $1 AND o.state = 'approved'
        """,
        credential_id,
    )
    return [r["expires_on"] for r in rows]


async def store_scan(
    conn: Conn, credential_id: int, agency_id: UUID, media_type: str, data: bytes, now: datetime
) -> None:
    await conn.execute(
        """
        INSERT INTO credential_scans (credential_id, agency_id, media_type, size_bytes, sha256,
                                      content, uploaded_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (credential_id) DO UPDATE SET media_type = EXCLUDED.media_type,
            size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256,
            content = EXCLUDED.content, uploaded_at = EXCLUDED.uploaded_at
        """,
        credential_id,
        agency_id,
        media_type,
        len(data),
        hashlib.sha256(data).digest(),
        data,
        now,
    )


async def scan(conn: Conn, agency_id: UUID, credential_id: int) -> tuple[str, bytes] | None:
    row = await conn.fetchrow(
        "SELECT media_type, content FROM credential_scans WHERE agency_id = $1"
        " AND credential_id = $2",
        agency_id,
        credential_id,
    )
    return (row["media_type"], bytes(row["content"])) if row is not None else None
