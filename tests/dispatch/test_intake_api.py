"""CAD intake over HTTP: validation, authentication, idempotency, matching."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import (
    CENTRE,
    drained,
    incident,
    new_volunteer,
    offset,
    report_position,
    snapshot,
)


async def _post(client: Any, agency: AgencyFixture, doc: Any, **kw: Any) -> Any:
    return await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=doc, headers=agency.auth, **kw
    )


def _raw(body: str | bytes) -> dict[str, Any]:
    return {"data": body, "headers": {"Content-Type": "application/json"}}


BAD_DOCUMENTS: list[tuple[str, Any, int, str]] = [
    ("malformed json", b'{"incident_id": "x",', 400, ""),
    ("not an object", b"[1, 2, 3]", 422, ""),
    (
        "missing incident_id",
        {k: v for k, v in incident().items() if k != "incident_id"},
        422,
        "/incident_id",
    ),
    (
        "missing received_at",
        {k: v for k, v in incident().items() if k != "received_at"},
        422,
        "/received_at",
    ),
    ("wrong type incident_id", incident(incident_id=12), 422, "/incident_id"),
    ("wrong type lat", incident(location={"lat": "52.1", "lon": 4.9}), 422, "/location/lat"),
    ("bool is not a number", incident(location={"lat": True, "lon": 4.9}), 422, "/location/lat"),
    ("latitude above 90", incident(location={"lat": 90.0001, "lon": 4.9}), 422, "/location/lat"),
    ("latitude below -90", incident(location={"lat": -91, "lon": 4.9}), 422, "/location/lat"),
    ("longitude above 180", incident(location={"lat": 52, "lon": 180.5}), 422, "/location/lon"),
    ("longitude below -180", incident(location={"lat": 52, "lon": -181}), 422, "/location/lon"),
    (
        "NaN latitude",
        b'{"incident_id": "x", "call_type": {"code": "A"}, "received_at": '
        b'"2026-01-01T00:00:00Z", "location": {"lat": NaN, "lon": 4.9}}',
        400,
        "",
    ),
    ("Infinity", b'{"incident_id": "x", "location": {"lat": Infinity, "lon": 4.9}}', 400, ""),
    ("bad time", incident(received_at="yesterday"), 422, "/received_at"),
    ("unknown field", incident(colour="red"), 422, "/colour"),
    ("bad status", incident(status="burning"), 422, "/status"),
    ("deep nesting", b'{"incident_id": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, ""),
    ("not utf-8", b'{"incident_id": "\xff"}', 400, ""),
]


@pytest.mark.parametrize(
    ("doc", "status", "pointer"),
    [pytest.param(d, s, p, id=name) for name, d, s, p in BAD_DOCUMENTS],
)
async def test_bad_documents_answer_problem_and_change_nothing(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, doc: Any, status: int, pointer: str
) -> None:
    """Each bad document gets a problem+json naming the field, and the database is untouched."""
    before = await snapshot(db)
    if isinstance(doc, bytes):
        resp = await client.post(
            f"/v1/cad/{agency.agency_id}/incidents",
            data=doc,
            headers={**agency.auth, "Content-Type": "application/json"},
        )
    else:
        resp = await _post(client, agency, doc)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["pointer"] == pointer
    assert problem["invalid-params"][0]["name"] == (pointer or "/")
    assert await snapshot(db) == before


async def test_body_over_one_mebibyte_is_refused(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """A body over 1 MiB is refused with 413 problem+json before it is parsed."""
    before = await snapshot(db)
    doc = incident(address="x" * 400)
    body = json.dumps(doc).encode()
    body = body[:-1] + b', "pad": "' + b"y" * (1024 * 1024) + b'"}'
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents",
        data=io.BytesIO(body),
        headers={**agency.auth, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == 413
    assert await snapshot(db) == before


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer dak_wrong", "Basic dXNlcjpwYXNz", "Bearer dvt_not_an_agency_key"],
)
async def test_wrong_or_missing_key_is_401(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, authorization: str | None
) -> None:
    """Without the agency's key nothing is read or written; the answer says how to authenticate."""
    before = await snapshot(db)
    headers = {} if authorization is None else {"Authorization": authorization}
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident(), headers=headers
    )
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert await snapshot(db) == before


async def test_key_of_another_agency_is_refused(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """A valid key of agency A does not open agency B's intake."""
    from dispatch.store import agencies

    other_id, _ = await agencies.create_agency(db, name="Other")
    resp = await client.post(f"/v1/cad/{other_id}/incidents", json=incident(), headers=agency.auth)
    assert resp.status == 401


async def test_wrong_content_type_is_415(client: Any, agency: AgencyFixture) -> None:
    """Only application/json is read."""
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents",
        data=json.dumps(incident()),
        headers={**agency.auth, "Content-Type": "text/plain"},
    )
    assert resp.status == 415
    assert resp.content_type == "application/problem+json"


