"""Everything held about a volunteer, as one document; and erasing it.

Erasure keeps the response log's facts under a random pseudonym (see
``dispatch.store.volunteer_data.erase``), so incident timelines, metrics and reports are
the same numbers before and after; what identifies the person goes: name, number,
tokens and sessions, devices, position, credentials and their scans, feedback, notices,
their own timeline, and the sign-in codes kept for their number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import structlog

from dispatch.secrets import phone_hash
from dispatch.service import profile as profile_service
from dispatch.service.positions import PositionCache, PositionWriter
from dispatch.store import accounts as account_store
from dispatch.store import aftercare as aftercare_store
from dispatch.store import audit, volunteer_data
from dispatch.store import credentials as credential_store
from dispatch.store import notices as notice_store
from dispatch.store.audit import Actor

log = structlog.get_logger(__name__)


async def export(
    pool: asyncpg.Pool, volunteer_id: int, *, now: datetime, by: Actor | None = None
) -> dict[str, Any] | None:
    """The whole document; a supervisor's export (``by``) is audited in the same transaction."""
    async with pool.acquire() as conn, conn.transaction():
        row = await volunteer_data.profile(conn, volunteer_id)
        if row is None:
            return None
        document = {
            "exported_at": now.isoformat(),
            "profile": profile_service.view(row, now),
            "credentials": await credential_store.of_volunteer(conn, volunteer_id),
            "sessions": await account_store.sessions_of(conn, volunteer_id, now),
            **await volunteer_data.held_about(conn, volunteer_id),
            "feedback": await aftercare_store.feedback_of(conn, volunteer_id),
            "notices": await notice_store.of_volunteer(conn, volunteer_id),
            "supervisor_actions": await audit.about_volunteer(conn, volunteer_id),
        }
        if by is not None:
            await audit.record(
                conn,
                agency_id=row["agency_id"],
                actor=by,
                action="volunteer_exported",
                target_type="volunteer",
                target_id=volunteer_id,
                at=now,
            )
    return document


async def erase(
    pool: asyncpg.Pool,
    volunteer_id: int,
    *,
    cache: PositionCache,
    writer: PositionWriter,
    now: datetime,
) -> str | None:
    """Erase the account; returns the pseudonym its facts now carry (None: nothing to erase)."""
    cache.remove(volunteer_id)
    writer.forget(volunteer_id)
    async with pool.acquire() as conn, conn.transaction():
        erased = await volunteer_data.erase(conn, volunteer_id, now)
        if erased is None:
            return None
        if erased.phone_e164 is not None:
            await account_store.forget_phone(
                conn, erased.agency_id, phone_hash(erased.agency_id, erased.phone_e164)
            )
            await notice_store.forget_phone(conn, erased.agency_id, erased.phone_e164)
    log.info("volunteer_erased", agency_id=str(erased.agency_id), pseudonym_id=erased.pseudonym_id)
    return erased.pseudonym
