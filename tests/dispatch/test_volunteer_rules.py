"""The pure rules behind volunteer accounts: codes, credentials, scans, tiers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.domain.credentials import (
    Approved,
    CredentialKind,
    expiry_moment,
    reminder_plan,
    standing,
    superseded,
)
from dispatch.domain.eligibility import Tier, VolunteerProfile
from dispatch.domain.phone_codes import (
    CODE_TTL,
    CodeState,
    StoredCode,
    Verdict,
    judge,
    phone_wait_s,
)
from dispatch.domain.scans import ScanRefused, check_scan, sniff
from dispatch.secrets import code_matches, hash_code, new_code
from tests.dispatch import scan_files

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def test_codes_per_number_five_an_hour_and_ten_a_day() -> None:
    assert phone_wait_s([T0 - timedelta(minutes=m) for m in range(4)], T0) == 0
    five = [T0 - timedelta(minutes=10 * m) for m in range(5)]
    assert phone_wait_s(five, T0) == pytest.approx(20 * 60)
    # Ten spread over the day: the day's window holds until the oldest is 24 h old.
    ten = [T0 - timedelta(hours=2 * m + 1) for m in range(10)]
    assert phone_wait_s(ten, T0) == pytest.approx(5 * 3600)
    assert phone_wait_s([T0 - timedelta(days=2)] * 20, T0) == 0


@pytest.mark.parametrize(
    ("state", "attempts", "expires_in_s", "matches", "verdict"),
    [
        (CodeState.LIVE, 0, 60, True, Verdict.ACCEPTED),
        (CodeState.LIVE, 0, 60, False, Verdict.WRONG),
        (CodeState.LIVE, 3, 60, False, Verdict.WRONG),
        (CodeState.LIVE, 4, 60, False, Verdict.VOIDED_NOW),
        (CodeState.LIVE, 0, 0, True, Verdict.WRONG),
        (CodeState.USED, 1, 60, True, Verdict.WRONG),
        (CodeState.SUPERSEDED, 0, 60, True, Verdict.WRONG),
        (CodeState.VOIDED, 5, 60, True, Verdict.HELD),
        (CodeState.VOIDED, 5, 0, True, Verdict.WRONG),
    ],
)
def test_judging_an_attempt(
    state: CodeState, attempts: int, expires_in_s: int, matches: bool, verdict: Verdict
) -> None:
    code = StoredCode(state, attempts, T0 + timedelta(seconds=expires_in_s))
    assert judge(code, matches=matches, now=T0) is verdict
    assert judge(None, matches=True, now=T0) is Verdict.WRONG


@given(st.binary(min_size=16, max_size=16))
def test_codes_are_six_digits_and_only_the_code_matches(salt: bytes) -> None:
    code = new_code()
    assert len(code) == 6
    assert code.isdigit()
    stored = hash_code(salt, code)
    assert code_matches(code, salt, stored)
    assert not code_matches(f"{(int(code) + 1) % 10**6:06d}", salt, stored)
    assert timedelta(minutes=10) == CODE_TTL


def test_expiry_is_local_midnight_in_summer_and_winter() -> None:
    # An unknown zone never gets this far: see test_time_zones and test_stored_time_zone.
    assert expiry_moment(date(2027, 6, 30), AMSTERDAM) == datetime(2027, 6, 29, 22, 0, tzinfo=UTC)
    assert expiry_moment(date(2027, 1, 15), AMSTERDAM) == datetime(2027, 1, 14, 23, 0, tzinfo=UTC)


def test_standing_follows_the_approved_credentials() -> None:
    assert standing([]).certified_until is None
    cpr = Approved(CredentialKind.CPR_BLS, T0 + timedelta(days=100))
    licence = Approved(CredentialKind.PROFESSIONAL_LICENCE, T0 + timedelta(days=10))
    got = standing([cpr, licence])
    assert (got.certified_until, got.tier, got.professional_until) == (
        cpr.expires_at,
        Tier.PROFESSIONAL,
        licence.expires_at,
    )
    # The licence lapses before the CPR certificate: professional until then, lay after.
    profile = VolunteerProfile(
        1, tier=got.tier, certified_until=got.certified_until, professional_until=licence.expires_at
    )
    assert profile.tier_at(T0) is Tier.PROFESSIONAL
    assert profile.tier_at(licence.expires_at) is Tier.LAY
    asked_lay = VolunteerProfile(1, tier=Tier.PROFESSIONAL, tier_requested=Tier.LAY)
    assert asked_lay.tier_at(T0) is Tier.LAY


def test_reminders_at_nine_local_30_and_7_days_before_and_on_the_day() -> None:
    plan = reminder_plan(5, date(2027, 6, 30), AMSTERDAM, T0)
    assert [(p.key, p.at, p.days_before) for p in plan] == [
        ("credential:5:30d", datetime(2027, 5, 31, 7, 0, tzinfo=UTC), 30),
        ("credential:5:7d", datetime(2027, 6, 23, 7, 0, tzinfo=UTC), 7),
        ("credential:5:expired", datetime(2027, 6, 30, 7, 0, tzinfo=UTC), 0),
    ]
    late = reminder_plan(5, date(2026, 12, 10), ZoneInfo("UTC"), T0)
    assert [p.days_before for p in late] == [7, 0]
    assert superseded(date(2027, 6, 30), [date(2029, 6, 30)])
    assert not superseded(date(2027, 6, 30), [date(2027, 1, 1)])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (scan_files.pdf(), "application/pdf"),
        (scan_files.png(), "image/png"),
        (scan_files.jpeg(), "image/jpeg"),
        (scan_files.elf_with_pdf_header(), None),
        (b"MZ" + scan_files.pdf(), None),
        (scan_files.png()[:-1], None),
        (b"GIF89a" + b"\x00" * 20, None),
    ],
)
def test_types_are_read_from_the_bytes_whole(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


def test_a_declared_type_must_match_the_bytes() -> None:
    assert check_scan("image/png", scan_files.png()) == "image/png"
    with pytest.raises(ScanRefused) as refused:
        check_scan("image/jpeg", scan_files.png())
    assert (refused.value.status, "image/png" in refused.value.detail) == (422, True)
    with pytest.raises(ScanRefused) as refused:
        check_scan("application/octet-stream", scan_files.pdf())
    assert refused.value.status == 415
    with pytest.raises(ScanRefused) as refused:
        check_scan("application/pdf", scan_files.pdf_with_script())
    assert refused.value.status == 422


def test_session_tokens_and_codes_never_reach_the_logs() -> None:
    from dispatch.logging_setup import REDACTED, redact_processor

    access, refresh = "dva_" + "a1B2" * 8, "dvr_" + "c3D4" * 8
    event = redact_processor(
        None,
        "info",
        {
            "event": f"oops {access} and {refresh}",
            "code": "042917",
            "access_token": access,
            "refresh_token": refresh,
        },
    )
    assert access not in str(event)
    assert refresh not in str(event)
    assert event["code"] == REDACTED