async def test_replay_is_unchanged_and_older_version_is_stale(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Same document twice: same id, "unchanged", no new alerts; an older version: "stale"."""
    _, token = await new_volunteer(client, agency)
    await report_position(client, token, *offset(*CENTRE, 100, 0))
    t0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    v2 = incident("replay-1", version=2, updated_at=(t0 + timedelta(minutes=1)).isoformat())
    first = await _post(client, agency, v2)
    assert first.status == 202
    created = await first.json()
    assert created["status"] == "created"
    assert created["alerts_queued"] == 1

    await drained(db, positions=1)
    before = await snapshot(db)
    again = await (await _post(client, agency, v2)).json()
    assert again == {**created, "status": "unchanged", "alerts_queued": 0}

    v1 = incident("replay-1", version=1, updated_at=t0.isoformat(), address="older")
    stale = await _post(client, agency, v1)
    assert stale.status == 202
    assert (await stale.json())["status"] == "stale"
    assert (await stale.json())["incident_id"] == created["incident_id"]
    assert await snapshot(db) == before
    assert await db.fetchval("SELECT count(*) FROM alerts") == 1


async def test_same_version_different_content_is_conflict(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Changing a document without bumping its version is refused: we cannot order the two."""
    doc = incident("c-1", version=1)
    assert (await _post(client, agency, doc)).status == 202
    await drained(db)
    before = await snapshot(db)
    resp = await _post(client, agency, {**doc, "address": "elsewhere"})
    assert resp.status == 409
    assert await snapshot(db) == before


async def test_concurrent_identical_posts_create_one_incident(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Duplicate webhooks arriving together create one incident and one set of alerts."""
    _, token = await new_volunteer(client, agency)
    await report_position(client, token, *offset(*CENTRE, 50, 50))
    doc = incident("dup-1")
    answers = await asyncio.gather(*(_post(client, agency, doc) for _ in range(5)))
    bodies = [await a.json() for a in answers]
    assert {b["incident_id"] for b in bodies} == {bodies[0]["incident_id"]}
    assert sorted(b["status"] for b in bodies) == ["created"] + ["unchanged"] * 4
    assert await db.fetchval("SELECT count(*) FROM incidents") == 1
    assert await db.fetchval("SELECT count(*) FROM alerts") == 1


async def test_matching_alerts_only_fresh_volunteers_inside_radius(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Alerts go to the nearest fresh volunteers within the agency radius (500 m), nobody else."""
    inside = []
    for north in (0, 120, 250, 490):
        vid, token = await new_volunteer(client, agency)
        await report_position(client, token, *offset(*CENTRE, north, 0))
        inside.append(vid)
    outside, token = await new_volunteer(client, agency)
    await report_position(client, token, *offset(*CENTRE, 0, 520))
    stale, token = await new_volunteer(client, agency)
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    await report_position(client, token, *offset(*CENTRE, 10, 10), at=old)
    unplaced, _ = await new_volunteer(client, agency)

    body = await (await _post(client, agency, incident("m-1"))).json()
    assert body["alerts_queued"] == 4
    rows = await db.fetch("SELECT volunteer_id, distance_m FROM alerts ORDER BY distance_m")
    assert [r["volunteer_id"] for r in rows] == inside
    assert await db.fetchval("SELECT count(*) FROM outbox") == 4
    assert {outside, stale, unplaced}.isdisjoint(r["volunteer_id"] for r in rows)


async def test_not_alertable_incidents_are_recorded_without_alerts(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Unknown call types, tests and closed incidents never wake volunteers; the log says why."""
    _, token = await new_volunteer(client, agency)
    await report_position(client, token, *CENTRE)
    cases = {
        "u-1": ({"is_cardiac_arrest": None, "call_type": {"code": "FALL"}}, "unknown_call_type"),
        "u-2": ({"is_cardiac_arrest": False}, "not_cardiac_arrest"),
        "u-4": ({"status": "closed"}, "not_active"),
        "u-5": ({"location": {"lat": 0, "lon": 0}}, "no_location"),
        "u-6": ({"location": None}, "no_location"),
    }
    for incident_id, (overrides, reason) in cases.items():
        body = await (await _post(client, agency, incident(incident_id, **overrides))).json()
        assert body["alerts_queued"] == 0
        logged = await db.fetchval(
            "SELECT details->>'reason' FROM response_log"
            " WHERE incident_id = $1 AND event = 'not_alertable'",
            __import__("uuid").UUID(body["incident_id"]),
        )
        assert logged == reason
    assert await db.fetchval("SELECT count(*) FROM alerts") == 0


async def test_test_incidents_alert_only_testers(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """An is_test incident alerts volunteers enrolled as testers and nobody else."""
    _, token = await new_volunteer(client, agency)
    await report_position(client, token, *CENTRE)
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "Tess", "is_tester": True},
        headers=agency.supervisor_auth,
    )
    tester = await resp.json()
    await report_position(client, tester["token"], *offset(*CENTRE, 30, 0))
    body = await (await _post(client, agency, incident("t-1", is_test=True))).json()
    assert body["alerts_queued"] == 1
    assert await db.fetchval("SELECT volunteer_id FROM alerts") == tester["volunteer_id"]
    matched = await db.fetchval("SELECT details FROM response_log WHERE event = 'matched'")
    assert matched["excluded"] == {"not_a_tester": 1}
