"""Refused CAD documents, kept size-capped for audit and listed for supervisors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn

KEEP_BYTES = 64 * 1024
"""How much of a refused document is kept; enough for any real incident document."""
KEEP_PER_AGENCY = 1000
"""Newest refused documents kept per agency (a misconfigured CAD refuses every document)."""


@dataclass(frozen=True, slots=True)
class RejectedDocument:
    agency_id: UUID
    received_at: datetime
    endpoint: str
    content_type: str
    status: int
    problem_type: str
    detail: str | None
    pointer: str | None
    body: bytes | None
    """The document as received; None when it was not read (too large)."""
    size_bytes: int | None = None
    """The declared size when the body was not read."""
    feed_name: str | None = None
    """The polled feed the document or item came from (None: posted to the API)."""


async def keep(conn: Conn, doc: RejectedDocument, *, keep_days: float, once: bool = False) -> None:
    """Store ``doc`` (first :data:`KEEP_BYTES`) and drop this agency's oldest beyond the limits.

    ``once``: skip a document already kept from the same feed (by digest), so a feed that
    refuses the same item every poll keeps it once instead of pushing everything else out.
    """
    body = doc.body
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO rejected_documents
                (agency_id, received_at, endpoint, content_type, status, problem_type, detail,
                 pointer, size_bytes, sha256, body, truncated, feed_name)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
            WHERE NOT ($14 AND EXISTS (
                SELECT 1 FROM rejected_documents
                WHERE agency_id = $1 AND feed_name IS NOT DISTINCT FROM $13 AND sha256 = $10))
            """,
            doc.agency_id,
            doc.received_at,
            doc.endpoint,
            doc.content_type[:200],
            doc.status,
            doc.problem_type,
            None if doc.detail is None else doc.detail[:2000],
            None if doc.pointer is None else doc.pointer[:500],
            len(body) if body is not None else doc.size_bytes,
            hashlib.sha256(body).digest() if body is not None else None,
            body[:KEEP_BYTES] if body is not None else None,
            body is not None and len(body) > KEEP_BYTES,
            doc.feed_name,
            once,
        )
        await conn.execute(
            """
            DELETE FROM rejected_documents
            WHERE agency_id = $1
              AND (received_at < $2
                   OR id < (SELECT min(id) FROM (SELECT id FROM rejected_documents
                                                 WHERE agency_id = $1
                                                 ORDER BY id DESC LIMIT $3) newest))
            """,
            doc.agency_id,
            doc.received_at - timedelta(days=keep_days),
            KEEP_PER_AGENCY,
        )


async def newest(
    conn: Conn, agency_id: UUID, *, limit: int, before_id: int
) -> list[dict[str, Any]]:
    """The agency's refused documents, newest first, as JSON-ready dicts (body as text)."""
    rows = await conn.fetch(
        """
        SELECT id, received_at, endpoint, content_type, status, problem_type, detail, pointer,
               size_bytes, sha256, body, truncated, feed_name
        FROM rejected_documents
        WHERE agency_id = $1 AND id < $2
        ORDER BY id DESC LIMIT $3
        """,
        agency_id,
        before_id,
        limit,
    )
    return [
        {
            "id": r["id"],
            "received_at": r["received_at"].isoformat(),
            "endpoint": r["endpoint"],
            "content_type": r["content_type"],
            "status": r["status"],
            "problem_type": r["problem_type"],
            "detail": r["detail"],
            "pointer": r["pointer"],
            "size_bytes": r["size_bytes"],
            "sha256": r["sha256"].hex() if r["sha256"] is not None else None,
            # Bytes that are not UTF-8 show as U+FFFD; sha256 identifies the original.
            "body": r["body"].decode("utf-8", "replace") if r["body"] is not None else None,
            "truncated": r["truncated"],
            "feed": r["feed_name"],
        }
        for r in rows
    ]
