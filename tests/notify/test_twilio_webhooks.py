"""Twilio's webhook forms parsed into typed receipts and replies, hostile and missing fields too."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify.twilio_webhooks import (
    CallStatus,
    GatherResult,
    InboundSms,
    Intent,
    SmsStatus,
    parse_call_status,
    parse_gather,
    parse_inbound_sms,
    parse_sms_status,
)

FIELDS = st.sampled_from(
    [
        "MessageSid",
        "SmsSid",
        "MessageStatus",
        "SmsStatus",
        "ErrorCode",
        "CallSid",
        "CallStatus",
        "AnsweredBy",
        "From",
        "Body",
        "Digits",
    ]
) | st.text(max_size=20)
FORMS = st.dictionaries(FIELDS, st.text(max_size=200), max_size=12)


# --- message status ----------------------------------------------------------------------


def test_a_delivered_receipt() -> None:
    receipt = parse_sms_status({"MessageSid": "SM1", "MessageStatus": "delivered"})
    assert receipt == SmsStatus(sid="SM1", status="delivered", error_code=None)
    assert receipt.delivered
    assert (receipt.undelivered, receipt.call_now, receipt.opted_out) == (False, False, False)


def test_the_older_sms_field_names_and_upper_case_status_are_understood() -> None:
    receipt = parse_sms_status({"SmsSid": "SM2", "SmsStatus": "UNDELIVERED", "ErrorCode": ""})
    assert receipt == SmsStatus(sid="SM2", status="undelivered", error_code=None)


@pytest.mark.parametrize(
    ("status", "code", "invalid", "opted_out", "call_now"),
    [
        ("undelivered", "30003", False, False, True),
        ("undelivered", "30005", True, False, True),
        ("failed", "21211", True, False, False),
        ("failed", "21610", False, True, True),
        ("undelivered", None, False, False, True),
        ("undelivered", "30007", False, False, False),
        ("sent", "30005", False, False, False),
        ("delivered", "21610", False, False, False),
    ],
)
def test_what_an_undelivered_receipt_means(
    status: str, code: str | None, invalid: bool, opted_out: bool, call_now: bool
) -> None:
    form = {"MessageSid": "SM3", "MessageStatus": status}
    if code is not None:
        form["ErrorCode"] = code
    receipt = parse_sms_status(form)
    assert (receipt.invalid_number, receipt.opted_out, receipt.call_now) == (
        invalid,
        opted_out,
        call_now,
    )


def test_a_receipt_with_no_fields_is_empty_and_means_nothing() -> None:
    receipt = parse_sms_status({})
    assert receipt == SmsStatus(sid="", status="", error_code=None)
    assert (receipt.delivered, receipt.undelivered, receipt.call_now) == (False, False, False)


# --- call status -------------------------------------------------------------------------


def test_a_call_status_with_answering_machine_detection() -> None:
    receipt = parse_call_status(
        {"CallSid": "CA1", "CallStatus": "Completed", "AnsweredBy": "machine_start"}
    )
    assert receipt == CallStatus(sid="CA1", status="completed", answered_by="machine_start")


def test_a_call_status_without_detection_has_no_answered_by() -> None:
    assert parse_call_status({"CallSid": "CA2", "AnsweredBy": ""}) == CallStatus(
        sid="CA2", status="", answered_by=None
    )


# --- inbound texts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "keyword", "intent"),
    [
        ("yes", "YES", Intent.ACCEPT),
        ("  Yes!  ", "YES", Intent.ACCEPT),
        ("ja.", "JA", Intent.ACCEPT),
        ("1", "1", Intent.ACCEPT),
        ("y I am coming", "Y", Intent.ACCEPT),
        ("No", "NO", Intent.DECLINE),
        ("2", "2", Intent.DECLINE),
        ("stop", "STOP", Intent.OPT_OUT),
        ("Unsubscribe", "UNSUBSCRIBE", Intent.OPT_OUT),
        ("start", "START", Intent.OPT_IN),
        ("UNSTOP", "UNSTOP", Intent.OPT_IN),
        ("maybe later", "MAYBE", Intent.UNKNOWN),
        ("yes. please", "YES.", Intent.UNKNOWN),
        ("", "", Intent.UNKNOWN),
        ("!!!", "", Intent.UNKNOWN),
    ],
)
def test_the_first_word_of_a_text_says_what_it_means(
    body: str, keyword: str, intent: Intent
) -> None:
    sms = parse_inbound_sms({"From": "+31600000000", "Body": body})
    assert sms == InboundSms(sender="+31600000000", keyword=keyword, intent=intent)


def test_a_text_with_no_sender_or_body_is_an_unknown_reply_from_nobody() -> None:
    sms = parse_inbound_sms({})
    assert sms == InboundSms(sender="", keyword="", intent=Intent.UNKNOWN)
    assert sms.logged_keyword is None


def test_the_timeline_keeps_only_the_start_of_a_long_first_word() -> None:
    sms = parse_inbound_sms({"Body": "A" * 5000})
    assert sms.keyword == "A" * 5000
    assert sms.logged_keyword == "A" * 16


# --- keypad answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "kept", "intent"),
    [
        ("1", "1", Intent.ACCEPT),
        (" 2 ", "2", Intent.DECLINE),
        ("3", "3", Intent.UNKNOWN),
        ("11", "11", Intent.UNKNOWN),
        ("", "", Intent.UNKNOWN),
        ("1234567", "1234", Intent.UNKNOWN),
    ],
)
def test_a_keypad_answer(digits: str, kept: str, intent: Intent) -> None:
    assert parse_gather({"Digits": digits}) == GatherResult(digits=kept, intent=intent)


def test_a_keypad_answer_with_no_digits_field_records_nothing() -> None:
    assert parse_gather({}) == GatherResult(digits="", intent=Intent.UNKNOWN)


# --- any form ----------------------------------------------------------------------------


@given(FORMS)
def test_parsing_never_raises_and_keeps_the_logged_parts_short(form: dict[str, str]) -> None:
    receipt = parse_sms_status(form)
    assert receipt.status == receipt.status.lower()
    assert receipt.error_code is None or receipt.error_code != ""
    parse_call_status(form)
    sms = parse_inbound_sms(form)
    assert sms.keyword == sms.keyword.upper()
    assert " " not in sms.keyword
    assert sms.logged_keyword is None or 0 < len(sms.logged_keyword) <= 16
    answer = parse_gather(form)
    assert len(answer.digits) <= 4
    assert answer.intent in (Intent.ACCEPT, Intent.DECLINE, Intent.UNKNOWN)
