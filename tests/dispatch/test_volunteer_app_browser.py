"""The volunteer app in headless Chromium against the real ``dispatch serve`` process.

A volunteer signs up with the code from the ``log`` provider's file (their phone), adds a
certificate that a supervisor approves, goes on duty at a position the test sets, is
alerted to a CAD cardiac arrest, accepts, reads the role, AED and navigate links, is
stood down when CAD cancels, answers the aftercare question, and goes off duty. A second
test serves the service behind a proxy on a path prefix. In both, every request the
browser makes goes to the server under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from dispatch.store import agencies as agency_store
from tests.dispatch.browser import CHROMIUM, launch_chromium
from tests.dispatch.browser import artifacts as browser_artifacts
from tests.dispatch.helpers import CENTRE, incident, offset
from tests.dispatch.serve_process import ServeProcess, free_port, served_database

pytestmark = pytest.mark.slow

PREFIX = "/dispatch"
AED_NORTH_M, HELPER_NORTH_M, APP_NORTH_M = 150, 40, 250
ACCESS_NOTES = "Code 1234 at the side door"
ADDRESS = "Damrak 1, Amsterdam"
PHONE = "+31612000001"
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/130.0.0.0 Mobile Safari/537.36"
)
PREFIX_PHONE = "+31612000002"


# Counts the ring's vibrations and tones (headless Chromium has neither a motor nor speakers).
RING_PROBE = """
window.__ring = {vibrations: 0, stops: 0, tones: 0};
navigator.vibrate = (pattern) => {
  if (pattern === 0) window.__ring.stops += 1; else window.__ring.vibrations += 1;
  return true;
};
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) {
  window.__ring.tones += 1;
  return start.apply(this, args);
};
"""


def artifacts() -> Path:
    return browser_artifacts("volunteer-app")


@dataclass
class Stack:
    dsn: str
    server: ServeProcess
    sent_file: Path
    proxy_port: int


@pytest.fixture(scope="module")
def stack(
    admin_dsn: str, template_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    folder = tmp_path_factory.mktemp("volunteer-app")
    sent_file = folder / "phone.jsonl"
    proxy_port = free_port()
    env = {
        "DISPATCH_LOG_PROVIDER_FILE": str(sent_file),
        "DISPATCH_PUBLIC_BASE_URL": f"http://127.0.0.1:{proxy_port}{PREFIX}",
        "DISPATCH_TICKER_TICK_S": "0.2",
    }
    with served_database(admin_dsn, template_name, env, folder / "serve.log") as (dsn, server):
        yield Stack(dsn, server, sent_file, proxy_port)


@dataclass
class Agency:
    agency_id: UUID
    key: str
    supervisor: str


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, method: str, path: str, token: str, status: int = 200, **kw: Any) -> Any:
        headers = {**kw.pop("headers", {}), "Authorization": f"Bearer {token}"}
        async with self.session.request(method, self.base + path, headers=headers, **kw) as resp:
            body = await resp.read()
            assert resp.status == status, (method, path, resp.status, body[:300])
            return json.loads(body) if body and resp.content_type.endswith("json") else None


async def _agency(dsn: str, name: str) -> Agency:
    conn = await asyncpg.connect(dsn)
    try:
        agency_id, key = await agency_store.create_agency(conn, name=name)
        _, supervisor = await agency_store.create_supervisor(conn, agency_id=agency_id, name="S")
    finally:
        await conn.close()
    return Agency(agency_id, key, supervisor)


def _code_in(sent_file: Path, phone: str) -> str | None:
    if not sent_file.exists():
        return None
    found = None
    for line in sent_file.read_text().splitlines():
        record = json.loads(line)
        if record.get("to") == phone and record["data"].get("kind") == "code":
            found = str(record["body"].split()[0])
    return found


async def _code(sent_file: Path, phone: str) -> str:
    """The code texted to ``phone``, from the log provider's file (the phone's inbox)."""
    async with asyncio.timeout(10):
        while (code := await asyncio.to_thread(_code_in, sent_file, phone)) is None:
            await asyncio.sleep(0.05)
    return code


async def _eventually(probe: Any, timeout_s: float = 10.0) -> Any:
    async with asyncio.timeout(timeout_s):
        while not (found := await probe()):
            await asyncio.sleep(0.05)
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with launch_chromium() as chromium:
        yield chromium


async def _app_context(
    browser: Any, base: str, lat: float, lon: float, **more: Any
) -> tuple[Any, list[str]]:
    context = await browser.new_context(
        geolocation={"latitude": lat, "longitude": lon, "accuracy": 12},
        permissions=["geolocation"],
        locale="en-GB",
        service_workers="allow",
        **more,
    )
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    return context, requested


@contextlib.asynccontextmanager
async def _evidence(page: Any, name: str) -> AsyncIterator[None]:
    """On a failure, a screenshot and what the app said are kept beside the others."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            await page.screenshot(path=str(artifacts() / f"failed-{name}.png"), full_page=True)
            said = await page.inner_text("#notice")
            (artifacts() / f"failed-{name}.txt").write_text(f"{page.url}\n{said}\n")
        raise


