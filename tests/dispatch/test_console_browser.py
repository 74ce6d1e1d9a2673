"""The console in headless Chromium against a real ``dispatch serve`` process.

One server, one agency and one browser for the module (each test opens its own browser
context); every request the browser makes is recorded and must go to the server under test.
Screenshots go to ``$DISPATCH_TEST_ARTIFACTS`` (default ``test-artifacts/``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from tests.dispatch import pg
from tests.dispatch.browser import CHROMIUM, launch_chromium
from tests.dispatch.browser import artifacts as browser_artifacts
from tests.dispatch.helpers import CENTRE, AgencyAuth, incident, offset
from tests.dispatch.serve_process import ServeProcess, run_cli
from tests.fakes.tile_server import tile_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.storage,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def artifacts() -> Path:
    return browser_artifacts("console")


@dataclass
class Stack(AgencyAuth):
    base: str
    database_url: str
    agency_id: str
    key: str
    supervisor_token: str
    volunteers: list[tuple[int, str]] = field(default_factory=list)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(admin_dsn: str, template_name: str, tmp_path_factory: Any) -> AsyncIterator[Stack]:
    name = await pg.create_test_database(admin_dsn, template_name)
    url = pg.with_database(admin_dsn, name)
    folder = tmp_path_factory.mktemp("console")
    env = {"DATABASE_URL": url}
    agency = await run_cli(env, "agency", "create", "--name", "Console agency")
    agency_id = agency["agency_id"]
    supervisor = await run_cli(env, "supervisor", "create", "--agency", agency_id, "--name", "Sam")
    server = ServeProcess(env, folder / "serve.log")
    try:
        await server.wait_ready()
        yield Stack(
            server.base, url, agency["agency_id"], agency["integration_key"], supervisor["token"]
        )
    finally:
        await server.terminate()
        await pg.drop_test_database(admin_dsn, name)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with launch_chromium() as chromium:
        yield chromium


@dataclass
class Tab:
    page: Any
    requests: list[str]
    elsewhere: list[str] = field(default_factory=list)
    """Origins besides the server under test the page may load from (a tile server)."""


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Any, stack: Stack) -> AsyncIterator[Tab]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    opened = Tab(page, requests)
    try:
        yield opened
    finally:
        await context.close()
    allowed = (stack.base + "/", *(origin + "/" for origin in opened.elsewhere))
    foreign = [url for url in requests if not url.startswith(allowed)]
    assert not foreign, f"requests to other origins: {foreign}"
    # A refused call (401 before sign-in) is logged by the browser as a failed resource load.
    real = [e for e in errors if "status of 401" not in e and "status of 422" not in e]
    assert not real, f"errors in the page: {real}"


async def _sign_in(tab: Tab, stack: Stack) -> None:
    page = tab.page
    await page.goto(f"{stack.base}/console/")
    await page.fill("#token", stack.supervisor_token)
    await page.click("#signin-form button[type=submit]")
    await page.wait_for_selector("#board-status.live")


async def _api(
    method: str, url: str, headers: dict[str, str], body: Any = None, status: int = 200
) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body, headers=headers) as resp,
    ):
        text = await resp.text()
        assert resp.status == status, text
        return json.loads(text) if text else None


async def _post_incident(stack: Stack, report: dict[str, Any]) -> Any:
    """The CAD posts ``report`` with the agency's key; the 202 answer."""
    url = f"{stack.base}/v1/cad/{stack.agency_id}/incidents"
    return await _api("POST", url, stack.auth, report, status=202)


async def _volunteers(stack: Stack, distances: list[float]) -> None:
    """Volunteers with fresh positions ``distances`` metres north of the patient."""
    for north in distances:
        made = await _api(
            "POST",
            f"{stack.base}/v1/agencies/{stack.agency_id}/volunteers",
            stack.supervisor_auth,
            {"display_name": "V"},
            status=201,
        )
        auth = {"Authorization": f"Bearer {made['token']}"}
        lat, lon = offset(*CENTRE, north, 0)
        await _api("PUT", f"{stack.base}/v1/me/location", auth, {"lat": lat, "lon": lon}, 204)
        stack.volunteers.append((made["volunteer_id"], made["token"]))
    conn = await asyncpg.connect(stack.database_url)
    try:
        async with asyncio.timeout(10):
            while await conn.fetchval("SELECT count(*) FROM volunteer_positions") < len(
                stack.volunteers
            ):
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def _alert_of(stack: Stack, volunteer_id: int, incident_id: str) -> str:
    conn = await asyncpg.connect(stack.database_url)
    try:
        found = await conn.fetchval(
            "SELECT id FROM alerts WHERE volunteer_id = $1 AND incident_id = $2",
            volunteer_id,
            incident_id,
        )
    finally:
        await conn.close()
    return str(found)


