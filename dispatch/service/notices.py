"""What a due notice says and which channel it takes, decided when it is sent.

Reminders are queued when a credential is approved, months ahead; whether one still
matters (the credential is still approved, no renewal has been approved since) and what
the expiry notice says (whether another credential still holds) is only known on the
day, so those words are written here, at sending time.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from dispatch.db.types import Conn
from dispatch.domain import credentials as rules
from dispatch.domain.credentials import CredentialState
from dispatch.domain.delivery_chain import Reach, Step, stand_down_step
from dispatch.domain.notice_texts import NoticeKind, expired_text, reminder_text
from dispatch.store import credentials as credential_store
from dispatch.store import volunteers as volunteer_store
from dispatch.store.notices import ClaimedNotice
from notify.ports import AlertMessage

_CREDENTIAL_KINDS = (NoticeKind.CREDENTIAL_REMINDER.value, NoticeKind.CREDENTIAL_EXPIRED.value)


def channel_for(notice: ClaimedNotice, configured: Collection[Step]) -> Step | None:
    """A code goes by text (the number is what it proves); anything else by push when the
    volunteer has a device, else by text; the log provider when nothing real is set up."""
    if notice.kind == NoticeKind.CODE.value:
        if Step.SMS in configured and notice.phone_e164:
            return Step.SMS
        return Step.LOG if Step.LOG in configured else None
    reach = Reach(
        has_device=bool(notice.devices),
        has_phone=notice.phone_e164 is not None,
        sms_allowed=notice.sms_allowed,
        voice_allowed=False,
        refused=notice.refused,
    )
    return stand_down_step(reach, configured=configured)


async def words(conn: Conn, notice: ClaimedNotice, now: datetime) -> tuple[str, str] | None:
    """(title, body) of the notice; None when it no longer matters (skipped)."""
    if notice.kind not in _CREDENTIAL_KINDS:
        return notice.title or "", notice.body or ""
    credential_id = int(notice.data["credential_id"])
    credential = await credential_store.get(conn, credential_id)
    if credential is None or credential.state is not CredentialState.APPROVED:
        return None
    if rules.superseded(
        credential.expires_on, await credential_store.later_approved(conn, credential_id)
    ):
        return None
    kind = credential.kind
    if notice.kind == NoticeKind.CREDENTIAL_REMINDER.value:
        return reminder_text(kind, credential.expires_on, int(notice.data["days_before"]))
    certified = (
        None
        if notice.volunteer_id is None
        else await volunteer_store.certified_until(conn, notice.volunteer_id)
    )
    still = certified is not None and certified > now
    return expired_text(kind, still_alertable=still)


def message(notice: ClaimedNotice, address: str, title: str, body: str) -> AlertMessage:
    data = {"type": "notice", "kind": notice.kind}
    data |= {k: str(v) for k, v in notice.data.items() if isinstance(v, str | int)}
    return AlertMessage(
        alert_id=str(notice.ref),
        incident_id=str(notice.data.get("incident_id", "")),
        volunteer_id=notice.volunteer_id or 0,
        role="notice",
        address=address,
        title=title,
        body=body,
        expires_at=notice.expires_at,
        language=notice.language,
        data=data,
        collapse_key=f"notice-{notice.ref}",
    )