def _outside(requested: list[str], base: str) -> list[str]:
    return [url for url in requested if not url.startswith(base + "/")]


async def _sign_up(page: Any, sent_file: Path, name: str, phone: str) -> None:
    await page.fill('#signup-form [name="display_name"]', name)
    await page.fill('#signup-form [name="phone_e164"]', phone)
    await page.click('#signup-form button[type="submit"]')
    try:
        await page.wait_for_selector('[data-screen="code"]:not([hidden])', timeout=10_000)
    except Exception as exc:
        said = await page.inner_text("#notice")
        raise AssertionError(f"no code screen; the app said: {said!r}") from exc
    await page.fill('#code-form [name="code"]', await _code(sent_file, phone))
    await page.click('#code-form button[type="submit"]')
    await page.wait_for_selector('[data-screen="home"]:not([hidden])')


async def _certify(page: Any, api: Api, agency: Agency) -> None:
    """The volunteer enters a certificate in the app; the supervisor approves it."""
    await page.goto(page.url.split("#")[0] + "#credentials")
    await page.fill('#credential-form [name="issuer"]', "Dutch Resuscitation Council")
    await page.fill('#credential-form [name="expires_on"]', "2150-01-01")
    await page.click('#credential-form button[type="submit"]')
    await page.wait_for_selector("#credential-list li")
    pending = await api.call(
        "GET", f"/v1/agencies/{agency.agency_id}/credentials?state=pending", agency.supervisor
    )
    (credential,) = pending["credentials"]
    await api.call(
        "POST",
        f"/v1/agencies/{agency.agency_id}/credentials/{credential['credential_id']}/approve",
        agency.supervisor,
    )
    await page.goto(page.url.split("#")[0] + "#home")
    await page.wait_for_selector('[data-screen="home"]:not([hidden])')


async def _position(dsn: str, volunteer_id: int) -> asyncpg.Record | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(
            "SELECT lat, lon, accuracy_m FROM volunteer_positions WHERE volunteer_id = $1",
            volunteer_id,
        )
    finally:
        await conn.close()


async def _volunteer_id(page: Any) -> int:
    stored = await page.evaluate("localStorage.getItem('dispatch.session')")
    return int(json.loads(stored)["volunteer_id"])


async def _moves(page: Any, dsn: str, volunteer_id: int, home: tuple[float, float]) -> None:
    """20 m is not worth a fix within 30 s; 80 m is sent at once, and so is the way back."""
    near = offset(*home, 20, 0)
    far = offset(*home, 80, 0)
    context = page.context
    await context.set_geolocation({"latitude": near[0], "longitude": near[1], "accuracy": 9})
    await asyncio.sleep(1.0)
    row = await _position(dsn, volunteer_id)
    assert row is not None
    assert row["lat"] == pytest.approx(home[0])
    for lat, lon in (far, home):
        await context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 9})

        async def moved(lat: float = lat) -> bool:
            row = await _position(dsn, volunteer_id)
            return row is not None and row["lat"] == pytest.approx(lat)

        await _eventually(moved)