async def _count(page: Any, incident_id: str, name: str) -> str:
    cell = page.locator(f'tr[data-incident="{incident_id}"] td[data-count="{name}"]')
    text: str = await cell.inner_text()
    return text


async def test_board_follows_intake_and_answers_and_the_incident_page_draws_them(
    tab: Tab, stack: Stack
) -> None:
    page = tab.page
    await _sign_in(tab, stack)
    await _volunteers(stack, [120, 260, 380])
    lat, lon = offset(*CENTRE, -150, 80)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{stack.base}/v1/agencies/{stack.agency_id}/aeds",
            data=f"id,name,lat,lon\nA1,Station hall,{lat},{lon}\n",
            headers={**stack.supervisor_auth, "Content-Type": "text/csv"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
    # Marks this document: a reload would lose it.
    await page.evaluate("window.__notReloaded = true")

    posted_at = time.perf_counter()
    posted = await _post_incident(
        stack, incident("browser-1", address="Dam 1, Amsterdam", version=1)
    )
    incident_id = posted["incident_id"]
    row = page.locator(f'tr[data-incident="{incident_id}"]')
    await row.wait_for(timeout=5000)
    shown_s = time.perf_counter() - posted_at
    await page.wait_for_function(
        'id => document.querySelector(`tr[data-incident="${id}"] td[data-count=alerted]`)'
        "?.textContent === '3'",
        arg=incident_id,
        timeout=5000,
    )
    assert await page.evaluate("window.__notReloaded") is True
    assert "Dam 1, Amsterdam" in await row.inner_text()

    volunteer_id, token = stack.volunteers[0]
    alert_id = await _alert_of(stack, volunteer_id, incident_id)
    answered_at = time.perf_counter()
    await _api(
        "POST", f"{stack.base}/v1/alerts/{alert_id}/accept", {"Authorization": f"Bearer {token}"}
    )
    await page.wait_for_function(
        'id => document.querySelector(`tr[data-incident="${id}"] td[data-count=accepted]`)'
        "?.textContent === '1'",
        arg=incident_id,
        timeout=5000,
    )
    answer_s = time.perf_counter() - answered_at
    update = incident(
        "browser-1",
        address="Dam 1, Amsterdam",
        version=2,
        units=[{"unit_id": "M12", "status": "en_route"}],
    )
    await _post_incident(stack, update)
    await row.get_by_text("M12: en_route").wait_for(timeout=5000)
    assert await page.evaluate("window.__notReloaded") is True
    assert await _count(page, incident_id, "alerted") == "3"
    await page.screenshot(path=str(artifacts() / "board.png"), full_page=True)
    # Printed, not asserted: how long a change took to reach the page (-s shows it).
    print(f"board latency: intake {shown_s:.3f} s, answer {answer_s:.3f} s")

    await row.locator("a").click()
    await page.wait_for_selector("#scene-map")
    markers = page.locator("#scene-map g.responder")
    assert await markers.count() == 3
    states = sorted([await markers.nth(i).get_attribute("data-state") or "" for i in range(3)])
    assert states.count("accepted") == 1
    # The responder on the way is drawn where they are; the others only at their distance.
    assert await page.locator("#scene-map g.responder.moving").count() == 1
    assert await page.locator("#scene-map g.wave-ring").count() >= 1
    aed = page.locator("#scene-map g.aed-marker title")
    assert await aed.count() == 1
    assert "Station hall" in (await aed.text_content() or "")
    lanes = page.locator("#timeline-chart g.lane")
    labels = [await lanes.nth(i).get_attribute("data-lane") for i in range(await lanes.count())]
    assert labels[0] == "Incident"
    assert {"V1", "V2", "V3", "EMS M12"} <= set(labels)
    rows = page.locator("#timeline tbody tr")
    assert await rows.count() >= 5
    first = await rows.first.inner_text()
    assert first.startswith("+0:00")
    assert await page.locator("#metrics").is_visible()
    await page.screenshot(path=str(artifacts() / "incident.png"), full_page=True)


async def test_settings_refusals_are_shown_next_to_the_field(tab: Tab, stack: Stack) -> None:
    page = tab.page
    await _sign_in(tab, stack)
    await page.goto(f"{stack.base}/console/#/settings")
    await page.wait_for_selector("#policy-form")
    await page.fill("#policy-form [name=target_accepted]", "99")
    await page.click("#policy-form button[type=submit]")
    message = page.locator('#policy-form .field-error[data-for="target_accepted"]')
    await message.wait_for()
    await page.wait_for_function(
        "() => document.querySelector("
        "'#policy-form .field-error[data-for=target_accepted]').textContent.length > 0"
    )
    assert "/target_accepted" in await message.inner_text()
    await page.screenshot(path=str(artifacts() / "settings.png"), full_page=True)
    await page.fill("#settings-form [name=intake_rate_per_min]", "99")
    await page.click("#settings-form button[type=submit]")
    await page.wait_for_function(
        "() => document.querySelector('#settings-form [role=status]').textContent === 'Saved.'"
    )
    current = await _api(
        "GET", f"{stack.base}/v1/agencies/{stack.agency_id}/settings", stack.supervisor_auth
    )
    assert current["intake_rate_per_min"] == 99


async def test_a_wrong_token_is_told_and_an_idle_session_returns_to_sign_in(
    tab: Tab, stack: Stack
) -> None:
    page = tab.page
    await page.goto(f"{stack.base}/console/")
    await page.fill("#token", "dsv_not-a-token")
    await page.click("#signin-form button[type=submit]")
    await page.wait_for_function("() => document.querySelector('#token-error').textContent")
    assert "not valid" in await page.locator("#token-error").inner_text()
    await _sign_in(tab, stack)
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute("UPDATE console_sessions SET last_seen_at = now() - interval '2 hours'")
    finally:
        await conn.close()
    await page.click("#nav a[href='#/feeds']")
    await page.wait_for_selector("#signin-form")
    assert await page.locator("#nav").is_hidden()


async def test_sign_out_ends_the_session(tab: Tab, stack: Stack) -> None:
    page = tab.page
    await _sign_in(tab, stack)
    cookies = await page.context.cookies()
    (cookie,) = [c for c in cookies if c["name"] == "dispatch_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    await page.click("#signout")
    await page.wait_for_selector("#signin-form")
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{stack.base}/console/session",
            headers={"Cookie": f"dispatch_console={cookie['value']}"},
        ) as resp,
    ):
        assert resp.status == 401


