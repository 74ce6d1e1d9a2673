"""Vendor-neutral helpers in notify.errors."""

from __future__ import annotations

import pytest

from notify.errors import ErrorCode, classify_twilio, parse_retry_after, redact


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, 20429, (False, ErrorCode.RATE_LIMITED)),
        (429, None, (False, ErrorCode.RATE_LIMITED)),
        (400, 21610, (True, ErrorCode.SMS_OPT_OUT)),
        (400, 21211, (True, ErrorCode.INVALID_NUMBER)),
        (0, 30005, (True, ErrorCode.INVALID_NUMBER)),
        (0, 30006, (True, ErrorCode.LANDLINE)),
        (401, 20003, (True, ErrorCode.AUTH_ERROR)),
        (403, None, (True, ErrorCode.AUTH_ERROR)),
        (502, None, (False, ErrorCode.SERVER_ERROR)),
        (404, 20404, (True, ErrorCode.PROVIDER_ERROR)),
    ],
)
def test_classify_twilio(status: int, code: int | None, expected: tuple[bool, ErrorCode]) -> None:
    assert classify_twilio(status, code) == expected


def test_parse_retry_after() -> None:
    assert parse_retry_after({"Retry-After": " 12 "}) == 12.0
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412500) == 10
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412500) == 0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


def test_redact_phone_numbers() -> None:
    assert (
        redact("The 'To' number +1 (555) 123-0001 is invalid")
        == "The 'To' number <redacted> is invalid"
    )
    assert redact("x" * 1000, limit=10) == "x" * 10
    assert redact("code 21211") == "code 21211"
