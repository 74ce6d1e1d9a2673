"""incident_review and alert_firsts are the response log summed per incident: checked against
the log itself, through awkward orders of writing, and through the real engine."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from dispatch.store import agencies
from dispatch.store import volunteers as volunteer_store
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, incident, offset, wait_until
from tests.dispatch.review_helpers import Seeded, seed, volunteer

pytestmark = pytest.mark.storage

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)

# The definition: what incident_review must hold, computed from the log alone.
_FROM_LOG = """
    SELECT r.incident_id,
           count(DISTINCT r.alert_id) FILTER (WHERE r.event = 'alert_sent') AS alerts_sent,
           count(DISTINCT r.alert_id) FILTER (WHERE r.event = 'alert_accepted')
               AS alerts_accepted,
           count(DISTINCT r.alert_id) FILTER (WHERE r.event = 'alert_on_scene')
               AS alerts_on_scene,
           coalesce(bool_or(a.role = 'aed') FILTER (WHERE r.event = 'alert_on_scene'), false)
               AS aed_on_scene,
           min(r.at) FILTER (WHERE r.event = 'alert_sent') AS first_sent_at,
           min(r.at) FILTER (WHERE r.event = 'alert_accepted') AS first_accept_at,
           min(r.at) FILTER (WHERE r.event = 'alert_on_scene') AS first_on_scene_at,
           (array_agg(r.details ->> 'reason' ORDER BY r.id)
               FILTER (WHERE r.event = 'not_alertable'))[1] AS not_alertable
    FROM response_log r LEFT JOIN alerts a ON a.id = r.alert_id
    WHERE r.event IN ('alert_sent', 'alert_accepted', 'alert_on_scene', 'not_alertable')
    GROUP BY r.incident_id
    ORDER BY r.incident_id
"""
_SUMMARY = """
    SELECT incident_id, alerts_sent, alerts_accepted, alerts_on_scene, aed_on_scene,
           first_sent_at, first_accept_at, first_on_scene_at, not_alertable
    FROM incident_review ORDER BY incident_id
