"""build_alert_twiml on its own, and TwilioVoiceNotifier against the Twilio REST fake."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import pytest

from notify.errors import ErrorCode
from notify.ports import Channel, DeliveryOutcome
from notify.twilio_voice import MAX_TWIML_CHARS, TwilioVoiceNotifier, build_alert_twiml
from tests.fakes.twilio_server import FakeTwilio, TwilioReply
from tests.notify._contracts import assert_valid_twilio_form
from tests.notify.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    assert_accepted,
    assert_send_times_out,
    fixed_clock,
    make_alert,
)

CALLS_PATH = "/2010-04-01/Accounts/{AccountSid}/Calls.json"
GATHER = "https://dispatch.example.org/v1/twilio/voice/{alert_id}/gather"
TO = "+15551230002"


def _parse(twiml: str) -> ET.Element:
    assert len(twiml) <= MAX_TWIML_CHARS
    return ET.fromstring(twiml.encode())


def test_twiml_reads_alert_twice_then_asks_for_one_digit() -> None:
    twiml = build_alert_twiml(make_alert(language="de"), "https://x.example/g?a=1&b=2")
    root = _parse(twiml)

    assert root.tag == "Response"
    (gather,) = root
    assert gather.tag == "Gather"
    assert gather.attrib["numDigits"] == "1"
    assert gather.attrib["action"] == "https://x.example/g?a=1&b=2"
    assert gather.attrib["method"] == "POST"
    says = gather.findall("Say")
    assert [s.attrib["language"] for s in says] == ["de-DE"] * 3
    text = "Cardiac arrest nearby. Hauptstrasse 5, 2nd floor. AED at the pharmacy."
    assert [s.text for s in says[:2]] == [text, text]
    assert says[2].text is not None
    assert "1" in says[2].text
    assert "2" in says[2].text
    assert "Drücken" in says[2].text
    assert gather.find("Pause") is not None


def test_hostile_text_stays_text() -> None:
    hostile = 'Go</Say><Dial>+19005550100</Dial><Say>&amp; "quoted" \x00\x07\x1b end'
    root = _parse(build_alert_twiml(make_alert(title="<Hangup/>", body=hostile), GATHER))

    assert [el.tag for el in root.iter()] == ["Response", "Gather", "Say", "Pause", "Say", "Say"]
    spoken = root.find("Gather/Say")
    assert spoken is not None
    assert spoken.text == '<Hangup/>. Go</Say><Dial>+19005550100</Dial><Say>&amp; "quoted" end'


def test_long_text_is_cut_to_twilio_limit() -> None:
    twiml = build_alert_twiml(make_alert(body="& " * 3000), GATHER)
    root = _parse(twiml)
    assert len(twiml) <= MAX_TWIML_CHARS
    spoken = root.find("Gather/Say")
    assert spoken is not None
    assert spoken.text is not None
    assert spoken.text.endswith("…")


@pytest.mark.parametrize(
    ("language", "locale", "prompt_locale"),
    [
        ("en", "en-US", "en-US"),
        ("fr", "fr-FR", "fr-FR"),
        ("pt-BR", "pt-BR", "en-US"),
        ("sv", "sv-SE", "en-US"),
        ('"><x', "en-US", "en-US"),
        ("xx", "en-US", "en-US"),
    ],
)
def test_language_selection(language: str, locale: str, prompt_locale: str) -> None:
    root = _parse(build_alert_twiml(make_alert(language=language), GATHER))
    says = root.findall("Gather/Say")
    assert [s.attrib["language"] for s in says] == [locale, locale, prompt_locale]


@pytest.fixture
async def voice(twilio_fake: FakeTwilio) -> AsyncIterator[TwilioVoiceNotifier]:
    async with await TwilioVoiceNotifier.create(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number="+15550008888",
        gather_url=GATHER,
        status_callback_url="https://dispatch.example.org/v1/twilio/call-status",
        base_url=twilio_fake.url,
        request_timeout_s=2.0,
        ring_timeout_s=20,
        clock=fixed_clock,
    ) as notifier:
        yield notifier


async def test_call_sends_inline_twiml(voice: TwilioVoiceNotifier, twilio_fake: FakeTwilio) -> None:
    alert = make_alert(address=TO, alert_id="al/1 2")
    result = await voice.send(alert, timeout_s=5)

    assert_accepted(result, Channel.VOICE, "CA")
    (sent,) = twilio_fake.posts("/Calls.json")
    assert sent.one("To") == TO
    assert sent.one("From") == "+15550008888"
    assert sent.one("Timeout") == "20"
    assert sent.one("StatusCallback") == "https://dispatch.example.org/v1/twilio/call-status"
    assert sent.form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert "Url" not in sent.form
    twiml = sent.one("Twiml")
    assert twiml == build_alert_twiml(
        alert, "https://dispatch.example.org/v1/twilio/voice/al%2F1%202/gather"
    )
    assert_valid_twilio_form(CALLS_PATH, sent.form, sent.path)


@pytest.mark.parametrize(
    ("reply", "outcome", "code"),
    [
        (
            TwilioReply(400, 21211, "Invalid 'To'"),
            DeliveryOutcome.PERMANENT,
            ErrorCode.INVALID_NUMBER,
        ),
        (
            TwilioReply(400, 13224, "Invalid number"),
            DeliveryOutcome.PERMANENT,
            ErrorCode.INVALID_NUMBER,
        ),
        (
            TwilioReply(400, 21215, "Geo permission"),
            DeliveryOutcome.PERMANENT,
            ErrorCode.CONFIG_ERROR,
        ),
        (TwilioReply(429, 20429, "Too many"), DeliveryOutcome.RETRYABLE, ErrorCode.RATE_LIMITED),
        (TwilioReply(503, None, "Unavailable"), DeliveryOutcome.RETRYABLE, ErrorCode.SERVER_ERROR),
    ],
)
async def test_call_error_table(
    voice: TwilioVoiceNotifier,
    twilio_fake: FakeTwilio,
    reply: TwilioReply,
    outcome: DeliveryOutcome,
    code: ErrorCode,
) -> None:
    twilio_fake.replies[TO] = reply
    result = await voice.send(make_alert(address=TO), timeout_s=5)
    assert (result.outcome, result.error_code) == (outcome, code)


async def test_stalled_call_create_hits_deadline(
    voice: TwilioVoiceNotifier, twilio_fake: FakeTwilio
) -> None:
    twilio_fake.replies[TO] = TwilioReply(delay_s=5)
    await assert_send_times_out(voice, TO, timeout_s=0.4)