async def _sign_in_elsewhere(context: Any, base: str, agency: Agency, sent_file: Path) -> None:
    """A second device signs in with a new code and lists both devices."""
    page = await context.new_page()
    async with _evidence(page, "sign-in"):
        await page.goto(f"{base}/app/?agency={agency.agency_id}#signin")
        await page.fill('#signin-form [name="phone_e164"]', PHONE)
        before = await asyncio.to_thread(_code_in, sent_file, PHONE)
        await page.click('#signin-form button[type="submit"]')
        await page.wait_for_selector('[data-screen="code"]:not([hidden])')

        async def new_code() -> str | None:
            code = await asyncio.to_thread(_code_in, sent_file, PHONE)
            return code if code != before else None

        await page.fill('#code-form [name="code"]', await _eventually(new_code))
        await page.click('#code-form button[type="submit"]')
        await page.wait_for_selector("#duty-label:has-text('Off duty')")
        await page.goto(f"{base}/app/#sessions")
        await page.wait_for_selector("#session-list li:nth-child(2)")
        assert await page.locator("#session-list li button:has-text('Sign out here')").count() == 1
    await context.close()


async def test_sign_up_go_on_duty_answer_an_alert_and_stand_down(
    stack: Stack, browser: Any
) -> None:
    base = stack.server.base
    agency = await _agency(stack.dsn, "App agency")
    shots = artifacts()
    aed_lat, aed_lon = offset(*CENTRE, AED_NORTH_M, 0)
    app_lat, app_lon = offset(*CENTRE, APP_NORTH_M, 0)
    async with aiohttp.ClientSession() as session:
        api = Api(session, base)
        await api.call(
            "POST",
            f"/v1/agencies/{agency.agency_id}/aeds",
            agency.supervisor,
            data=f"id,name,lat,lon,indoor_description,access_notes\n"
            f"L1,Library,{aed_lat},{aed_lon},Lobby by the stairs,{ACCESS_NOTES}\n",
            headers={"Content-Type": "text/csv"},
        )
        helper = await api.call(
            "POST",
            f"/v1/agencies/{agency.agency_id}/volunteers",
            agency.supervisor,
            status=201,
            json={"display_name": "Nearest"},
        )
        h_lat, h_lon = offset(*CENTRE, HELPER_NORTH_M, 0)
        await api.call(
            "PUT", "/v1/me/location", helper["token"], 204, json={"lat": h_lat, "lon": h_lon}
        )

        context, requested = await _app_context(
            browser,
            base,
            app_lat,
            app_lon,
            user_agent=ANDROID,
            is_mobile=True,
            has_touch=True,
            viewport={"width": 412, "height": 915},
        )
        await context.add_init_script(RING_PROBE)
        page = await context.new_page()
        async with _evidence(page, "duty-alert"):
            await page.goto(f"{base}/app/?agency={agency.agency_id}")
            await page.wait_for_selector('[data-screen="signup"]:not([hidden])')
            await page.screenshot(path=str(shots / "sign-up.png"), full_page=True)
            await _sign_up(page, stack.sent_file, "Anna", PHONE)
            volunteer_id = await _volunteer_id(page)
            await _certify(page, api, agency)

            # On duty: the fix the browser gives is sent, with its accuracy, and kept.
            assert await page.is_checked("#duty-switch") is False
            await page.click(".switch")
            await page.wait_for_selector("#duty-last:has-text('Last position sent')")
            row = await _eventually(lambda: _position(stack.dsn, volunteer_id))
            assert (row["lat"], row["lon"]) == (pytest.approx(app_lat), pytest.approx(app_lon))
            assert row["accuracy_m"] == 12
            assert "50 metres" in await page.inner_text("#duty-explain")
            await page.screenshot(path=str(shots / "on-duty.png"), full_page=True)
            await _moves(page, stack.dsn, volunteer_id, (app_lat, app_lon))

            # The app holds the live stream (and so polls only every 30 s as a safety net).
            await page.wait_for_selector("#live-status:has-text('Connected')")
            # A CAD cardiac arrest: both are alerted (the index holds the app's position).
            doc = incident("app-e2e", address=ADDRESS)
            posted = await api.call(
                "POST", f"/v1/cad/{agency.agency_id}/incidents", agency.key, 202, json=doc
            )
            started = time.monotonic()
            assert posted["alerts_queued"] == 2
            await page.wait_for_selector('[data-screen="alert"]:not([hidden])', timeout=2000)
            await page.wait_for_selector("#alert-role:has-text('Fetch the AED')", timeout=2000)
            shown_after_s = time.monotonic() - started
            assert await page.inner_text("#aed-name") == "Library"
            assert ACCESS_NOTES in await page.inner_text("#aed-access")
            # On Android the map app opens from a geo: URI; nothing is fetched until it is tapped.
            aed_at = f"{aed_lat:.6f},{aed_lon:.6f}"
            assert await page.get_attribute("#aed-navigate", "href") == f"geo:{aed_at}?q={aed_at}"
            patient_at = f"{CENTRE[0]:.6f},{CENTRE[1]:.6f}"
            patient_link = await page.get_attribute("#patient-navigate", "href")
            assert patient_link == f"geo:{patient_at}?q={patient_at}"
            # The AED is 100 m south of the volunteer.
            assert await page.inner_text("#alert-distance") == "100 m south"
            assert ADDRESS not in await page.inner_text("#alert-patient")
            await page.screenshot(path=str(shots / "alert.png"), full_page=True)
            ring = await page.evaluate("window.__ring")
            assert ring["vibrations"] >= 1
            assert ring["tones"] >= 2, "the two-tone ring plays (the duty tap unlocked audio)"

            await page.click('[data-answer="accept"]')
            await page.wait_for_selector(f"#patient-address:has-text('{ADDRESS}')")
            assert (await page.evaluate("window.__ring"))["stops"] >= 1, "accepting stops it"
            await page.click('[data-answer="en-route"]')
            await page.wait_for_selector('[data-answer="en-route"]', state="hidden")
            timeline = await api.call(
                "GET", f"/v1/incidents/{posted['incident_id']}/timeline", agency.key
            )
            mine = [e for e in timeline["events"] if e.get("volunteer_id") == volunteer_id]
            names = [e["event"] for e in mine]
            assert "alert_delivered" in names
            assert names.index("alert_delivered") < names.index("alert_accepted")
            delivered = mine[names.index("alert_delivered")]
            assert delivered["details"]["channel"] == "live"
            sent = [e["details"]["channel"] for e in mine if e["event"] == "alert_sent"]
            assert sent == ["live"], "sent down the live stream"

            # CAD cancels: the app says to stand down, and asks how they are.
            await api.call(
                "POST",
                f"/v1/cad/{agency.agency_id}/incidents",
                agency.key,
                202,
                json={**doc, "status": "cancelled", "version": 2},
            )
            await page.wait_for_selector("#alert-ended-text:has-text('stand down')")
            await page.wait_for_selector("#aftercare-form:not([hidden])")
            await page.check('#aftercare-form [name="wants_to_talk"]')
            await page.click('#aftercare-form button[type="submit"]')
            await page.wait_for_selector("#aftercare-form", state="hidden")

            # Off duty: the position is deleted, and the next incident alerts only the helper.
            await page.click("#alert-close")
            await page.wait_for_selector("#duty-switch:checked", state="attached")
            await page.click(".switch")
            await page.wait_for_selector("#duty-label:has-text('Off duty')")
            assert await _position(stack.dsn, volunteer_id) is None
            again = await api.call(
                "POST",
                f"/v1/cad/{agency.agency_id}/incidents",
                agency.key,
                202,
                json=incident("app-e2e-2"),
            )
            assert again["alerts_queued"] == 1
        await context.close()
        second, also_requested = await _app_context(browser, base, app_lat, app_lon)
        await _sign_in_elsewhere(second, base, agency, stack.sent_file)
    requested += also_requested
    assert not _outside(requested, base), _outside(requested, base)
    (shots / "timings.json").write_text(json.dumps({"alert_shown_after_s": shown_after_s}))


