"""Health, readiness, metrics, OpenAPI and the volunteer endpoints."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from dispatch.web.handlers_pages import PAGE_ROUTE_PREFIX
from dispatch.web.openapi import openapi_document
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, drained, snapshot, wait_until


async def test_health_and_readiness(client: Any) -> None:
    """/healthz answers while the process lives; /readyz checks the database and workers."""
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["checks"] == {
        "database": "ok",
        "outbox_worker": "ok",
        "position_writer": "ok",
        "position_follower": "ok",
        "listener": "ok",
        "feed_poller": "ok",
        "deadline_ticker": "ok",
        "notice_worker": "ok",
        "housekeeping": "ok",
    }


async def test_readiness_fails_when_a_worker_died(client: Any) -> None:
    """A dead worker makes /readyz 503 with the reason, so an orchestrator restarts us."""
    from dispatch.web import app_keys

    task = client.server.app[app_keys.WORKER_TASKS]["outbox_worker"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["checks"]["outbox_worker"] == "not running"


async def test_metrics_are_prometheus_text(client: Any, agency: AgencyFixture) -> None:
    """/metrics exposes counters in the Prometheus text format."""
    await client.get("/healthz")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert "dispatch_http_request_seconds_count" in text
    assert "dispatch_indexed_volunteers" in text


def _statements(text: str, pool: str) -> float:
    prefix = f'dispatch_db_statements_total{{outcome="ok",pool="{pool}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


async def test_metrics_count_database_statements_per_pool(
    client: Any, agency: AgencyFixture
) -> None:
    """Each statement a request sends is one round trip, counted on the pool that sent it."""
    await client.get("/readyz")  # settle: the workers' first polls have run
    await asyncio.sleep(0.1)
    before = _statements(await (await client.get("/metrics")).text(), "requests")
    for _ in range(3):
        assert (await client.get("/readyz")).status == 200
    await asyncio.sleep(0.05)  # asyncpg calls query loggers soon after, not inline
    after = _statements(await (await client.get("/metrics")).text(), "requests")
    assert after - before >= 3
    assert _statements(await (await client.get("/metrics")).text(), "delivery") > 0


async def test_openapi_describes_every_route(client: Any) -> None:
    """Every route the router serves is in /v1/openapi.json, and nothing else is (pages for
    people, such as the volunteer app, are not API operations)."""
    served = set()
    for route in client.server.app.router.routes():
        if route.method == "HEAD" or (route.name or "").startswith(PAGE_ROUTE_PREFIX):
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        served.add((route.method.lower(), path))
    doc = await (await client.get("/v1/openapi.json")).json()
    described = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == described
    assert doc == openapi_document()


async def test_unknown_route_is_problem_json(client: Any) -> None:
    """Even aiohttp's own 404 and 405 come back as problem+json."""
    resp = await client.get("/v1/nothing-here")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    resp = await client.delete("/healthz")
    assert resp.status == 405
    assert resp.content_type == "application/problem+json"


async def _new_volunteer(client: Any, agency: AgencyFixture) -> str:
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "Ann", "phone_e164": "+31612345678"},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 201
    token: str = (await resp.json())["token"]
    return token


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"lat": 91, "lon": 4}, "/lat"),
        ({"lat": 52, "lon": -180.01}, "/lon"),
        ({"lon": 4}, "/lat"),
        ({"lat": "52", "lon": 4}, "/lat"),
        ({"lat": 52, "lon": 4, "accuracy_m": -1}, "/accuracy_m"),
        ({"lat": 52, "lon": 4, "at": "2999-01-01T00:00:00Z"}, "/at"),
        ({"lat": 52, "lon": 4, "at": "2026-01-01T00:00:00"}, "/at"),
        ({"lat": 52, "lon": 4, "speed": 3}, "/speed"),
    ],
)
async def test_location_validation(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, body: Any, pointer: str
) -> None:
    """Bad fixes are refused naming the field, and nothing is stored or indexed."""
    token = await _new_volunteer(client, agency)
    before = await snapshot(db)
    resp = await client.put(
        "/v1/me/location", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 422
    assert (await resp.json())["pointer"] == pointer
    await drained(db)
    assert await snapshot(db) == before


async def test_location_nan_is_refused(client: Any, agency: AgencyFixture) -> None:
    """NaN cannot sneak in through Python's lenient JSON decoder."""
    token = await _new_volunteer(client, agency)
    resp = await client.put(
        "/v1/me/location",
        data=b'{"lat": NaN, "lon": 4.9}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"


async def test_location_needs_a_volunteer_token(client: Any, agency: AgencyFixture) -> None:
    """An agency key or a made-up token cannot move a volunteer."""
    for auth in (agency.key, "dvt_madeup", ""):
        resp = await client.put(
            "/v1/me/location",
            json={"lat": CENTRE[0], "lon": CENTRE[1]},
            headers={"Authorization": f"Bearer {auth}"},
        )
        assert resp.status == 401


async def test_location_is_persisted_in_batches_and_only_the_latest_kept(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Only the last known position is stored: no history, one row per volunteer."""
    token = await _new_volunteer(client, agency)
    for i in range(5):
        resp = await client.put(
            "/v1/me/location",
            json={"lat": CENTRE[0] + i / 1000, "lon": CENTRE[1]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status == 204
    await drained(db, positions=1)
    rows = await db.fetch("SELECT lat FROM volunteer_positions")
    assert len(rows) == 1

    async def moved() -> bool:
        return bool(
            await db.fetchval("SELECT lat FROM volunteer_positions") == CENTRE[0] + 4 / 1000
        )

    await wait_until(moved, timeout_s=5, what="the newer position stored")


async def test_volunteer_tokens_are_stored_hashed(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """The token handed out never appears in the database; the phone is kept for SMS only."""
    token = await _new_volunteer(client, agency)
    dump = str(await snapshot(db))
    assert token not in dump
    assert agency.key not in dump
    assert agency.supervisor_token not in dump


async def test_timeline_access_is_per_agency(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Another agency's key or supervisor sees 404, not the timeline."""
    from dispatch.store import agencies
    from tests.dispatch.helpers import incident

    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("t-1"), headers=agency.auth
    )
    incident_id = (await resp.json())["incident_id"]
    other_id, other_key = await agencies.create_agency(db, name="Other")
    _, other_sup = await agencies.create_supervisor(db, agency_id=other_id, name="S")
    for token in (other_key, other_sup):
        resp = await client.get(
            f"/v1/incidents/{incident_id}/timeline", headers={"Authorization": f"Bearer {token}"}
        )
        assert resp.status == 404
    for headers in (agency.auth, agency.supervisor_auth):
        resp = await client.get(f"/v1/incidents/{incident_id}/timeline", headers=headers)
        assert resp.status == 200
        assert (await resp.json())["events"][0]["event"] == "incident_received"
    resp = await client.get(f"/v1/incidents/{incident_id}/timeline")
    assert resp.status == 401
