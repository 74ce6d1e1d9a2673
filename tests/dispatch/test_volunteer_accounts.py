"""Volunteers join and sign in by phone code: codes, sessions, refresh rotation, limits."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from dispatch.secrets import hash_token
from tests.dispatch.accounts_helpers import (
    MovableClock,
    code_for,
    codes_sent,
    sent,
    sign_in,
    sign_up,
    verify,
)
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import bearer


async def _signin(client: Any, agency: AgencyFixture, phone: str) -> Any:
    return await client.post(
        "/v1/volunteers/signin", json={"agency_id": str(agency.agency_id), "phone_e164": phone}
    )


async def _verify(client: Any, agency: AgencyFixture, phone: str, code: str) -> Any:
    return await client.post(
        "/v1/volunteers/verify",
        json={"agency_id": str(agency.agency_id), "phone_e164": phone, "code": code},
    )


async def test_signup_gives_a_session_and_the_tokens_are_stored_hashed(
    clocked: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    tokens = await sign_up(clocked, agency.agency_id, "+31611110001", "Anna", device="Pixel 8")
    assert tokens["access_token"].startswith("dva_")
    assert tokens["refresh_token"].startswith("dvr_")
    me = await clocked.get("/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status == 200
    profile = await me.json()
    assert profile["display_name"] == "Anna"
    assert profile["phone_e164"] == "+31611110001"
    assert profile["self_registered"] is True
    # Joined, but not alertable until a supervisor approves a credential.
    assert profile["alertable"] is False
    assert profile["not_alertable_because"] == ["no_approved_credential"]
    row = await db.fetchrow("SELECT * FROM volunteer_sessions")
    assert bytes(row["access_hash"]) == hash_token(tokens["access_token"])
    stored = " ".join(str(v) for r in await db.fetch("SELECT * FROM volunteer_sessions") for v in r)
    stored += " ".join(
        str(v) for r in await db.fetch("SELECT * FROM session_refresh_tokens") for v in r
    )
    assert tokens["access_token"] not in stored
    assert tokens["refresh_token"] not in stored
    sessions = await (
        await clocked.get("/v1/me/sessions", headers=bearer(tokens["access_token"]))
    ).json()
    assert [(s["device_label"], s["current"], s["state"]) for s in sessions["sessions"]] == [
        ("Pixel 8", True, "active")
    ]
    # The code text is wiped once sent, and the number is kept only hashed with the code.
    assert await db.fetchval("SELECT count(*) FROM volunteer_notices WHERE body IS NOT NULL") == 0
    assert await db.fetchval("SELECT count(*) FROM phone_codes WHERE state = 'used'") == 1


async def test_signup_for_a_known_number_answers_exactly_like_a_new_one(
    clocked: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """No account enumeration: same status, headers and body; the owner gets the code."""
    created = await clocked.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "Known", "phone_e164": "+31611110002"},
        headers=agency.supervisor_auth,
    )
    known_id = (await created.json())["volunteer_id"]
    answers = []
    for phone in ("+31611110002", "+31611110003"):
        resp = await clocked.post(
            "/v1/volunteers/signup",
            json={"agency_id": str(agency.agency_id), "display_name": "Eve", "phone_e164": phone},
        )
        headers = {k: v for k, v in resp.headers.items() if k not in ("Date",)}
        answers.append((resp.status, headers, await resp.read()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 202
    # The code went to the number's owner and signs them in (the name given is not taken).
    tokens = await verify(
        clocked, agency.agency_id, "+31611110002", await code_for(clocked, "+31611110002")
    )
    assert tokens["volunteer_id"] == known_id
    assert await db.fetchval("SELECT display_name FROM volunteers WHERE id = $1", known_id) == (
        "Known"
    )
    # Sign-in for a number without an account: the same answer, and nothing is sent.
    unknown = await _signin(clocked, agency, "+31611110009")
    assert (unknown.status, await unknown.read()) == (answers[0][0], answers[0][2])
    await code_for(clocked, "+31611110003")  # the notice worker has run since
    assert codes_sent(clocked, "+31611110009") == 0


async def test_five_wrong_codes_void_the_code_and_further_tries_are_held(
    clocked: Any, agency: AgencyFixture, db: asyncpg.Connection, caplog: Any
) -> None:
    phone = "+31611110004"
    tokens = await sign_up(clocked, agency.agency_id, phone)
    assert (await _signin(clocked, agency, phone)).status == 202
    code = await code_for(clocked, phone, after=1)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            resp = await _verify(clocked, agency, phone, wrong)
            assert resp.status == 401
            assert (await resp.json())["type"] == "/problems/invalid-code"
        # The right code no longer works: the number is held, and told how long.
        held = await _verify(clocked, agency, phone, code)
        assert held.status == 429
        assert 1 <= int(held.headers["Retry-After"]) <= 600
        assert held.content_type == "application/problem+json"
    logged = [r.msg.get("event") for r in caplog.records if isinstance(r.msg, dict)]
    assert "signin_code_voided" in logged
    assert "signin_code_held" in logged
    events = await db.fetch(
        "SELECT event FROM volunteer_events WHERE volunteer_id = $1 ORDER BY id",
        tokens["volunteer_id"],
    )
    names = [e["event"] for e in events]
    assert "signin_code_voided" in names
    assert "signin_attempt_held" in names
    # Asking for a new code (within the number's limits) makes verification possible again.
    fresh = await sign_in(clocked, agency.agency_id, phone)
    assert fresh["volunteer_id"] == tokens["volunteer_id"]


async def test_a_used_code_and_an_expired_code_fail(
    clocked: Any, clock: MovableClock, agency: AgencyFixture
) -> None:
    phone = "+31611110005"
    await sign_up(clocked, agency.agency_id, phone)
    code = await code_for(clocked, phone)
    again = await _verify(clocked, agency, phone, code)
    assert again.status == 401
    assert (await _signin(clocked, agency, phone)).status == 202
    late = await code_for(clocked, phone, after=1)
    clock.advance(minutes=10, seconds=1)
    expired = await _verify(clocked, agency, phone, late)
    assert expired.status == 401
    assert (await expired.json())["type"] == "/problems/invalid-code"


async def test_codes_per_number_and_per_client_are_limited(
    clocked: Any, agency: AgencyFixture
) -> None:
    phone = "+31611110006"
    await sign_up(clocked, agency.agency_id, phone)
    for _ in range(4):
        assert (await _signin(clocked, agency, phone)).status == 202
    limited = await _signin(clocked, agency, phone)
    assert limited.status == 429
    assert 3000 <= int(limited.headers["Retry-After"]) <= 3600
    # Ten code requests from one client (whatever the numbers), then 429.
    statuses = [(await _signin(clocked, agency, f"+3161222000{n}")).status for n in range(6)]
    assert statuses == [202] * 4 + [429] * 2, statuses


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_device(
    clocked: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    phone = "+31611110007"
    first = await sign_up(clocked, agency.agency_id, phone, device="phone")
    other = await sign_in(clocked, agency.agency_id, phone)
    resp = await clocked.put(
        "/v1/me/devices",
        json={"fcm_token": "f" * 40, "platform": "android"},
        headers=bearer(first["access_token"]),
    )
    assert resp.status == 200
    rotated = await clocked.post(
        "/v1/volunteers/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status == 200
    second = await rotated.json()
    assert second["session_id"] == first["session_id"]
    assert second["refresh_token"] != first["refresh_token"]
    # The access token of the previous generation stops at once.
    assert (await clocked.get("/v1/me", headers=bearer(first["access_token"]))).status == 401
    assert (await clocked.get("/v1/me", headers=bearer(second["access_token"]))).status == 200
    # The old refresh token again: someone else holds the chain. The whole device is out.
    reused = await clocked.post(
        "/v1/volunteers/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status == 401
    assert (await reused.json())["type"] == "/problems/refresh-token-reused"
    assert (await clocked.get("/v1/me", headers=bearer(second["access_token"]))).status == 401
    latest = await clocked.post(
        "/v1/volunteers/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert latest.status == 401
    assert await db.fetchval("SELECT active FROM devices") is False
    # Other devices of the same volunteer are not touched.
    listed = await (
        await clocked.get("/v1/me/sessions", headers=bearer(other["access_token"]))
    ).json()
    states = {s["session_id"]: (s["state"], s["revoked_reason"]) for s in listed["sessions"]}
    assert states[first["session_id"]] == ("revoked", "refresh_reuse")
    assert states[other["session_id"]] == ("active", None)


async def test_sessions_are_listed_and_revoked_one_by_one(
    clocked: Any, agency: AgencyFixture
) -> None:
    first = await sign_up(clocked, agency.agency_id, "+31611110008", device="tablet")
    second = await sign_in(clocked, agency.agency_id, "+31611110008")
    stranger = await sign_up(clocked, agency.agency_id, "+31611110010")
    auth = bearer(second["access_token"])
    # Another volunteer's session id is not found, and stays live.
    refused = await clocked.delete(
        f"/v1/me/sessions/{first['session_id']}", headers=bearer(stranger["access_token"])
    )
    assert refused.status == 404
    assert (await clocked.get("/v1/me", headers=bearer(first["access_token"]))).status == 200
    assert (
        await clocked.delete(f"/v1/me/sessions/{first['session_id']}", headers=auth)
    ).status == 204
    assert (await clocked.get("/v1/me", headers=bearer(first["access_token"]))).status == 401
    again = await clocked.delete(f"/v1/me/sessions/{first['session_id']}", headers=auth)
    assert again.status == 404
    dead = await clocked.post(
        "/v1/volunteers/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert dead.status == 401


async def test_an_expired_access_token_says_so_and_refresh_renews_it(
    clocked: Any, clock: MovableClock, agency: AgencyFixture
) -> None:
    tokens = await sign_up(clocked, agency.agency_id, "+31611110011")
    clock.advance(minutes=15, seconds=1)
    resp = await clocked.get("/v1/me", headers=bearer(tokens["access_token"]))
    assert resp.status == 401
    assert (await resp.json())["type"] == "/problems/token-expired"
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    renewed = await clocked.post(
        "/v1/volunteers/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert renewed.status == 200
    fresh = await renewed.json()
    assert (await clocked.get("/v1/me", headers=bearer(fresh["access_token"]))).status == 200


async def test_supervisor_issued_tokens_keep_working(clocked: Any, agency: AgencyFixture) -> None:
    created = await clocked.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "Old style"},
        headers=agency.supervisor_auth,
    )
    token = (await created.json())["token"]
    assert token.startswith("dvt_")
    me = await clocked.get("/v1/me", headers=bearer(token))
    assert me.status == 200
    assert (await me.json())["alertable"] is True
    fix = await clocked.put(
        "/v1/me/location", json={"lat": 52.37, "lon": 4.89}, headers=bearer(token)
    )
    assert fix.status == 204
    listed = await (await clocked.get("/v1/me/sessions", headers=bearer(token))).json()
    assert listed == {"sessions": []}
    assert sent(clocked) == []


async def test_an_eleventh_device_signs_the_oldest_out(
    clocked: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    from datetime import UTC, datetime, timedelta

    from dispatch.store import accounts as account_store

    first = await sign_up(clocked, agency.agency_id, "+31611110012")
    for _ in range(9):
        await account_store.create_session(
            db,
            agency_id=agency.agency_id,
            volunteer_id=first["volunteer_id"],
            device_label=None,
            now=datetime.now(UTC),
            access_ttl=timedelta(minutes=15),
            refresh_ttl=timedelta(days=60),
        )
    latest = await sign_in(clocked, agency.agency_id, "+31611110012")
    listed = await (
        await clocked.get("/v1/me/sessions", headers=bearer(latest["access_token"]))
    ).json()
    states = [(s["session_id"], s["state"], s["revoked_reason"]) for s in listed["sessions"]]
    assert len(states) == 11
    assert states[-1] == (first["session_id"], "revoked", "too_many_sessions")
    assert [s for s in states if s[1] == "active"] == [s for s in states[:10]]
    assert (await clocked.get("/v1/me", headers=bearer(first["access_token"]))).status == 401
