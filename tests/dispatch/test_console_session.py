"""The console's session: sign-in, cookie flags, CSRF, idle expiry, sign-out; the live board,
its event stream and an incident's scene, through the app in this process."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dispatch.config import Settings
from dispatch.secrets import hash_token
from dispatch.store import agencies as agency_store
from dispatch.web.app import create_app
from dispatch.web.auth import CONSOLE_COOKIE, CSRF_HEADER
from dispatch.web.handlers_console import CONTENT_SECURITY_POLICY
from tests.dispatch.accounts_helpers import MovableClock
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import (
    CENTRE,
    boards,
    incident,
    new_volunteer,
    offset,
    wait_until,
)

pytestmark = pytest.mark.storage


async def _sign_in(client: Any, token: str) -> tuple[dict[str, str], str]:
    """(cookie header, CSRF token) of a fresh console session."""
    resp = await client.post("/console/session", json={"token": token})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    secret = resp.cookies[CONSOLE_COOKIE].value
    return {"Cookie": f"{CONSOLE_COOKIE}={secret}"}, body["csrf_token"]


async def test_sign_in_sets_a_strict_http_only_cookie_stored_hashed(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    resp = await client.post("/console/session", json={"token": agency.supervisor_token})
    assert resp.status == 201
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "SameSite=Strict" in header
    assert "Secure" not in header  # the public URL is not https here
    assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    secret = resp.cookies[CONSOLE_COOKIE].value
    assert secret.startswith("dcs_")
    stored = await db.fetch("SELECT token_hash FROM console_sessions")
    assert [r["token_hash"] for r in stored] == [hash_token(secret)]
    body = await resp.json()
    assert body["agency_id"] == str(agency.agency_id)
    assert secret not in json.dumps(body)


async def test_cookie_is_secure_behind_an_https_public_url(
    settings: Settings, aiohttp_client: Any, agency: AgencyFixture
) -> None:
    client = await aiohttp_client(
        create_app(settings.with_overrides(public_base_url="https://dispatch.example"))
    )
    resp = await client.post("/console/session", json={"token": agency.supervisor_token})
    assert resp.status == 201
    assert "Secure" in resp.headers["Set-Cookie"]


@pytest.mark.parametrize("token", ["dsv_wrong", "dak_x", "", "x" * 600])
async def test_a_wrong_token_signs_nobody_in(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, token: str
) -> None:
    resp = await client.post("/console/session", json={"token": token})
    assert resp.status in (401, 422)
    assert resp.content_type == "application/problem+json"
    assert CONSOLE_COOKIE not in resp.cookies
    assert await db.fetchval("SELECT count(*) FROM console_sessions") == 0


async def test_the_cookie_reads_the_api_and_changes_need_the_csrf_token(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    cookie, csrf = await _sign_in(client, agency.supervisor_token)
    settings_url = f"/v1/agencies/{agency.agency_id}/settings"
    resp = await client.get(settings_url, headers=cookie)
    assert resp.status == 200
    before = await db.fetchval("SELECT intake_rate_per_min FROM agencies")
    resp = await client.patch(settings_url, json={"intake_rate_per_min": 5}, headers=cookie)
    assert resp.status == 403
    assert (await resp.json())["type"].endswith("csrf-token-missing")
    wrong = {**cookie, CSRF_HEADER: csrf[:-1] + ("0" if csrf[-1] != "0" else "1")}
    refused = await client.patch(settings_url, json={"intake_rate_per_min": 5}, headers=wrong)
    assert refused.status == 403
    assert await db.fetchval("SELECT intake_rate_per_min FROM agencies") == before
    ok = {**cookie, CSRF_HEADER: csrf}
    resp = await client.patch(settings_url, json={"intake_rate_per_min": 5}, headers=ok)
    assert resp.status == 200, await resp.text()
    assert await db.fetchval("SELECT intake_rate_per_min FROM agencies") == 5


async def test_validation_problems_name_the_field_for_the_console(
    client: Any, agency: AgencyFixture
) -> None:
    cookie, csrf = await _sign_in(client, agency.supervisor_token)
    resp = await client.put(
        f"/v1/agencies/{agency.agency_id}/policy",
        json={"waves": [{"after_s": 0, "radius_m": 500, "live": 7}], "target_accepted": 99},
        headers={**cookie, CSRF_HEADER: csrf},
    )
    assert resp.status == 422
    assert (await resp.json())["pointer"] == "/target_accepted"


async def test_another_agencys_session_reads_nothing_here(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    other_id, _ = await agency_store.create_agency(db, name="Other")
    _, other_token = await agency_store.create_supervisor(db, agency_id=other_id, name="O")
    cookie, _ = await _sign_in(client, other_token)
    resp = await client.get(f"/v1/agencies/{agency.agency_id}/board", headers=cookie)
    assert resp.status == 401
    posted = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("x-1"), headers=agency.auth
    )
    incident_id = (await posted.json())["incident_id"]
    for part in ("timeline", "metrics", "scene"):
        resp = await client.get(f"/v1/incidents/{incident_id}/{part}", headers=cookie)
        assert resp.status == 404, part


async def test_idle_sessions_end_and_use_keeps_them_alive(
    settings: Settings, aiohttp_client: Any, agency: AgencyFixture, clock: MovableClock
) -> None:
    client = await aiohttp_client(
        create_app(settings.with_overrides(console_idle_s=600), clock=clock)
    )
    cookie, _ = await _sign_in(client, agency.supervisor_token)
    board = f"/v1/agencies/{agency.agency_id}/board"
    for _ in range(3):
        clock.advance(minutes=8)
        assert (await client.get(board, headers=cookie)).status == 200
    clock.advance(minutes=11)
    resp = await client.get(board, headers=cookie)
    assert resp.status == 401
    assert (await resp.json())["type"].endswith("session-expired")
    assert (await client.get("/console/session", headers=cookie)).status == 401


async def test_sessions_end_at_their_absolute_lifetime(
    settings: Settings, aiohttp_client: Any, agency: AgencyFixture, clock: MovableClock
) -> None:
    client = await aiohttp_client(
        create_app(
            settings.with_overrides(console_idle_s=3600, console_max_age_s=7200), clock=clock
        )
    )
    cookie, _ = await _sign_in(client, agency.supervisor_token)
    for _ in range(3):
        clock.advance(minutes=35)
        assert (await client.get("/console/session", headers=cookie)).status == 200
    clock.advance(minutes=35)
    assert (await client.get("/console/session", headers=cookie)).status == 401


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    cookie, csrf = await _sign_in(client, agency.supervisor_token)
    assert (await client.delete("/console/session", headers=cookie)).status == 403
    assert (await client.get("/console/session", headers=cookie)).status == 200
    resp = await client.delete("/console/session", headers={**cookie, CSRF_HEADER: csrf})
    assert resp.status == 204
    assert resp.cookies[CONSOLE_COOKIE].value == ""
    assert (await client.get("/console/session", headers=cookie)).status == 401
    assert await db.fetchval("SELECT signed_out_at IS NOT NULL FROM console_sessions")


async def test_a_bearer_token_does_not_open_the_event_stream(
    client: Any, agency: AgencyFixture
) -> None:
    resp = await client.get("/console/events", headers=agency.supervisor_auth)
    assert resp.status == 401


async def test_pages_are_served_with_a_same_origin_policy(client: Any) -> None:
    for path, kind in (("/console/", "text/html"), ("/console/app.js", "text/javascript")):
        resp = await client.get(path)
        assert resp.status == 200
        assert resp.content_type == kind
        assert resp.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    for bad in ("/console/..%2Fapp.py", "/console/nothing.js", "/console/app.py"):
        assert (await client.get(bad)).status == 404


async def _next_board(stream: Any) -> dict[str, Any]:
    async with aclosing(boards(stream)) as sent:
        async for board in sent:
            return board
    raise AssertionError("stream ended")


async def test_the_event_stream_follows_intake_and_answers(
    client: TestClient[web.Request, web.Application], agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    cookie, _ = await _sign_in(client, agency.supervisor_token)
    _, token = await new_volunteer(client, agency)
    volunteer = {"Authorization": f"Bearer {token}"}
    lat, lon = offset(*CENTRE, 100, 0)
    assert (
        await client.put("/v1/me/location", json={"lat": lat, "lon": lon}, headers=volunteer)
    ).status == 204
    await wait_until(
        lambda: db.fetchval("SELECT count(*) FROM volunteer_positions"),
        timeout_s=5,
        what="the position stored",
    )
    stream = await client.get("/console/events", headers=cookie)
    assert stream.status == 200
    assert stream.content_type == "text/event-stream"
    try:
        assert (await _next_board(stream))["incidents"] == []
        posted = await client.post(
            f"/v1/cad/{agency.agency_id}/incidents", json=incident("live-1"), headers=agency.auth
        )
        assert posted.status == 202
        async with asyncio.timeout(5):
            board = await _next_board(stream)
            while not board["incidents"] or not board["incidents"][0]["volunteers"]["alerted"]:
                board = await _next_board(stream)
        row = board["incidents"][0]
        assert row["source_incident_id"] == "live-1"
        assert row["volunteers"] == {"alerted": 1, "accepted": 0, "en_route": 0, "on_scene": 0}
        alert_id = await db.fetchval("SELECT id FROM alerts")
        accepted = await client.post(f"/v1/alerts/{alert_id}/accept", headers=volunteer)
        assert accepted.status == 200
        async with asyncio.timeout(5):
            while row["volunteers"]["accepted"] != 1:
                row = (await _next_board(stream))["incidents"][0]
        scene = await (
            await client.get(f"/v1/incidents/{row['incident_id']}/scene", headers=cookie)
        ).json()
        (responder,) = scene["responders"]
        assert responder["marker"] == "V1"
        assert responder["state"] == "accepted"
        # On the way: the position is shown, to the metre, and the distance from it.
        assert responder["position"]["distance_m"] == 100
        (wave,) = scene["waves"]
        assert wave["radius_m"] > 0
    finally:
        stream.close()


async def test_the_board_leaves_out_closed_incidents_and_other_agencies(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    other_id, other_key = await agency_store.create_agency(db, name="Other")
    for agency_id, key, name in (
        (agency.agency_id, agency.auth, "mine"),
        (other_id, {"Authorization": f"Bearer {other_key}"}, "theirs"),
    ):
        resp = await client.post(f"/v1/cad/{agency_id}/incidents", json=incident(name), headers=key)
        assert resp.status == 202
    closed = incident("closed-one", status="closed")
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=closed, headers=agency.auth
    )
    assert resp.status == 202
    board = await (
        await client.get(f"/v1/agencies/{agency.agency_id}/board", headers=agency.supervisor_auth)
    ).json()
    assert [i["source_incident_id"] for i in board["incidents"]] == ["mine"]


async def test_session_rows_are_purged_after_they_end(
    db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    from datetime import UTC, datetime

    from dispatch.store import console_sessions

    supervisor_id = await db.fetchval("SELECT id FROM supervisors")
    now = datetime.now(UTC)
    await console_sessions.create(
        db,
        agency_id=agency.agency_id,
        supervisor_id=supervisor_id,
        now=now - timedelta(days=3),
        max_age=timedelta(hours=1),
    )
    await console_sessions.create(
        db,
        agency_id=agency.agency_id,
        supervisor_id=supervisor_id,
        now=now,
        max_age=timedelta(hours=1),
    )
    assert await console_sessions.purge(db, now - timedelta(days=1)) == 1
    assert await db.fetchval("SELECT count(*) FROM console_sessions") == 1


async def test_a_change_made_by_another_process_reaches_the_stream(
    settings: Settings, aiohttp_client: Any, agency: AgencyFixture
) -> None:
    """Two service instances on one database: the one serving the console hears of an
    incident the other took in (nothing passes between them but the database)."""
    watcher = await aiohttp_client(create_app(settings))
    intake = await aiohttp_client(create_app(settings))
    cookie, _ = await _sign_in(watcher, agency.supervisor_token)
    stream = await watcher.get("/console/events", headers=cookie)
    try:
        assert (await _next_board(stream))["incidents"] == []
        url = f"/v1/cad/{agency.agency_id}/incidents"
        posted = await intake.post(url, json=incident("elsewhere"), headers=agency.auth)
        assert posted.status == 202
        async with asyncio.timeout(5):
            board = await _next_board(stream)
        assert [i["source_incident_id"] for i in board["incidents"]] == ["elsewhere"]
    finally:
        stream.close()


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        "https://tiles.example.org/{z}/{x}.png",
        "https://tiles.example.org/{z}/{x}/{y}.png' img-src *",
        "ftp://tiles.example.org/{z}/{x}/{y}.png",
        "https://" + "a" * 500 + "/{z}/{x}/{y}.png",
    ],
)
async def test_a_bad_tile_url_is_refused_naming_the_field(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, value: str
) -> None:
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"map_tile_url": value},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 422
    assert (await resp.json())["pointer"] == "/map_tile_url"
    assert await db.fetchval("SELECT map_tile_url FROM agencies") is None


async def test_the_page_policy_allows_the_agencys_tile_server_only_once_signed_in(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    template = "https://tiles.example.org:8443/osm/{z}/{x}/{y}.png?key=k"
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"map_tile_url": template},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200
    assert (await resp.json())["map_tile_url"] == template
    anonymous = await client.get("/console/")
    assert anonymous.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    cookie, _ = await _sign_in(client, agency.supervisor_token)
    signed_in = await client.get("/console/", headers=cookie)
    policy = signed_in.headers["Content-Security-Policy"]
    assert "img-src 'self' https://tiles.example.org:8443;" in policy
    assert policy.replace(" https://tiles.example.org:8443", "") == CONTENT_SECURITY_POLICY
    # Another agency's session gets its own (plain) policy.
    other_id, _ = await agency_store.create_agency(db, name="Other")
    _, other_token = await agency_store.create_supervisor(db, agency_id=other_id, name="O")
    other_cookie, _ = await _sign_in(client, other_token)
    other = await client.get("/console/", headers=other_cookie)
    assert other.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
