"""The aiohttp transport writes each request body itself: it must be the SDK's, byte for byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify.fcm import MAX_TTL_S, FcmNotifier, encode_request
from tests.notify.conftest import make_alert

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@pytest.fixture(scope="module")
def notifiers(service_account_file: Path) -> dict[str, FcmNotifier]:
    # Never sends: only the SDK's message building and encoding are used.
    return {
        field: FcmNotifier(
            service_account_file=service_account_file,
            base_url="http://127.0.0.1:9",
            address_field=field,  # type: ignore[arg-type]
            transport="sdk",
        )
        for field in ("token", "fid")
    }


def _sdk_body(notifier: FcmNotifier, message: Any, ttl_s: int) -> bytes:
    built = notifier.build_message(message, ttl_s)
    return json.dumps(notifier._service._message_data(built, False)).encode()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    title=_text,
    body=_text,
    address=_text.filter(bool),
    data=st.dictionaries(_text, _text, max_size=4),
    critical=st.booleans(),
    collapse=st.none() | _text,
    ttl_s=st.integers(0, MAX_TTL_S),
    offset_h=st.integers(-12, 12),
    field=st.sampled_from(["token", "fid"]),
)
def test_body_is_what_the_sdk_would_send(
    notifiers: dict[str, FcmNotifier],
    title: str,
    body: str,
    address: str,
    data: dict[str, str],
    critical: bool,
    collapse: str | None,
    ttl_s: int,
    offset_h: int,
    field: str,
) -> None:
    expires = datetime(2026, 5, 4, 12, 3, 7, 250_000, tzinfo=UTC).astimezone(
        timezone(timedelta(hours=offset_h))
    )
    message = make_alert(
        title=title,
        body=body,
        address=address,
        data=data,
        critical=critical,
        collapse_key=collapse,
        expires_at=expires,
        alert_id="al-\u00e9-1",
    )
    assert encode_request(message, ttl_s, field) == _sdk_body(notifiers[field], message, ttl_s)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [({"address": ""}, "non-empty string"), ({"data": {"n": 1}}, "non-string")],
    ids=["blank-address", "non-string-data"],
)
def test_refuses_what_the_sdk_refuses(
    notifiers: dict[str, FcmNotifier], overrides: dict[str, Any], match: str
) -> None:
    message = make_alert(**overrides)
    with pytest.raises(ValueError, match=match):
        _sdk_body(notifiers["token"], message, 60)
    with pytest.raises(ValueError, match=match):
        encode_request(message, 60)