"""


async def _same(db: asyncpg.Connection) -> list[dict[str, Any]]:
    expected = [dict(r) for r in await db.fetch(_FROM_LOG)]
    assert [dict(r) for r in await db.fetch(_SUMMARY)] == expected
    assert not await db.fetchval(
        "SELECT count(*) FROM alert_firsts f JOIN alerts a ON a.id = f.alert_id"
        " WHERE f.volunteer_id <> a.volunteer_id"
    )
    return expected


async def _alert(db: asyncpg.Connection, agency_id: UUID, incident_id: UUID, role: str) -> UUID:
    alert_id = uuid4()
    await db.execute(
        "INSERT INTO alerts (id, agency_id, incident_id, volunteer_id, role, state, distance_m,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, 'sent', 50, now())",
        alert_id,
        agency_id,
        incident_id,
        await volunteer(db, agency_id),
        role,
    )
    return alert_id


async def _log(db: Any, rows: list[tuple[Any, ...]]) -> None:
    """One statement for all ``rows`` (agency, incident, alert, event, at, details)."""
    await db.execute(
        """
        INSERT INTO response_log (agency_id, incident_id, alert_id, event, at, details)
        SELECT a, i, al, e, t, d::jsonb FROM unnest($1::uuid[], $2::uuid[], $3::uuid[],
                                                    $4::text[], $5::timestamptz[], $6::text[])
            AS u(a, i, al, e, t, d)
        """,
        *([r[i] for r in rows] for i in range(5)),
        [json.dumps(r[5]) for r in rows],
    )


async def test_summary_equals_the_log_however_it_is_written(
    db: asyncpg.Connection, agency: AgencyFixture, database_url: str
) -> None:
    a = agency.agency_id
    one = await seed(db, a, Seeded(T0, alerting=True))
    two = await seed(db, a, Seeded(T0, alerting=False))
    x = await _alert(db, a, one, "cpr")
    y = await _alert(db, a, one, "aed")
    z = await _alert(db, a, two, "cpr")
    at = T0 + timedelta(seconds=30)
    # Several incidents and events in one statement, the same alert sent twice in it.
    await _log(
        db,
        [
            (a, one, x, "alert_sent", at, {}),
            (a, one, x, "alert_sent", at + timedelta(seconds=20), {"channel": "sms"}),
            (a, one, y, "alert_sent", at + timedelta(seconds=1), {}),
            (a, two, z, "alert_sent", at, {}),
            (a, two, None, "not_alertable", at, {"reason": "no_location"}),
            (a, two, None, "not_alertable", at, {"reason": "too_old"}),
            (a, one, None, "alert_queued", at, {}),
        ],
    )
    await _same(db)
    # Sent again later (fallback to voice): still one alert sent.
    await _log(db, [(a, one, x, "alert_sent", at + timedelta(seconds=90), {})])
    # Written late but earlier in time: the first time moves back, the count does not grow.
    await _log(db, [(a, one, y, "alert_sent", at - timedelta(seconds=10), {})])
    await _log(db, [(a, one, y, "alert_accepted", at + timedelta(seconds=40), {})])
    await _log(db, [(a, one, y, "alert_on_scene", at + timedelta(seconds=300), {})])
    await _log(db, [(a, one, x, "alert_accepted", at + timedelta(seconds=35), {})])
    rows = await _same(db)
    first = next(r for r in rows if r["incident_id"] == one)
    assert (first["alerts_sent"], first["alerts_accepted"], first["alerts_on_scene"]) == (2, 2, 1)
    assert first["aed_on_scene"] is True
    assert first["first_sent_at"] == at - timedelta(seconds=10)
    second = next(r for r in rows if r["incident_id"] == two)
    assert second["not_alertable"] == "no_location"

    # Two connections log the same alert's acceptance at once: counted once.
    three = await seed(db, a, Seeded(T0, alerting=True))
    w = await _alert(db, a, three, "cpr")
    others = [await asyncpg.connect(database_url) for _ in range(2)]
    try:
        transactions = [c.transaction() for c in others]
        for t in transactions:
            await t.start()
        await _log(others[0], [(a, three, w, "alert_accepted", at, {})])
        late = asyncio.create_task(
            _log(others[1], [(a, three, w, "alert_accepted", at + timedelta(seconds=1), {})])
        )
        await asyncio.sleep(0.2)
        await transactions[0].commit()
        await late
        await transactions[1].commit()
    finally:
        for c in others:
            await c.close()
    rows = await _same(db)
    assert next(r for r in rows if r["incident_id"] == three)["alerts_accepted"] == 1


async def test_counts_through_the_engine_match_the_incident_metrics(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """A real incident, alert and answers through the API: the list, the report and the
    Utstein row say what /v1/incidents/{id}/metrics says."""
    volunteer_id, token = await volunteer_store.create_volunteer(
        db, agency_id=agency.agency_id, display_name="Responder"
    )
    auth = {"Authorization": f"Bearer {token}"}
    lat, lon = offset(*CENTRE, 60, 0)
    assert (await client.put("/v1/me/location", json={"lat": lat, "lon": lon}, headers=auth)).ok
    await wait_until(
        lambda: db.fetchval("SELECT count(*) FROM volunteer_positions"),
        timeout_s=5,
        what="the position stored",
    )
    posted = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents",
        json=incident("E2E-1", address="Dam 1, Amsterdam"),
        headers=agency.auth,
    )
    result = await posted.json()
    assert result["alerts_queued"] == 1, result
    alert_id = await db.fetchval("SELECT id FROM alerts WHERE volunteer_id = $1", volunteer_id)
    await wait_until(
        lambda: db.fetchval("SELECT count(*) FROM response_log WHERE event = 'alert_sent'"),
        what="the alert sent",
    )
    for step in ("accept", "en-route", "arrived"):
        assert (await client.post(f"/v1/alerts/{alert_id}/{step}", headers=auth)).status == 200
    await _same(db)

    sup = agency.supervisor_auth
    base = f"/v1/agencies/{agency.agency_id}"
    listed = await (await client.get(f"{base}/incidents", headers=sup)).json()
    (item,) = listed["incidents"]
    assert (item["alerted"], item["accepted"], item["on_scene"]) == (1, 1, 1)
    assert item["address"] == "Dam 1, Amsterdam"
    metrics = await (
        await client.get(f"/v1/incidents/{result['incident_id']}/metrics", headers=sup)
    ).json()
    today = datetime.now(UTC).date()
    span = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    url = f"{base}/reports/activations"
    report = await (await client.get(url, params=span, headers=sup)).json()
    total = report["total"]
    assert total["activations"] == 1
    for mine, theirs in (
        ("median_s_to_first_alert", "seconds_to_first_alert_sent"),
        ("median_s_to_first_accept", "seconds_to_first_accept"),
        ("median_s_to_first_volunteer_on_scene", "seconds_to_first_volunteer_on_scene"),
    ):
        assert total[mine] == round(metrics[theirs], 1), mine
    assert total["volunteers_alerted"] == 1

    # Erasure moves the facts to a pseudonym: the report does not change.
    assert (await client.delete("/v1/me", headers=auth)).status == 204
    await _same(db)
    again = await (await client.get(url, params=span, headers=sup)).json()
    # Computed again (the range includes today): only its computation time differs.
    computed = [datetime.fromisoformat(r.pop("computed_at")) for r in (report, again)]
    assert computed[1] > computed[0]
    assert again == report
    assert not await db.fetchval(
        "SELECT count(*) FROM alert_firsts WHERE volunteer_id = $1", volunteer_id
    )


async def test_migration_backfill_sums_an_existing_log(
    db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """The migration's own statements, run over a log written before the summary existed."""
    a = agency.agency_id
    one = await seed(db, a, Seeded(T0, alerting=True))
    two = await seed(db, a, Seeded(T0, alerting=False, not_alertable="no_location"))
    x = await _alert(db, a, one, "aed")
    at = T0 + timedelta(seconds=30)
    await _log(db, [(a, one, x, "alert_sent", at, {}), (a, one, x, "alert_sent", at, {})])
    await _log(db, [(a, one, x, "alert_on_scene", at + timedelta(seconds=99), {})])
    await _log(db, [(a, two, None, "not_alertable", at, {"reason": "too_old"})])
    await db.execute("DELETE FROM incident_review; DELETE FROM alert_firsts")
    sql = (files("dispatch.migrations") / "0016_review.sql").read_text()
    await db.execute(sql[sql.index("-- What the log already holds") :])
    rows = await _same(db)
    assert [r["not_alertable"] for r in rows if r["incident_id"] == two] == ["no_location"]


