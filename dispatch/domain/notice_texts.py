"""What notices to volunteers say (codes, credentials, aftercare): one place for the words."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Final

from dispatch.domain.credentials import CredentialKind


class NoticeKind(StrEnum):
    CODE = "code"
    CREDENTIAL_REMINDER = "credential_reminder"
    CREDENTIAL_EXPIRED = "credential_expired"
    CREDENTIAL_REVIEWED = "credential_reviewed"
    AFTERCARE = "aftercare"


_KIND_NAMES: Final = {
    CredentialKind.CPR_BLS: "CPR/BLS certificate",
    CredentialKind.PROFESSIONAL_LICENCE: "professional licence",
}


def code_text(code: str, minutes: int) -> tuple[str, str]:
    return (
        "Your sign-in code",
        f"{code} is your CPR volunteer code. It expires in {minutes} minutes. "
        "Do not share it: we never ask for it.",
    )


def reminder_text(kind: CredentialKind, expires_on: date, days: int) -> tuple[str, str]:
    name = _KIND_NAMES[kind]
    return (
        f"Your {name} expires in {days} days",
        f"Your {name} expires on {expires_on.isoformat()}. Upload a renewed one in the app "
        "before then to keep receiving alerts.",
    )


def expired_text(kind: CredentialKind, *, still_alertable: bool) -> tuple[str, str]:
    name = _KIND_NAMES[kind]
    if still_alertable:
        after = "Your other approved credential still holds; alerts continue under it."
    else:
        after = "You will not receive alerts until a renewed one is approved."
    return f"Your {name} has expired", f"Your {name} expired today. {after}"


def review_text(kind: CredentialKind, approved: bool, reason: str | None) -> tuple[str, str]:
    name = _KIND_NAMES[kind]
    if approved:
        return f"Your {name} was approved", "Thank you. You can now receive alerts."
    return f"Your {name} was not approved", f"Reason: {reason or 'not given'}"


def aftercare_text() -> tuple[str, str]:
    return (
        "Thank you for responding. How are you?",
        "Helping at a cardiac arrest can stay with you. Tell us how you are in the app, "
        "and ask to talk to someone if you would like to.",
    )
