"""Logs never carry phone numbers, tokens or exact coordinates (ARCHITECTURE invariant 8)."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from dispatch.logging_setup import REDACTED, configure_logging, redact_processor, redact_text
from dispatch.secrets import TokenKind, new_token


def _render(**event: object) -> dict[str, object]:
    return redact_processor(None, "info", dict(event))


@pytest.mark.parametrize(
    "key",
    [
        "authorization",
        "token",
        "device_token",
        "phone",
        "phone_e164",
        "api_key",
        "secret",
        "endpoint",
        "p256dh",
        "auth",
        "subscription",
    ],
)
def test_secret_keys_are_masked(key: str) -> None:
    """Values under secret-looking keys are replaced whatever they look like."""
    assert _render(**{key: "anything at all"})[key] == REDACTED


def test_coordinates_are_coarsened_to_about_a_kilometre() -> None:
    """lat/lon keep two decimals: enough for an operator, not enough to find a door."""
    out = _render(lat=52.373123, lon=4.892612, latitude=-33.86785, lng=151.20732)
    assert out == {"lat": 52.37, "lon": 4.89, "latitude": -33.87, "lng": 151.21}


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("call +31 6 12345678 now", "12345678"),
        ("sms to +14155550123 failed", "4155550123"),
        ("national 0612345678", "0612345678"),
        ("header Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("patient at 52.373123, 4.892612", "52.373123"),
    ],
)
def test_free_text_is_scrubbed(text: str, leak: str) -> None:
    """Phone numbers, bearer tokens and coordinate pairs inside messages are removed."""
    assert leak not in redact_text(text)


def test_own_tokens_are_recognised_anywhere() -> None:
    """Our token formats are masked even in free text or nested structures."""
    token = new_token(TokenKind.VOLUNTEER)
    out = _render(event=f"bad token {token}", nested={"list": [f"x {token}"]})
    assert token not in json.dumps(out)


def test_timestamps_and_ids_stay_readable() -> None:
    """Redaction must not destroy what operators need: times, ids, counts."""
    text = "at 2026-11-26 15:16:15 incident 42 alert 3c5540b1-fa0c-4f4b-a01d-960c557a6d28"
    assert redact_text(text) == text


def test_configured_pipeline_redacts_structlog_and_stdlib_lines() -> None:
    """Both structlog calls and stdlib logging (aiohttp, asyncpg) pass through redaction."""
    stream = io.StringIO()
    configure_logging(log_format="json", level="info", stream=stream)
    try:
        structlog.get_logger("t").info("sms", phone="+31612345678", lat=52.3731234, lon=4.8926)
        logging.getLogger("other").warning("calling +31612345678 at 52.3731234, 4.8926123")
    finally:
        configure_logging(log_format="json", level="info")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["phone"] == REDACTED
    assert lines[0]["lat"] == 52.37
    assert "+31612345678" not in stream.getvalue()
    assert "52.3731234" not in stream.getvalue()