async def _proxy(port: int, target: str) -> web.AppRunner:
    """A reverse proxy that serves the service under ``PREFIX``, as an operator's would."""
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path_qs
        if not path.startswith(PREFIX + "/"):
            return web.Response(status=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with session.request(
            request.method,
            target + path.removeprefix(PREFIX),
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in ("transfer-encoding", "content-length", "connection"):
                    response.headers.add(name, value)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)

    async def close_session(_: web.Application) -> None:
        await session.close()

    app.on_cleanup.append(close_session)
    # A closed browser ends its forwarded live stream at once, not at the next heartbeat.
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _settings_sessions_export_and_erasure(page: Any, dsn: str, volunteer_id: int) -> None:
    """Dutch from the profile, quiet hours, budget and channels; the device list; the export;
    and erasure, which signs the app out."""
    app = page.url.split("#")[0]
    await page.goto(app + "#settings")
    form = "#settings-form"
    await page.wait_for_selector(f'{form} [name="display_name"]')
    await page.select_option(f'{form} [name="language"]', "nl")
    await page.fill(f'{form} [name="quiet_from"]', "23:00")
    await page.fill(f'{form} [name="quiet_until"]', "07:00")
    await page.fill(f'{form} [name="time_zone"]', "Europe/Amsterdam")
    await page.fill(f'{form} [name="daily_budget"]', "3")
    await page.check(f'{form} [name="refuse_voice"]')
    await page.click(f'{form} button[type="submit"]')
    await page.wait_for_selector("#notice:has-text('Opgeslagen')")
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT v.language, v.quiet_from::text, v.quiet_until::text, v.daily_budget,"
            " vc.refused FROM volunteers v JOIN volunteer_channels vc ON vc.volunteer_id = v.id"
            " WHERE v.id = $1",
            volunteer_id,
        )
        assert tuple(row) == ("nl", "23:00:00", "07:00:00", 3, ["voice"])
        await page.goto(app + "#sessions")
        await page.wait_for_selector("#session-list li button:has-text('Hier uitloggen')")
        await page.goto(app + "#data")
        async with page.expect_download() as download:
            await page.click("#export")
        saved = Path(await (await download.value).path())
        exported = json.loads(await asyncio.to_thread(saved.read_text))
        assert exported["profile"]["volunteer_id"] == volunteer_id
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.click("#delete")
        await page.wait_for_selector('[data-screen="signup"]:not([hidden])')
        assert (
            await conn.fetchval("SELECT count(*) FROM volunteers WHERE id = $1", volunteer_id) == 0
        )
    finally:
        await conn.close()


