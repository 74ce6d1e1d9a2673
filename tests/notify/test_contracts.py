"""The contract checks used by the provider tests reject what they should (not vacuous)."""

from __future__ import annotations

import pytest

from tests.notify._contracts import assert_valid_fcm_message, assert_valid_twilio_form

MESSAGES_PATH = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
URL_PATH = "/2010-04-01/Accounts/AC" + "0" * 32 + "/Messages.json"


def test_fcm_contract_accepts_sdk_shape_and_rejects_unknown_fields() -> None:
    good = {"token": "t", "android": {"priority": "high", "ttl": "60s", "collapse_key": "c"}}
    assert_valid_fcm_message(good)
    with pytest.raises(AssertionError, match="priorityy"):
        assert_valid_fcm_message({"token": "t", "android": {"priorityy": "high"}})
    with pytest.raises(AssertionError, match="LOUD"):
        assert_valid_fcm_message({"token": "t", "android": {"priority": "loud"}})
    with pytest.raises(AssertionError):
        assert_valid_fcm_message({"token": "t", "data": {"n": 1}})


@pytest.mark.parametrize(
    ("form", "match"),
    [
        ({"To": ["+1"], "Body": ["x"], "Frm": ["+2"]}, "unknown"),
        ({"Body": ["x"], "From": ["+2"]}, "required"),
        ({"To": ["+1"], "Body": ["x"]}, "exactly one"),
        ({"To": ["+1"], "Body": ["x"], "From": ["+2"], "ValidityPeriod": ["36001"]}, "Validity"),
        ({"To": ["+1"], "Body": ["x"], "MessagingServiceSid": ["MG1"]}, "MessagingServiceSid"),
    ],
)
def test_twilio_contract_rejects(form: dict[str, list[str]], match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        assert_valid_twilio_form(MESSAGES_PATH, form, URL_PATH)