@pytest.mark.parametrize("deleted", ["incident", "agency"])
async def test_deleting_an_incident_or_agency_takes_its_firsts_with_it(
    db: asyncpg.Connection, agency: AgencyFixture, deleted: str
) -> None:
    """alert_firsts names its incident and agency without a foreign key to either (0023):
    its rows still go with their alerts, which go with the incident and the agency."""
    a = agency.agency_id
    other, _ = await agencies.create_agency(db, name="Other")
    kept = await seed(db, other, Seeded(T0, alerting=True))
    gone = await seed(db, a, Seeded(T0, alerting=True))
    at = T0 + timedelta(seconds=30)
    for incident_id, agency_id in ((kept, other), (gone, a)):
        alert_id = await _alert(db, agency_id, incident_id, "cpr")
        await _log(
            db,
            [
                (agency_id, incident_id, alert_id, "alert_sent", at, {}),
                (agency_id, incident_id, alert_id, "alert_accepted", at, {}),
            ],
        )
    if deleted == "incident":
        await db.execute("DELETE FROM incidents WHERE id = $1", gone)
    else:
        await db.execute("DELETE FROM agencies WHERE id = $1", a)
    firsts = await db.fetch("SELECT DISTINCT incident_id, agency_id FROM alert_firsts")
    assert [(r["incident_id"], r["agency_id"]) for r in firsts] == [(kept, other)]
    await _same(db)