def _cell(text: str) -> Any:
    """A CSV cell read back as the JSON value it stands for."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_rows(report: dict[str, Any], columns: list[str]) -> list[dict[str, Any]]:
    """The JSON report flattened as the CSV's rows: the total, each month, each hour."""
    groups = [("total", None, report["total"])]
    groups += [("month", m["month"], m) for m in report["by_month"]]
    groups += [("hour", h["hour"], h) for h in report["by_hour"]]
    rows = []
    for group, key, values in groups:
        row: dict[str, Any] = {"group": group, "key": key}
        for column in columns[2:]:
            if column.startswith("excluded_"):
                row[column] = values["exclusions"][column.removeprefix("excluded_")]
            else:
                row[column] = values[column]
        rows.append(row)
    return rows


async def test_report_csv_export_matches_the_json_report_cell_by_cell(
    tab: Tab, stack: Stack
) -> None:
    page = tab.page
    await _post_incident(stack, incident("report-1"))
    await _sign_in(tab, stack)
    await page.goto(f"{stack.base}/console/#/reports")
    await page.wait_for_selector("#chart-months")
    await page.wait_for_selector("#chart-hours rect", state="attached")
    async with page.expect_download() as waiting:
        await page.click("#export-activations-csv")
    download = await waiting.value
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    reader = csv.reader(io.StringIO(text))
    columns = next(reader)
    from_csv = [dict(zip(columns, map(_cell, row), strict=True)) for row in reader]
    href = await page.get_attribute("#export-activations-json", "href")
    assert href is not None
    report = await _api("GET", f"{stack.base}{href}", stack.supervisor_auth)
    expected = _json_rows(report, columns)
    assert len(from_csv) == len(expected) == 1 + len(report["by_month"]) + 24
    for got, want in zip(from_csv, expected, strict=True):
        for column in columns:
            assert got[column] == want[column], (got["group"], got["key"], column)
    assert report["total"]["activations"] >= 1
    async with page.expect_download() as waiting:
        await page.click("#export-utstein-csv")
    utstein = await waiting.value
    rows = (await asyncio.to_thread(Path(await utstein.path()).read_text)).splitlines()
    assert rows[0].startswith("incident_id,")
    assert any(",report-1," in row for row in rows[1:])
    shown = await page.locator("#report-totals dd").first.inner_text()
    assert shown == str(report["total"]["activations"])
    await page.screenshot(path=str(artifacts() / "reports.png"), full_page=True)


