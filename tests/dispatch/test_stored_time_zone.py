"""An agency's stored time zone that this server does not know (a tzdata update dropped it,
or the row was edited by hand) is refused wherever it is read, never read as UTC: the
review and report routes and the credential routes answer a problem naming the setting and
its value and change nothing; the report warm-up skips that agency with one warning."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from dispatch.config import Settings
from dispatch.store import agencies as agency_store
from dispatch.web import app_keys as keys
from dispatch.web.openapi import openapi_document
from dispatch.workers.housekeeping import warm_reports
from tests.dispatch.accounts_helpers import sign_up
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, bearer, incident, offset, post_aeds, volunteer_at
from tests.dispatch.review_helpers import supervised_get
from tests.dispatch.test_review_report_cache import _history

pytestmark = pytest.mark.storage

GONE = "Mars/Olympus"
NEXT_YEAR = (date.today() + timedelta(days=365)).isoformat()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Warm-up rounds are driven by the test."""
    return settings.with_overrides(report_warmup_s=0)


async def _lose_zone(db: asyncpg.Connection, agency_id: UUID) -> None:
    await db.execute("UPDATE agencies SET time_zone = $2 WHERE id = $1", agency_id, GONE)


async def _refused(resp: Any) -> None:
    assert resp.status == 500, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["type"] == "/problems/agency-misconfigured"
    assert (problem["setting"], problem["value"]) == ("time_zone", GONE)
    assert GONE in problem["detail"]


async def _declare(client: Any, token: str) -> Any:
    return await client.post(
        "/v1/me/credentials",
        json={"kind": "cpr_bls", "issuer": "Dutch Resuscitation Council", "expires_on": NEXT_YEAR},
        headers=bearer(token),
    )


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("incidents", {"from": "2026-01-01", "to": "2026-01-31"}),
        ("volunteers", {}),
        ("reports/activations", {"from": "2026-01-01", "to": "2026-01-31"}),
        ("reports/coverage", {"hour": "9"}),
        ("reports/utstein.csv", {"from": "2026-01-01", "to": "2026-01-31"}),
    ],
)
async def test_review_routes_refuse_an_unknown_stored_zone(
    client: Any,
    db: asyncpg.Connection,
    agency: AgencyFixture,
    path: str,
    params: dict[str, str],
) -> None:
    known = await supervised_get(client, agency, path, params)
    assert known.status == 200, await known.text()
    await _lose_zone(db, agency.agency_id)
    await _refused(await supervised_get(client, agency, path, params))
    # What the problem says fixes it: setting the zone again (a write never reads the old one).
    fixed = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"time_zone": "Europe/Amsterdam"},
        headers=agency.supervisor_auth,
    )
    assert fixed.status == 200, await fixed.text()
    assert (await supervised_get(client, agency, path, params)).status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/agencies/{agency_id}/incidents"),
        ("get", "/v1/agencies/{agency_id}/reports/coverage"),
        ("post", "/v1/cad/{agency_id}/incidents"),
        ("post", "/v1/me/credentials"),
    ],
)
def test_the_api_document_lists_the_refusal(method: str, path: str) -> None:
    """A client generated from the OpenAPI document knows this 500 and its problem type;
    the middleware answers it on every route alike, so every operation that takes a
    credential (and so an agency) lists it."""
    paths = openapi_document()["paths"]
    guarded = [op for ops in paths.values() for op in ops.values() if "security" in op]
    assert len(guarded) > 50
    assert all("500" in op["responses"] for op in guarded)
    refusal = openapi_document()["paths"][path][method]["responses"]["500"]
    assert "/problems/agency-misconfigured" in refusal["description"]
    assert refusal["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }


async def test_cad_intake_names_the_unknown_zone_and_stores_nothing(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    await _lose_zone(db, agency.agency_id)
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident(), headers=agency.auth
    )
    await _refused(resp)
    assert await db.fetchval("SELECT count(*) FROM incidents") == 0


async def test_a_volunteer_whose_quiet_hours_zone_is_unknown_does_not_stop_the_others(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """Quiet hours in a zone the server no longer knows cannot be told: that volunteer is
    passed over with its own reason, and everyone else is still matched."""
    lost_id, _ = await volunteer_at(client, agency, offset(*CENTRE, 40, 0))
    other_id, _ = await volunteer_at(client, agency, offset(*CENTRE, 80, 0))
    await db.execute(
        "UPDATE volunteers SET quiet_from = '01:00', quiet_until = '02:00', time_zone = $2"
        " WHERE id = $1",
        lost_id,
        GONE,
    )
    posted = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("quiet-1"), headers=agency.auth
    )
    assert posted.status == 202, await posted.text()
    assert await db.fetchval("SELECT array_agg(volunteer_id) FROM alerts") == [other_id]
    matched = await db.fetchval("SELECT details FROM response_log WHERE event = 'matched'")
    assert matched["excluded"] == {"quiet_hours_zone_unknown": 1}


async def test_a_running_incident_goes_on_without_new_aed_roles(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture, caplog: Any
) -> None:
    """AED opening hours are local: with the zone gone nobody is newly sent for an AED, but
    answers (and the deadline ticker, through the same code) carry on."""
    aed_lat, aed_lon = offset(*CENTRE, 150, 0)
    imported = await post_aeds(client, agency, f"id,name,lat,lon\nX1,Library,{aed_lat},{aed_lon}\n")
    assert imported.status == 200, await imported.text()
    near_id, near = await volunteer_at(client, agency, offset(*CENTRE, 40, 0))
    await volunteer_at(client, agency, offset(*CENTRE, 250, 0))
    posted = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("aed-1"), headers=agency.auth
    )
    assert (await posted.json())["alerts_queued"] == 2
    roles = "SELECT volunteer_id, role, aed_id FROM alerts ORDER BY volunteer_id"
    before = [tuple(r) for r in await db.fetch(roles)]
    assert sorted(r[1] for r in before) == ["aed", "cpr"]

    await _lose_zone(db, agency.agency_id)
    alert_id = await db.fetchval("SELECT id FROM alerts WHERE volunteer_id = $1", near_id)
    with caplog.at_level(logging.WARNING):
        accepted = await client.post(f"/v1/alerts/{alert_id}/accept", headers=bearer(near))
    assert accepted.status == 200, await accepted.text()
    assert [tuple(r) for r in await db.fetch(roles)] == before
    warned = [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "roles_not_planned"
    ]
    assert [(w["agency_id"], w["time_zone"]) for w in warned] == [(str(agency.agency_id), GONE)]


