"""Aftercare: a follow-up to everyone who accepted, once the incident is over; their feedback;
supervisors' debrief requests.

The follow-up is queued in the transaction that closes the incident (push, else text,
through the notice worker), once per alert. A volunteer who asks to talk to someone
opens a debrief request that the agency's supervisors see until one marks it handled.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import asyncpg

from dispatch.db.types import Conn
from dispatch.domain.notice_texts import NoticeKind, aftercare_text
from dispatch.service.events import EventBuffer
from dispatch.store import aftercare as aftercare_store
from dispatch.store import audit, notices
from dispatch.store import volunteer_events as event_store
from dispatch.store.audit import Actor
from dispatch.store.notices import NewNotice

FOLLOW_UP_LIFE: Final = timedelta(days=3)


class NotFound(Exception):
    pass


async def follow_up(conn: Conn, agency_id: UUID, incident_id: UUID, events: EventBuffer) -> int:
    """Queue a follow-up for each volunteer who accepted; call where the incident ends."""
    now = events.now
    title, body = aftercare_text()
    queued = await notices.queue(
        conn,
        [
            NewNotice(
                agency_id=agency_id,
                volunteer_id=volunteer_id,
                kind=NoticeKind.AFTERCARE.value,
                available_at=now,
                expires_at=now + FOLLOW_UP_LIFE,
                title=title,
                body=body,
                # The push's own alert_id is the notice's; this names the alert to answer.
                data={"about_alert_id": str(alert_id), "incident_id": str(incident_id)},
                dedupe_key=f"aftercare:{alert_id}",
            )
            for alert_id, volunteer_id in await aftercare_store.responders(conn, incident_id)
        ],
        now=now,
    )
    if queued:
        events.add("aftercare_queued", volunteers=queued)
    return queued


async def feedback(
    pool: asyncpg.Pool,
    *,
    volunteer_id: int,
    alert_id: UUID,
    text: str | None,
    wants_to_talk: bool,
    now: datetime,
) -> int:
    async with pool.acquire() as conn, conn.transaction():
        found = await aftercare_store.alert_of(conn, alert_id, volunteer_id)
        if found is None:
            raise NotFound
        agency_id, _ = found
        feedback_id = await aftercare_store.add_feedback(
            conn,
            agency_id=agency_id,
            volunteer_id=volunteer_id,
            alert_id=alert_id,
            text=text,
            wants_to_talk=wants_to_talk,
            now=now,
        )
        await event_store.record(
            conn,
            agency_id,
            volunteer_id,
            "debrief_requested" if wants_to_talk else "feedback_given",
            now,
            {"alert_id": str(alert_id), "feedback_id": feedback_id},
        )
    return feedback_id


async def handled(
    pool: asyncpg.Pool,
    *,
    agency_id: UUID,
    request_id: int,
    supervisor_id: int,
    note: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """Mark an open debrief request handled (audited); None when the agency has none open
    under this id. The note stays on the request, not in the append-only audit log."""
    async with pool.acquire() as conn, conn.transaction():
        done = await aftercare_store.mark_handled(
            conn, agency_id, request_id, supervisor_id=supervisor_id, note=note, now=now
        )
        if done is None:
            return None
        await audit.record(
            conn,
            agency_id=agency_id,
            actor=Actor(supervisor_id),
            action="debrief_handled",
            target_type="debrief_request",
            target_id=request_id,
            at=now,
            before={"handled": False, "volunteer_id": done["volunteer_id"]},
            after={
                "handled": True,
                "volunteer_id": done["volunteer_id"],
                "note_given": note is not None,
            },
        )
    return done