async def test_every_page_renders_from_our_own_origin_only(tab: Tab, stack: Stack) -> None:
    """Incidents, roster (filtered), feeds, rejected documents: drawn from the API, with no
    error in the page and no request elsewhere (the fixture checks both)."""
    page = tab.page
    await _sign_in(tab, stack)
    await _api(
        "POST",
        f"{stack.base}/v1/cad/{stack.agency_id}/incidents",
        {**stack.auth, "Content-Type": "application/json"},
        {"incident_id": "broken"},
        status=422,
    )
    await page.goto(f"{stack.base}/console/#/incidents")
    await page.wait_for_selector("#incidents tbody tr")
    await page.goto(f"{stack.base}/console/#/volunteers")
    await page.wait_for_selector("#roster-table")
    everyone = await page.locator("#roster-table tbody tr[data-volunteer]").count()
    await page.select_option("#roster-filters [name=tier]", "professional")
    await page.click("#roster-filters button[type=submit]")
    await page.wait_for_function(
        "() => !document.querySelector('#roster-table tbody tr[data-volunteer]')"
    )
    assert everyone == len(stack.volunteers)
    await page.goto(f"{stack.base}/console/#/feeds")
    await page.wait_for_selector("#feeds")
    await page.goto(f"{stack.base}/console/#/rejected")
    await page.wait_for_selector("#rejected tbody tr[data-document]")
    assert "invalid-field" in await page.locator("#rejected tbody tr").first.inner_text()


async def test_an_agency_tile_server_is_the_only_other_origin_and_only_when_set(
    tab: Tab, stack: Stack
) -> None:
    page = tab.page
    settings_url = f"{stack.base}/v1/agencies/{stack.agency_id}/settings"
    async with tile_server() as tiles:
        template = tiles.base + "/{z}/{x}/{y}.png"
        await _api("PATCH", settings_url, stack.supervisor_auth, {"map_tile_url": template})
        try:
            tab.elsewhere.append(tiles.base)
            posted = await _post_incident(stack, incident("tiles-1"))
            await _sign_in(tab, stack)
            policy = await page.evaluate(
                "fetch('/console/').then(r => r.headers.get('Content-Security-Policy'))"
            )
            assert f"img-src 'self' {tiles.base};" in policy
            await page.goto(f"{stack.base}/console/#/incident/{posted['incident_id']}")
            await page.wait_for_selector("#scene-map image.tile")
            await page.wait_for_function(
                "() => [...document.querySelectorAll('#scene-map image.tile')]"
                ".some(i => i.getBBox().width > 0)"
            )
            async with asyncio.timeout(5):
                while not tiles.tiles:
                    await asyncio.sleep(0.05)
            zooms = {z for z, _, _ in tiles.tiles}
            assert len(zooms) == 1
            assert 12 <= zooms.pop() <= 19
        finally:
            await _api("PATCH", settings_url, stack.supervisor_auth, {"map_tile_url": None})
    await page.reload()
    await page.wait_for_selector("#scene-map")
    assert await page.locator("#scene-map image").count() == 0
