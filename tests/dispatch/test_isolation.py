"""One agency or client never slows another: throttled failed authentication, paged lists,
large uploads parsed in slices. The timing side is measured by ``bench/isolation.py``;
here only "no intake request stalls" is asserted, with a bound far above any real answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from typing import Any

import aiohttp
import asyncpg
import pytest

from dispatch.config import Settings
from dispatch.domain.aed_import import AedImportError, iter_geojson, parse_geojson
from dispatch.domain.json_stream import JsonSyntaxError, object_members
from dispatch.domain.rate_limit import FailureThrottle
from dispatch.secrets import TokenKind, new_token
from dispatch.service import pacing
from dispatch.service.auth_guard import AuthGuard, client_network
from tests.dispatch import isolation_load
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import incident, post_aeds
from tests.dispatch.serve_process import ServeProcess


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with a short tarpit, so throttled requests answer quickly."""
    return dataclasses.replace(settings, auth_tarpit_s=0.01)


# --- failed authentication ------------------------------------------------------------------


def test_failure_throttle_blocks_after_the_burst_and_forgives_at_its_rate() -> None:
    throttle = FailureThrottle(burst=3, per_min=60)
    for _ in range(3):
        assert throttle.blocked_for("a", 0.0) == 0
        throttle.record("a", 0.0)
    assert throttle.blocked_for("a", 0.0) == pytest.approx(1.0)
    assert throttle.blocked_for("b", 0.0) == 0, "other keys are not affected"
    assert throttle.blocked_for("a", 1.0) == 0, "one failure forgiven per second"


def test_failure_throttle_keeps_the_key_under_attack_when_full() -> None:
    """A spray of new keys evicts the quiet ones, never the one that keeps failing."""
    throttle = FailureThrottle(burst=2, per_min=1, max_keys=10)
    for n in range(100):
        throttle.record("target", 0.0)
        throttle.record(f"spray-{n}", 0.0)
    assert throttle.blocked_for("target", 0.0) > 0


def test_auth_guard_lets_known_keys_through_a_throttled_client_and_agency() -> None:
    now = [0.0]
    guard = AuthGuard(per_client=(2, 60), per_agency=(3, 60), clock=lambda: now[0])
    agency = object()
    good = new_token(TokenKind.AGENCY_KEY)
    guard.succeeded(good)
    guard.failed("10.0.0.1", agency)  # type: ignore[arg-type]
    guard.failed("10.0.0.1", agency)  # type: ignore[arg-type]
    assert guard.wait_s("10.0.0.1", None, "dak_guess") > 0, "the client is throttled"
    assert guard.wait_s("10.0.0.2", agency, "dak_guess") == 0  # type: ignore[arg-type]
    guard.failed("10.0.0.2", agency)  # type: ignore[arg-type]
    assert guard.wait_s("10.0.0.3", agency, "dak_guess") > 0, "the agency is throttled"  # type: ignore[arg-type]
    assert guard.wait_s("10.0.0.1", agency, good) == 0, "a key that worked passes"  # type: ignore[arg-type]
    now[0] = 25 * 3600.0
    assert guard.wait_s("10.0.0.1", agency, good) == 0, "failures forgiven by now"  # type: ignore[arg-type]


def test_ipv6_clients_are_throttled_by_their_64() -> None:
    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2:bbbb::9")
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")
    assert client_network("192.0.2.7") == "192.0.2.7"
    assert client_network(None) == "unknown"