async def test_a_credential_is_not_declared_with_its_expiry_in_a_guessed_zone(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    tokens = await sign_up(client, agency.agency_id, "+31622229001")
    await _lose_zone(db, agency.agency_id)
    await _refused(await _declare(client, tokens["access_token"]))
    assert await db.fetchval("SELECT count(*) FROM credentials") == 0


async def test_an_approval_computes_no_expiry_or_reminders_in_a_guessed_zone(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    tokens = await sign_up(client, agency.agency_id, "+31622229002")
    declared = await _declare(client, tokens["access_token"])
    assert declared.status == 201, await declared.text()
    credential_id = (await declared.json())["credential_id"]
    await _lose_zone(db, agency.agency_id)
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/credentials/{credential_id}/approve",
        headers=agency.supervisor_auth,
    )
    await _refused(resp)
    assert await db.fetchval("SELECT state FROM credentials WHERE id = $1", credential_id) == (
        "pending"
    )
    assert (
        await db.fetchval(
            "SELECT certified_until FROM volunteers WHERE id = $1", tokens["volunteer_id"]
        )
        is None
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM volunteer_notices WHERE kind LIKE 'credential%'",
        )
        == 0
    )


async def test_report_warmup_skips_an_agency_whose_zone_is_unknown_and_goes_on(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture, caplog: Any
) -> None:
    lost_id, key = await agency_store.create_agency(db, name="Lost zone")
    _, token = await agency_store.create_supervisor(db, agency_id=lost_id, name="Sup")
    await _history(db, agency)
    await _history(db, AgencyFixture(lost_id, key, token))
    await _lose_zone(db, lost_id)

    said: set[tuple[UUID, str]] = set()
    rounds = 1
    with caplog.at_level(logging.WARNING):
        while await warm_reports(client.app[keys.POOL], warned=said) > 0:
            rounds += 1
    kept = await db.fetch("SELECT DISTINCT agency_id, time_zone FROM activations_cache")
    assert [(r["agency_id"], r["time_zone"]) for r in kept] == [
        (agency.agency_id, "Europe/Amsterdam")
    ]
    warned = [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "report_warmup_skipped"
    ]
    # One line for the agency, not one per round (the warm-up retries every few seconds).
    assert rounds > 1
    assert [(w["agency_id"], w["time_zone"]) for w in warned] == [(str(lost_id), GONE)]
    # The agency and the value, nothing about anyone.
    assert {(w["agency_id"], w["time_zone"]) for w in warned} == {(str(lost_id), GONE)}
    assert set(warned[0]) <= {
        "event",
        "agency_id",
        "time_zone",
        "reason",
        "level",
        "logger",
        "timestamp",
    }
