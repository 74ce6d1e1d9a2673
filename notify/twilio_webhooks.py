"""What Twilio posts back to us, parsed into typed receipts and replies.

Twilio calls four routes of ours: message status callbacks, inbound texts,
call status callbacks and keypad answers during an alert call. Their form
fields, status names, error codes and keywords are Twilio's; the service acts
on the values below. Parsing never raises: a missing or odd field reads as
empty or unknown (the signature check upstream decides whether a form is
Twilio's at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

SMS_STATUS_PATH: Final = "/v1/twilio/sms-status"
SMS_INBOUND_PATH: Final = "/v1/twilio/sms-inbound"
VOICE_STATUS_PATH: Final = "/v1/twilio/voice-status"
VOICE_GATHER_PATH: Final = "/v1/twilio/voice-gather/{alert_id}"

# Twilio's own opt-out and opt-in keywords (it also enforces them on its side).
STOP_WORDS: Final = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS: Final = frozenset({"START", "UNSTOP"})
ACCEPT_WORDS: Final = frozenset({"YES", "Y", "1", "JA", "OUI", "SI"})
DECLINE_WORDS: Final = frozenset({"NO", "N", "2", "NEE", "NON", "NEIN"})

OPTED_OUT_CODE: Final = "21610"
"""The recipient replied STOP: Twilio refuses further texts to the number."""
# Undelivered-message error codes after which a call is the next best thing at once.
_CALL_NOW_CODES: Final = frozenset({"30003", "30005", "30006", "30008", OPTED_OUT_CODE})
_INVALID_NUMBER_CODES: Final = frozenset({"30005", "21211", "21217"})
_UNDELIVERED: Final = frozenset({"undelivered", "failed"})

_MAX_KEYWORD: Final = 16
_MAX_DIGITS: Final = 4


def _field(form: Mapping[str, str], *names: str) -> str:
    for name in names:
        value = form.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


@dataclass(frozen=True, slots=True)
class SmsStatus:
    """A message status callback."""

    sid: str
    status: str
    """Twilio's status name, lower case (``queued``, ``sent``, ``delivered``, ``undelivered``…)."""
    error_code: str | None

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"

    @property
    def undelivered(self) -> bool:
        """The text did not reach the phone and will not."""
        return self.status in _UNDELIVERED

    @property
    def invalid_number(self) -> bool:
        return self.undelivered and self.error_code in _INVALID_NUMBER_CODES

    @property
    def opted_out(self) -> bool:
        return self.undelivered and self.error_code == OPTED_OUT_CODE

    @property
    def call_now(self) -> bool:
        """Undelivered for a reason (or none given) that makes a call worth placing at once."""
        return self.undelivered and (self.error_code is None or self.error_code in _CALL_NOW_CODES)


def parse_sms_status(form: Mapping[str, str]) -> SmsStatus:
    return SmsStatus(
        sid=_field(form, "MessageSid", "SmsSid"),
        status=_field(form, "MessageStatus", "SmsStatus").lower(),
        error_code=_field(form, "ErrorCode") or None,
    )


@dataclass(frozen=True, slots=True)
class CallStatus:
    """A call status callback."""

    sid: str
    status: str
    """Twilio's status name, lower case (``initiated``, ``ringing``, ``completed``…)."""
    answered_by: str | None
    """Set when answering-machine detection ran (``human``, ``machine_start``…)."""


def parse_call_status(form: Mapping[str, str]) -> CallStatus:
    return CallStatus(
        sid=_field(form, "CallSid"),
        status=_field(form, "CallStatus").lower(),
        answered_by=_field(form, "AnsweredBy") or None,
    )


class Intent(StrEnum):
    """What a volunteer's text or key press means."""

    ACCEPT = "accept"
    DECLINE = "decline"
    OPT_OUT = "opt_out"
    """STOP and friends: no more texts to this number."""
    OPT_IN = "opt_in"
    UNKNOWN = "unknown"


def _intent(word: str) -> Intent:
    if word in STOP_WORDS:
        return Intent.OPT_OUT
    if word in START_WORDS:
        return Intent.OPT_IN
    if word in ACCEPT_WORDS:
        return Intent.ACCEPT
    if word in DECLINE_WORDS:
        return Intent.DECLINE
    return Intent.UNKNOWN


@dataclass(frozen=True, slots=True)
class InboundSms:
    """A text from a volunteer's phone."""

    sender: str
    """The sending number as Twilio gives it (E.164); empty when missing."""
    keyword: str
    """The first word, upper case, trailing ``.``/``!`` dropped; empty for an empty text."""
    intent: Intent

    @property
    def logged_keyword(self) -> str | None:
        """The keyword as the timeline may keep it: capped, None when empty."""
        return self.keyword[:_MAX_KEYWORD] or None


def parse_inbound_sms(form: Mapping[str, str]) -> InboundSms:
    text = _field(form, "Body").strip().upper().rstrip(".!")
    word = text.split()[0] if text else ""
    return InboundSms(sender=_field(form, "From"), keyword=word, intent=_intent(word))


@dataclass(frozen=True, slots=True)
class GatherResult:
    """The keys pressed during an alert call: 1 accepts, 2 declines."""

    digits: str
    """What was pressed, capped for the timeline."""
    intent: Intent


def parse_gather(form: Mapping[str, str]) -> GatherResult:
    digits = _field(form, "Digits").strip()
    if digits == "1":
        intent = Intent.ACCEPT
    elif digits == "2":
        intent = Intent.DECLINE
    else:
        intent = Intent.UNKNOWN
    return GatherResult(digits=digits[:_MAX_DIGITS], intent=intent)
