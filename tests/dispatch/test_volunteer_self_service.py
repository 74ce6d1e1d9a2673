"""A volunteer's own profile, alerts inbox, self-test and feedback, in process."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from dispatch.web import app_keys as keys
from dispatch.web.app import create_app
from tests.dispatch.accounts_helpers import MovableClock, sent_of_kind, sign_up
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, bearer, incident, offset, wait_until


async def _legacy(client: Any, agency: AgencyFixture, name: str = "Ann", **settings: Any) -> Any:
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": name, **settings},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 201
    created = await resp.json()
    return created["volunteer_id"], bearer(created["token"])


async def _stand_near(client: Any, auth: dict[str, str], metres: float = 50) -> None:
    lat, lon = offset(*CENTRE, metres, 0)
    resp = await client.put("/v1/me/location", json={"lat": lat, "lon": lon}, headers=auth)
    assert resp.status == 204


async def _position_row(db: asyncpg.Connection, volunteer_id: int, present: bool) -> None:

    async def as_expected() -> bool:
        stored = await db.fetchval(
            "SELECT count(*) FROM volunteer_positions WHERE volunteer_id = $1", volunteer_id
        )
        return (stored > 0) == present

    await wait_until(as_expected, timeout_s=5, what=f"position stored is {present}")


async def test_profile_changes_and_going_off_duty_forgets_the_position(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    volunteer_id, auth = await _legacy(client, agency)
    await _stand_near(client, auth)
    await _position_row(db, volunteer_id, present=True)
    cache = client.server.app[keys.POSITIONS]
    assert cache.position(volunteer_id) is not None
    for body, pointer in [
        ({"quiet_from": "23:00"}, "/quiet_until"),
        ({"channels": {"preferred": "sms", "refused": ["sms"]}}, "/channels/preferred"),
        ({"tier_requested": "expert"}, "/tier_requested"),
        ({"display_name": "  "}, "/display_name"),
        ({}, ""),
    ]:
        resp = await client.patch("/v1/me", json=body, headers=auth)
        assert resp.status == 422, (body, await resp.text())
        assert (await resp.json())["pointer"] == pointer
    resp = await client.patch(
        "/v1/me",
        json={
            "display_name": "Anna",
            "language": "nl-NL",
            "quiet_from": "23:00",
            "quiet_until": "07:00",
            "daily_budget": 2,
            "channels": {"preferred": "sms", "refused": ["voice"]},
            "on_duty": False,
        },
        headers=auth,
    )
    assert resp.status == 200, await resp.text()
    profile = await resp.json()
    assert (profile["display_name"], profile["language"], profile["daily_budget"]) == (
        "Anna",
        "nl-NL",
        2,
    )
    assert profile["channels"]["preferred"] == "sms"
    assert profile["not_alertable_because"] == ["off_duty"]
    # Off duty: the position is gone at once, from the database and from memory,
    # and a fix sent while off duty is not kept.
    assert await db.fetchval("SELECT count(*) FROM volunteer_positions") == 0
    assert cache.position(volunteer_id) is None
    await _stand_near(client, auth)
    await asyncio.sleep(0.3)
    assert await db.fetchval("SELECT count(*) FROM volunteer_positions") == 0
    events = await db.fetch("SELECT details FROM volunteer_events WHERE event = 'profile_changed'")
    assert events[-1]["details"]["fields"][-1] == "channels"
    assert "Anna" not in str([dict(e) for e in events])


async def test_the_inbox_lists_open_alerts_first_then_the_last_30_days(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    _, auth = await _legacy(client, agency)
    await _stand_near(client, auth)
    ids = []
    for name in ("old", "declined", "open"):
        resp = await client.post(
            f"/v1/cad/{agency.agency_id}/incidents", json=incident(name), headers=agency.auth
        )
        assert (await resp.json())["alerts_queued"] == 1
        inbox = await (await client.get("/v1/me/alerts", headers=auth)).json()
        ids.append(inbox["alerts"][0]["alert_id"])
        if name == "declined":
            assert (await client.post(f"/v1/alerts/{ids[-1]}/decline", headers=auth)).status == 200
        if name == "old":
            await db.execute(
                "UPDATE alerts SET created_at = created_at - interval '31 days',"
                " expires_at = expires_at - interval '31 days' WHERE id = $1::uuid",
                ids[-1],
            )
    inbox = await (await client.get("/v1/me/alerts", headers=auth)).json()
    listed = [(a["alert_id"], a["open"], a["state"]) for a in inbox["alerts"]]
    assert listed[0] == (ids[2], True, listed[0][2])
    assert listed[1] == (ids[1], False, "declined")
    assert len(listed) == 2


async def test_self_test_alerts_ring_as_tests_three_a_day_and_cost_no_budget(
    clocked: Any, clock: MovableClock, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    volunteer_id, auth = await _legacy(clocked, agency, daily_budget=1)
    answers = []
    for _ in range(3):
        resp = await clocked.post("/v1/me/test-alert", headers=auth)
        assert resp.status == 202
        answers.append(await resp.json())
    assert [a["left_today"] for a in answers] == [2, 1, 0]
    refused = await clocked.post("/v1/me/test-alert", headers=auth)
    assert refused.status == 429
    assert 86_000 < int(refused.headers["Retry-After"]) <= 86_400
    # Through the alerts' own outbox and chain (the log provider here), marked as a test.

    async def three_sent() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM alerts WHERE state = 'sent'") >= 3)

    await wait_until(three_sent, timeout_s=5, what="three test alerts sent")
    log = clocked.server.app[keys.PROVIDERS].log
    tests = [m for m in log.sent if m.data.get("test") == "true"]
    assert len(tests) == 3
    assert all(m.title.startswith("TEST") for m in tests)
    rows = await db.fetch(
        "SELECT i.is_test, i.source, i.status, a.role FROM alerts a"
        " JOIN incidents i ON i.id = a.incident_id"
    )
    assert {tuple(r) for r in rows} == {(True, "self_test", "closed", "test")}
    inbox = await (await clocked.get("/v1/me/alerts", headers=auth)).json()
    assert [a["test"] for a in inbox["alerts"]] == [True, True, True]
    # The daily budget (1) is untouched by tests: a real arrest still reaches them.
    await _stand_near(clocked, auth)
    real = await clocked.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("real"), headers=agency.auth
    )
    assert (await real.json())["alerts_queued"] == 1
    # A day later the tests are allowed again.
    clock.advance(days=1, seconds=1)
    assert (await clocked.post("/v1/me/test-alert", headers=auth)).status == 202
    assert volunteer_id


async def test_aftercare_follows_up_responders_and_supervisors_see_debrief_requests(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    went_id, went = await _legacy(client, agency, "Went")
    _, stayed = await _legacy(client, agency, "Stayed")
    await _stand_near(client, went, 40)
    await _stand_near(client, stayed, 80)
    doc = incident("aftercare")
    resp = await client.post(f"/v1/cad/{agency.agency_id}/incidents", json=doc, headers=agency.auth)
    assert (await resp.json())["alerts_queued"] == 2
    alert_id = (await (await client.get("/v1/me/alerts", headers=went)).json())["alerts"][0][
        "alert_id"
    ]
    assert (await client.post(f"/v1/alerts/{alert_id}/accept", headers=went)).status == 200
    closed = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents",
        json={**doc, "status": "closed", "version": 2},
        headers=agency.auth,
    )
    assert closed.status == 202
    (follow_up,) = await sent_of_kind(client, "aftercare", 1)
    assert follow_up.volunteer_id == went_id
    assert follow_up.data["about_alert_id"] == alert_id
    # Feedback on someone else's alert is not found; on one's own it is recorded.
    other = await client.post(
        f"/v1/alerts/{alert_id}/feedback", json={"wants_to_talk": True}, headers=stayed
    )
    assert other.status == 404
    resp = await client.post(
        f"/v1/alerts/{alert_id}/feedback",
        json={"text": "The stairs were dark.", "wants_to_talk": True},
        headers=went,
    )
    assert resp.status == 201
    listing = f"/v1/agencies/{agency.agency_id}/debrief-requests"
    requests = (await (await client.get(listing, headers=agency.supervisor_auth)).json())[
        "requests"
    ]
    assert [(r["volunteer_id"], r["display_name"], r["text"]) for r in requests] == [
        (went_id, "Went", "The stairs were dark.")
    ]
    handled = f"{listing}/{requests[0]['request_id']}/handled"
    done = await client.post(handled, json={"note": "Called back"}, headers=agency.supervisor_auth)
    assert done.status == 200
    assert (await done.json())["note"] == "Called back"
    again = await client.post(handled, json={}, headers=agency.supervisor_auth)
    assert again.status == 409
    assert (await (await client.get(listing, headers=agency.supervisor_auth)).json()) == {
        "requests": []
    }
    closed_ones = await client.get(f"{listing}?state=handled", headers=agency.supervisor_auth)
    assert len((await closed_ones.json())["requests"]) == 1
    assert (
        await client.get(f"{listing}?state=maybe", headers=agency.supervisor_auth)
    ).status == 400
    audit = await db.fetch("SELECT action, after FROM audit_log WHERE action = 'debrief_handled'")
    assert len(audit) == 1
    assert "Called back" not in str(audit[0]["after"])
    timeline = await client.get(
        f"/v1/incidents/{(await closed.json())['incident_id']}/timeline", headers=agency.auth
    )
    queued = [e for e in (await timeline.json())["events"] if e["event"] == "aftercare_queued"]
    assert [e["details"] for e in queued] == [{"volunteers": 1}]


async def test_signed_up_volunteers_see_their_own_export(
    client: Any, agency: AgencyFixture
) -> None:
    tokens = await sign_up(client, agency.agency_id, "+31644440001", "Exporter", device="Pixel")
    auth = bearer(tokens["access_token"])
    await client.put(
        "/v1/me/devices", json={"fcm_token": "e" * 30, "platform": "ios"}, headers=auth
    )
    await client.post(
        "/v1/me/credentials",
        json={"kind": "cpr_bls", "issuer": "NRR", "expires_on": "2100-01-01"},
        headers=auth,
    )
    resp = await client.get("/v1/me/export", headers=auth)
    assert resp.status == 200
    assert resp.headers["Content-Disposition"].startswith("attachment")
    document = await resp.json()
    assert document["profile"]["display_name"] == "Exporter"
    assert [c["issuer"] for c in document["credentials"]] == ["NRR"]
    assert [d["fcm_token"] for d in document["devices"]] == ["e" * 30]
    assert [s["device_label"] for s in document["sessions"]] == ["Pixel"]
    names = {e["event"] for e in document["timeline"]}
    assert {"signed_up", "session_started", "credential_submitted"} <= names
    # The sign-up code went out before the account existed: nothing of it is kept for them.
    assert document["notices"] == []


async def test_stale_positions_are_purged_continuously_not_only_at_start(
    settings: Any, aiohttp_client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    clock = MovableClock()
    client = await aiohttp_client(
        create_app(settings.with_overrides(housekeeping_s=0.1), clock=clock)
    )
    volunteer_id, auth = await _legacy(client, agency)
    fresh_id, fresh = await _legacy(client, agency, "Fresh")
    await _stand_near(client, auth)
    await _position_row(db, volunteer_id, present=True)
    cache = client.server.app[keys.POSITIONS]
    assert cache.position(volunteer_id) is not None
    # Older than the agency's freshness limit (15 minutes): gone from the database and
    # from memory within a round of housekeeping, while the server keeps running.
    clock.advance(minutes=15, seconds=5)
    await _stand_near(client, fresh)
    await _position_row(db, volunteer_id, present=False)

    # Housekeeping forgets the position in memory a few queries after the database row.
    async def forgotten() -> bool:
        return cache.position(volunteer_id) is None

    await wait_until(forgotten, timeout_s=5, what="the position forgotten in memory")
    await _position_row(db, fresh_id, present=True)
    assert cache.position(fresh_id) is not None