async def test_wrong_keys_are_throttled_without_slowing_the_right_one(
    client: Any, agency: AgencyFixture
) -> None:
    """After the burst, wrong keys get 429 + Retry-After; the agency's own key still works."""
    url = f"/v1/cad/{agency.agency_id}/incidents"
    ok = await client.post(url, json=incident("before"), headers=agency.auth)
    assert ok.status == 202
    statuses = []
    for _ in range(30):
        wrong = {"Authorization": f"Bearer {new_token(TokenKind.AGENCY_KEY)}"}
        resp = await client.post(url, json=incident("x"), headers=wrong)
        statuses.append(resp.status)
        if resp.status == 429:
            assert resp.content_type == "application/problem+json"
            assert int(resp.headers["Retry-After"]) >= 1
            assert (await resp.json())["type"] == "/problems/too-many-failed-attempts"
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}
    resp = await client.post(url, json=incident("during"), headers=agency.auth)
    assert resp.status == 202
    # A key never seen to work here is held back (it is the client that failed)...
    unseen = {"Authorization": f"Bearer {new_token(TokenKind.AGENCY_KEY)}"}
    resp = await client.post(url, json=incident("y"), headers=unseen)
    assert resp.status == 429
    # ...while no key at all costs no look-up and guesses nothing: a plain 401.
    for headers in ({"Authorization": "Bearer nope"}, {}):
        resp = await client.post(url, json=incident("z"), headers=headers)
        assert resp.status == 401


async def test_concurrent_guesses_cannot_slip_past_the_throttle(
    client: Any, agency: AgencyFixture
) -> None:
    """Fifty guesses at once: each is counted before its look-up, so only the burst is checked."""
    url = f"/v1/cad/{agency.agency_id}/incidents"

    async def guess() -> int:
        wrong = {"Authorization": f"Bearer {new_token(TokenKind.AGENCY_KEY)}"}
        async with client.post(url, json=incident("x"), headers=wrong) as resp:
            status: int = resp.status
            return status

    statuses = await asyncio.gather(*(guess() for _ in range(50)))
    assert statuses.count(401) == 20
    assert statuses.count(429) == 30


def test_a_refunded_attempt_does_not_count() -> None:
    throttle = FailureThrottle(burst=1, per_min=1)
    throttle.record("a", 0.0)
    assert throttle.blocked_for("a", 0.0) > 0
    throttle.refund("a", 0.0)
    assert throttle.blocked_for("a", 0.0) == 0


async def test_failed_supervisor_and_volunteer_tokens_are_throttled_too(
    client: Any, agency: AgencyFixture
) -> None:
    settings_url = f"/v1/agencies/{agency.agency_id}/settings"
    assert (await client.get(settings_url, headers=agency.supervisor_auth)).status == 200
    statuses = set()
    for _ in range(25):
        wrong = {"Authorization": f"Bearer {new_token(TokenKind.SUPERVISOR)}"}
        statuses.add((await client.get(settings_url, headers=wrong)).status)
    assert statuses == {401, 429}
    assert (await client.get(settings_url, headers=agency.supervisor_auth)).status == 200
    wrong = {"Authorization": f"Bearer {new_token(TokenKind.VOLUNTEER)}"}
    resp = await client.put("/v1/me/location", json={"lat": 1, "lon": 1}, headers=wrong)
    assert resp.status == 429


# --- AED registry: uploads in slices, lists in pages ----------------------------------------


