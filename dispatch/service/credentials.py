"""Credentials: a volunteer declares one (and its scan), a supervisor reviews it.

A review decides the volunteer's eligibility in the same transaction: what the approved
credentials grant (``dispatch.domain.credentials.standing``) is written to the volunteer,
the reminders before the new expiry are queued, the volunteer is told the outcome, and
the supervisor's action goes to the audit log.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg

from dispatch.db.types import Conn
from dispatch.domain import credentials as rules
from dispatch.domain.credentials import CredentialKind, CredentialState
from dispatch.domain.notice_texts import NoticeKind, review_text
from dispatch.domain.time_zones import agency_time_zone
from dispatch.store import agencies as agency_store
from dispatch.store import audit, notices
from dispatch.store import credentials as credential_store
from dispatch.store import volunteer_events as event_store
from dispatch.store import volunteers as volunteer_store
from dispatch.store.audit import Actor
from dispatch.store.notices import NewNotice

NOTICE_LIFE: Final = timedelta(days=2)


class NotFound(Exception):
    pass


class Expired(Exception):
    """A credential past its expiry is neither declared nor approved."""


class WrongState(Exception):
    def __init__(self, state: CredentialState) -> None:
        super().__init__(f"the credential is {state.value}")
        self.state = state


async def _time_zone(conn: Conn, agency_id: UUID) -> ZoneInfo:
    """The agency's zone; a stored name unknown here refuses the change (never UTC)."""
    return agency_time_zone(agency_id, await agency_store.time_zone(conn, agency_id))


async def submit(
    pool: asyncpg.Pool,
    *,
    agency_id: UUID,
    volunteer_id: int,
    kind: CredentialKind,
    issuer: str,
    number: str | None,
    expires_on: date,
    now: datetime,
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        expires_at = rules.expiry_moment(expires_on, await _time_zone(conn, agency_id))
        if expires_at <= now:
            raise Expired
        created = await credential_store.insert(
            conn,
            agency_id=agency_id,
            volunteer_id=volunteer_id,
            kind=kind,
            issuer=issuer,
            number=number,
            expires_on=expires_on,
            expires_at=expires_at,
            now=now,
        )
        await event_store.record(
            conn,
            agency_id,
            volunteer_id,
            "credential_submitted",
            now,
            {"credential_id": created["credential_id"], "kind": kind.value},
        )
    return created


async def attach_scan(
    pool: asyncpg.Pool,
    *,
    volunteer_id: int,
    credential_id: int,
    media_type: str,
    data: bytes,
    now: datetime,
) -> dict[str, Any]:
    """Keep the (already checked) scan; only while the credential awaits review."""
    async with pool.acquire() as conn, conn.transaction():
        found = await credential_store.lock(conn, credential_id)
        if found is None or found.volunteer_id != volunteer_id:
            raise NotFound
        if found.state is not CredentialState.PENDING:
            raise WrongState(found.state)
        await credential_store.store_scan(
            conn, credential_id, found.agency_id, media_type, data, now
        )
        view = await credential_store.one(conn, credential_id)
    assert view is not None
    return view


async def review(
    pool: asyncpg.Pool,
    *,
    agency_id: UUID,
    credential_id: int,
    approve: bool,
    reason: str | None,
    supervisor_id: int,
    now: datetime,
) -> dict[str, Any]:
    """Approve (pending only) or reject (pending, or approved: withdrawn) a credential."""
    target = CredentialState.APPROVED if approve else CredentialState.REJECTED
    async with pool.acquire() as conn, conn.transaction():
        found = await credential_store.lock(conn, credential_id)
        if found is None or found.agency_id != agency_id:
            raise NotFound
        allowed = (
            (CredentialState.PENDING,)
            if approve
            else (CredentialState.PENDING, CredentialState.APPROVED)
        )
        if found.state not in allowed:
            raise WrongState(found.state)
        await volunteer_store.lock(conn, found.volunteer_id)
        zone = await _time_zone(conn, agency_id)
        expires_at = rules.expiry_moment(found.expires_on, zone)
        if approve and expires_at <= now:
            raise Expired
        view = await credential_store.review(
            conn,
            credential_id,
            state=target,
            reason=reason,
            supervisor_id=supervisor_id,
            expires_at=expires_at,
            now=now,
        )
        granted = rules.standing(await credential_store.approved(conn, found.volunteer_id))
        await credential_store.apply_standing(conn, found.volunteer_id, granted)
        await notices.queue(conn, _review_notices(found, approve, reason, zone, now), now=now)
        await audit.record(
            conn,
            agency_id=agency_id,
            actor=Actor(supervisor_id),
            action="credential_approved" if approve else "credential_rejected",
            target_type="credential",
            target_id=credential_id,
            at=now,
            before={"state": found.state.value, "volunteer_id": found.volunteer_id},
            after={
                "state": target.value,
                "volunteer_id": found.volunteer_id,
                "reason_given": reason is not None,
                "certified_until": granted.certified_until,
                "tier": granted.tier.value,
            },
        )
    return view


def _review_notices(
    found: credential_store.CredentialRow,
    approve: bool,
    reason: str | None,
    zone: ZoneInfo,
    now: datetime,
) -> list[NewNotice]:
    title, body = review_text(found.kind, approve, reason)
    told = NewNotice(
        agency_id=found.agency_id,
        volunteer_id=found.volunteer_id,
        kind=NoticeKind.CREDENTIAL_REVIEWED.value,
        available_at=now,
        expires_at=now + NOTICE_LIFE,
        title=title,
        body=body,
        data={"credential_id": found.credential_id, "state": "approved" if approve else "rejected"},
    )
    if not approve:
        return [told]
    plan = rules.reminder_plan(found.credential_id, found.expires_on, zone, now)
    return [
        told,
        *(
            NewNotice(
                agency_id=found.agency_id,
                volunteer_id=found.volunteer_id,
                kind=(
                    NoticeKind.CREDENTIAL_REMINDER.value
                    if step.days_before
                    else NoticeKind.CREDENTIAL_EXPIRED.value
                ),
                available_at=step.at,
                expires_at=step.at + NOTICE_LIFE,
                data={"credential_id": found.credential_id, "days_before": step.days_before},
                dedupe_key=step.key,
            )
            for step in plan
        ),
    ]