async def test_behind_a_path_prefix_every_request_stays_under_it(
    stack: Stack, browser: Any
) -> None:
    agency = await _agency(stack.dsn, "Prefix agency")
    runner = await _proxy(stack.proxy_port, stack.server.base)
    public = f"http://127.0.0.1:{stack.proxy_port}{PREFIX}"
    lat, lon = offset(*CENTRE, 500, 0)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(session, stack.server.base)
            context, requested = await _app_context(browser, public, lat, lon)
            page = await context.new_page()
            async with _evidence(page, "prefix"):
                await page.goto(f"{public}/app?agency={agency.agency_id}")
                await page.wait_for_selector('[data-screen="signup"]:not([hidden])')
                assert page.url.startswith(f"{public}/app/")
                await _sign_up(page, stack.sent_file, "Bram", PREFIX_PHONE)
                volunteer_id = await _volunteer_id(page)
                await _certify(page, api, agency)
                await page.click(".switch")
                row = await _eventually(lambda: _position(stack.dsn, volunteer_id))
                assert row["lat"] == pytest.approx(lat)
                # The test alert button: the test alert rings through the same path.
                await page.click("#test-alert")
                await page.wait_for_selector("#alert-title:has-text('TEST')")
                await page.click("#alert-close")
                await page.wait_for_selector('[data-screen="home"]:not([hidden])')
                # The sending rule itself, at the edges a test cannot wait for (30 s).
                rule = await page.evaluate(
                    """import('./geo.js').then(({shouldSend}) => {
                        const at = {lat: 52.0, lon: 4.0, sentAt: 0};
                        const moved = (m) => ({lat: 52.0 + m / 111320, lon: 4.0});
                        return [
                            shouldSend(null, moved(0), 0),
                            shouldSend(at, moved(49), 29_999),
                            shouldSend(at, moved(51), 1_000),
                            shouldSend(at, moved(10), 30_000),
                            shouldSend(at, moved(10), 30_000, false),
                            shouldSend(at, moved(0), 300_000, false),
                        ];
                    })"""
                )
                assert rule == [True, False, True, True, False, True]
                await _settings_sessions_export_and_erasure(page, stack.dsn, volunteer_id)
                worker = await page.evaluate(
                    "navigator.serviceWorker.ready.then(r => r.active && r.active.scriptURL)"
                )
                assert worker == f"{public}/app/sw.js"
            await context.close()
    finally:
        await runner.cleanup()
    assert requested
    assert not _outside(requested, public), _outside(requested, public)