def _csv(rows: int, *, width: int = 0) -> bytes:
    lines = ["id,name,lat,lon,access_notes"]
    lines += [
        f"aed-{i},AED {i},52.{i % 1000:03d},4.{i % 997:03d},{'n' * width}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


async def test_aed_list_pages_newest_first_and_names_bad_parameters(
    client: Any, agency: AgencyFixture
) -> None:
    url = f"/v1/agencies/{agency.agency_id}/aeds"
    headers = {**agency.supervisor_auth, "Content-Type": "text/csv"}
    resp = await client.post(url, data=_csv(7), headers=headers)
    assert await resp.json() == {"imported": 7}
    seen: list[str] = []
    before: int | None = None
    while True:
        params = {"limit": "3"} | ({"before": str(before)} if before else {})
        resp = await client.get(url, params=params, headers=agency.supervisor_auth)
        assert resp.status == 200
        page = await resp.json()
        seen += [a["external_id"] for a in page["aeds"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == [f"aed-{i}" for i in reversed(range(7))]
    resp = await client.get(url, headers=agency.supervisor_auth)
    assert len((await resp.json())["aeds"]) == 7
    for params, name in [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"before": "-1"}, "before"),
        ({"before": str(2**64)}, "before"),
    ]:
        resp = await client.get(url, params=params, headers=agency.supervisor_auth)
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["invalid-params"][0]["name"] == name


async def test_a_registry_larger_than_the_api_body_limit_imports_and_a_huge_one_is_refused(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    url = f"/v1/agencies/{agency.agency_id}/aeds"
    headers = {**agency.supervisor_auth, "Content-Type": "text/csv"}
    body = _csv(5000, width=300)
    assert len(body) > 1024 * 1024
    resp = await client.post(url, data=io.BytesIO(body), headers=headers)
    assert resp.status == 200, await resp.text()
    assert await db.fetchval("SELECT count(*) FROM aeds") == 5000
    huge = io.BytesIO(b"x" * (17 * 1024 * 1024))
    resp = await client.post(url, data=huge, headers=headers)
    assert resp.status == 413
    assert resp.content_type == "application/problem+json"


async def test_a_bad_row_late_in_a_file_stores_nothing(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    body = _csv(3000) + b"aed-bad,Bad,91,4\n"
    resp = await post_aeds(client, agency, body)
    assert resp.status == 422
    assert (await resp.json())["pointer"] == "/line/3002/lat"
    assert await db.fetchval("SELECT count(*) FROM aeds") == 0


def _feature(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": f"g{i}",
        "geometry": {"type": "Point", "coordinates": [4.9, 52.37]},
        "properties": {"name": f"AED {i}", **extra},
    }


def test_geojson_read_feature_by_feature_agrees_with_the_whole_document() -> None:
    doc = {"features": [_feature(i) for i in range(5)], "name": "x", "type": "FeatureCollection"}
    text = json.dumps(doc)
    assert list(iter_geojson(text)) == parse_geojson(json.loads(text))
    spaced = json.dumps(doc, indent=3)
    assert list(iter_geojson(spaced)) == parse_geojson(doc)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"type": "FeatureCollection", "features": [,]}', JsonSyntaxError),
        ('{"type": "FeatureCollection", "features": []} x', JsonSyntaxError),
        ('{"type": "FeatureCollection", "features": [NaN]}', JsonSyntaxError),
        ('{"type": "FeatureCollection" "features": []}', JsonSyntaxError),
        ("[]", JsonSyntaxError),
        ('{"features": []}', AedImportError),
        ('{"type": "FeatureCollection"}', AedImportError),
        ('{"type": "FeatureCollection", "features": {}}', AedImportError),
        ('{"type": "FeatureCollection", "features": [1]}', AedImportError),
    ],
)
def test_geojson_read_feature_by_feature_refuses_what_json_and_geojson_refuse(
    text: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        list(iter_geojson(text))


def test_object_members_reads_what_the_caller_leaves_of_a_streamed_array() -> None:
    members = object_members('{"a": [1, [2], 3], "b": {"c": 4}}', streamed=frozenset({"a"}))
    name, elements = next(members)
    assert (name, next(elements)) == ("a", 1)
    assert next(members) == ("b", {"c": 4})
    with pytest.raises(JsonSyntaxError):
        list(object_members('{"a": [1, 2', streamed=frozenset({"a"})))


async def test_geojson_upload_errors_name_the_feature(client: Any, agency: AgencyFixture) -> None:
    url = f"/v1/agencies/{agency.agency_id}/aeds"
    headers = {**agency.supervisor_auth, "Content-Type": "application/geo+json"}
    bad = _feature(1)
    bad["geometry"]["coordinates"] = [4.9, 95]
    doc = {"type": "FeatureCollection", "features": [_feature(0), bad]}
    resp = await client.post(url, data=json.dumps(doc), headers=headers)
    assert resp.status == 422
    assert (await resp.json())["pointer"] == "/features/1/geometry/coordinates/1"
    resp = await client.post(
        url, data=b'{"type": "FeatureCollection", "features": [', headers=headers
    )
    assert resp.status == 400
    doc["features"] = [_feature(0), _feature(1)]
    resp = await client.post(url, data=json.dumps(doc), headers=headers)
    assert await resp.json() == {"imported": 2}


async def test_collect_hands_the_loop_back_during_long_work() -> None:
    """Other tasks run while a long iteration is collected."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    def slow_items() -> Any:
        for n in range(200):
            sum(range(20_000))  # some real work per item
            yield n

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    items = await pacing.collect(slow_items(), slice_s=0.001)
    task.cancel()
    assert items == list(range(200))
    assert ticks > 5


async def test_a_large_cad_document_is_parsed_and_a_bad_one_kept_for_audit(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Documents over the threshold take the worker-thread path with the same answers."""
    url = f"/v1/cad/{agency.agency_id}/incidents"
    headers = {**agency.auth, "Content-Type": "application/json"}
    units = [{"unit_id": f"U{i}", "status": "dispatched"} for i in range(100)]
    big = incident("big-1", units=units)
    padding = " " * (64 * 1024)  # whitespace is JSON too
    resp = await client.post(url, data=json.dumps(big, indent=8) + padding, headers=headers)
    assert resp.status == 202, await resp.text()
    big["location"] = {"lat": 95, "lon": 4}
    resp = await client.post(url, data=json.dumps(big) + padding, headers=headers)
    assert resp.status == 422
    assert (await resp.json())["pointer"] == "/location/lat"
    assert await db.fetchval("SELECT count(*) FROM rejected_documents") == 1


# --- the whole server under load ------------------------------------------------------------


@pytest.mark.slow
async def test_no_intake_request_stalls_during_a_big_import_and_a_wrong_key_flood(
    database_url: str, tmp_path: Any
) -> None:
    """A 50,000-row AED import and 3,000 wrong keys while another agency sends CAD documents.

    Loose on purpose (timing belongs to ``bench/isolation.py``): every intake request is
    answered 202 within 1 s, the import is stored whole and the flood is throttled.
    """
    conn = await asyncpg.connect(database_url)
    try:
        measured = await isolation_load.new_agency(conn, "Measured", volunteers=2_000)
        importer = await isolation_load.new_agency(conn, "Importer")
        other = await isolation_load.new_agency(conn, "Other")
    finally:
        await conn.close()
    env = {
        "DATABASE_URL": database_url,
        "DISPATCH_LOG_LEVEL": "warning",
        # Throttled guesses wait this long for their 429: short, so 3,000 of them from
        # 20 connections take seconds, not minutes, and still all hit the server.
        "DISPATCH_AUTH_TARPIT_S": "0.05",
    }
    server = ServeProcess(env, tmp_path / "serve.log")
    try:
        await server.wait_ready(timeout_s=60)
        body = isolation_load.aed_csv(50_000)
        async with aiohttp.ClientSession() as session:
            done = asyncio.Event()
            intake = asyncio.create_task(
                isolation_load.paced_intake(
                    session, server.base, measured, interval_s=0.05, until=done, prefix="t"
                )
            )
            flood = asyncio.create_task(
                isolation_load.wrong_key_flood(
                    server.base, [measured.agency_id, other.agency_id], count=3000, concurrency=20
                )
            )
            status, _ = await isolation_load.import_aeds(session, server.base, importer, body)
            flooded = await flood
            done.set()
            samples = await intake
    finally:
        assert await server.terminate() == 0
    assert status == 200
    assert flooded.statuses.get(429, 0) > 2500
    assert samples.statuses == {202: len(samples.latencies_ms)}
    assert len(samples.latencies_ms) >= 10
    assert max(samples.latencies_ms) < 1000, sorted(samples.latencies_ms)[-5:]
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM aeds") == 50_000
    finally:
        await conn.close()
    assert "Traceback" not in server.output()
