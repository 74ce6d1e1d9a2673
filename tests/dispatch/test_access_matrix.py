"""Who may call what: every route of /v1/openapi.json, called as every kind of caller.

For each operation in the served document, a fresh world is built (two agencies, their
supervisors and keys, volunteers with device sessions, an alert, a credential with its
scan, a debrief request), and the operation is called as each principal. Refused calls
come first and must change nothing in the database; the permitted ones follow. An
operation without an entry in :data:`MATRIX`, or an entry without an operation, fails.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dispatch.config import Settings
from dispatch.domain.credentials import CredentialKind
from dispatch.service.accounts import AddressLimits
from dispatch.service.auth_guard import AuthGuard
from dispatch.store import accounts as account_store
from dispatch.store import aftercare as aftercare_store
from dispatch.store import agencies as agency_store
from dispatch.store import console_sessions
from dispatch.store import credentials as credential_store
from dispatch.store import volunteers as volunteer_store
from dispatch.web import app_keys as keys
from dispatch.web.app import create_app
from dispatch.web.auth import CONSOLE_COOKIE, CSRF_HEADER, csrf_token
from tests.dispatch import scan_files
from tests.dispatch.helpers import CENTRE, incident, offset, wait_until
from tests.dispatch.test_cap_intake import cap

NONE, MALFORMED = "none", "malformed token"
OWNER, PEER, STRANGER = "owner volunteer", "volunteer, same agency", "volunteer, other agency"
SUPERVISOR, OTHER_SUPERVISOR = "agency's supervisor", "other agency's supervisor"
KEY, OTHER_KEY = "agency's key", "other agency's key"
REVOKED, EXPIRED = "revoked session", "expired session"
CONSOLE, CONSOLE_NO_CSRF = "agency's console session", "console session without CSRF token"
OTHER_CONSOLE, CONSOLE_EXPIRED = "other agency's console session", "expired console session"
PRINCIPALS = (
    NONE,
    MALFORMED,
    OWNER,
    PEER,
    STRANGER,
    SUPERVISOR,
    OTHER_SUPERVISOR,
    KEY,
    OTHER_KEY,
    REVOKED,
    EXPIRED,
    CONSOLE,
    CONSOLE_NO_CSRF,
    OTHER_CONSOLE,
    CONSOLE_EXPIRED,
)
VOLUNTEERS = (OWNER, PEER, STRANGER)
EIDO = Path(__file__).parents[1] / "cad_adapters" / "fixtures" / "eido_cardiac_arrest.json"
_phones = count(1)


@dataclass
class World:
    agency_id: UUID
    headers: dict[str, dict[str, str]]
    ids: dict[str, Any]
    owner_id: int


@dataclass(frozen=True)
class Access:
    """Who gets what: ``allowed`` principals get ``ok``; the rest the refusals given."""

    allowed: tuple[str, ...]
    ok: int
    refusals: dict[str, int] = field(default_factory=dict)
    default_refusal: int = 401
    body: Callable[[str, World], tuple[Any, str | None]] | None = None
    prepare: Callable[[Any, World], Awaitable[None]] | None = None
    again: int | None = None
    """What the allowed principals after the first get, when the first's call used it up."""
    query: dict[str, str] = field(default_factory=dict)

    def allowed_for(self, method: str) -> tuple[str, ...]:
        """A console session needs its CSRF token only for what changes anything."""
        if method == "GET" and CONSOLE in self.allowed:
            return (*self.allowed, CONSOLE_NO_CSRF)
        return self.allowed

    def expected(self, principal: str, method: str) -> int:
        if principal in self.allowed_for(method):
            if self.again is not None and principal != self.allowed[0]:
                return self.again
            return self.ok
        if principal == CONSOLE_NO_CSRF and CONSOLE in self.allowed:
            return 403
        return self.refusals.get(principal, self.default_refusal)


def _json(value: Any) -> Callable[[str, World], tuple[Any, str | None]]:
    return lambda who, world: (json.dumps(value), "application/json")


def _phone_body(extra: dict[str, Any]) -> Callable[[str, World], tuple[Any, str | None]]:
    def make(who: str, world: World) -> tuple[Any, str | None]:
        body = {"agency_id": str(world.agency_id), "phone_e164": f"+3169{next(_phones):07d}"}
        return json.dumps(body | extra), "application/json"

    return make


def _device(who: str, world: World) -> tuple[Any, str | None]:
    token = "device-" + "".join(c for c in who if c.isalnum()) + "-token"
    return json.dumps({"fcm_token": token, "platform": "android"}), "application/json"


def _form(who: str, world: World) -> tuple[Any, str | None]:
    return "MessageSid=SM1&MessageStatus=delivered", "application/x-www-form-urlencoded"


async def _accept(client: Any, world: World) -> None:
    resp = await client.post(
        f"/v1/alerts/{world.ids['alert_id']}/accept", headers=world.headers[OWNER]
    )
    assert resp.status == 200


_YEAR = {"from": "2026-01-01", "to": "2026-12-31"}
PUBLIC = Access(PRINCIPALS, 200)
TWILIO = Access((), 0, default_refusal=403, body=_form)
CAD = Access((KEY,), 202)
INCIDENT = Access(
    (KEY, SUPERVISOR, CONSOLE), 200, {OTHER_KEY: 404, OTHER_SUPERVISOR: 404, OTHER_CONSOLE: 404}
)


def me(ok: int, **more: Any) -> Access:
    """A volunteer acting on themselves: every valid volunteer may, on their own data."""
    return Access(VOLUNTEERS, ok, **more)


def owned(ok: int, **more: Any) -> Access:
    """A volunteer's own resource named in the path: others' volunteers get 404."""
    return Access((OWNER,), ok, {PEER: 404, STRANGER: 404}, **more)


def supervised(ok: int, **more: Any) -> Access:
    """The agency's supervisor, by token or console session."""
    return Access((SUPERVISOR, CONSOLE), ok, **more)


def own_console(ok: int) -> Access:
    """Routes of the console session itself: whichever agency's, it speaks for itself."""
    return Access((CONSOLE, OTHER_CONSOLE), ok)


def _sign_in(who: str, world: World) -> tuple[Any, str | None]:
    return json.dumps({"token": world.ids["supervisor_token"]}), "application/json"


def public(ok: int, body: Callable[[str, World], tuple[Any, str | None]]) -> Access:
    return Access(PRINCIPALS, ok, body=body)


MATRIX: dict[str, Access] = {
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "GET /metrics": PUBLIC,
    "GET /v1/openapi.json": PUBLIC,
    "GET /v1/schemas/generic-incident.v1.json": PUBLIC,
    "POST /v1/cad/{agency_id}/incidents": Access(
        (KEY,), 202, body=_json(incident("matrix-intake", place_type="public"))
    ),
    "POST /v1/cad/{agency_id}/eido": Access(
        (KEY,), 202, body=lambda who, world: (EIDO.read_text(), "application/json")
    ),
    "POST /v1/cad/{agency_id}/cap": Access(
        (KEY,), 202, body=lambda who, world: (cap("MATRIX-1"), "application/cap+xml")
    ),
    "PUT /v1/me/location": me(204, body=_json({"lat": 52.37, "lon": 4.89})),
    "GET /v1/alerts/{alert_id}": owned(200),
    "POST /v1/alerts/{alert_id}/accept": owned(200),
    "POST /v1/alerts/{alert_id}/decline": owned(200),
    "POST /v1/alerts/{alert_id}/en-route": owned(200, prepare=_accept),
    "POST /v1/alerts/{alert_id}/arrived": owned(200, prepare=_accept),
    "POST /v1/alerts/{alert_id}/cancel": owned(200),
    "POST /v1/alerts/{alert_id}/ack": owned(200),
    "POST /v1/alerts/{alert_id}/feedback": owned(201, body=_json({"wants_to_talk": False})),
    "GET /v1/incidents/{incident_id}/timeline": INCIDENT,
    "GET /v1/incidents/{incident_id}/metrics": INCIDENT,
    "POST /v1/agencies/{agency_id}/volunteers": supervised(
        201, body=_json({"display_name": "New"})
    ),
    "GET /v1/agencies/{agency_id}/volunteers/{volunteer_id}": supervised(200),
    "PATCH /v1/agencies/{agency_id}/volunteers/{volunteer_id}": supervised(
        200, body=_json({"tier": "professional"})
    ),
    "GET /v1/agencies/{agency_id}/volunteers/{volunteer_id}/events": supervised(200),
    "GET /v1/agencies/{agency_id}/volunteers/{volunteer_id}/export": supervised(200),
    "GET /v1/agencies/{agency_id}/settings": supervised(200),
    "PATCH /v1/agencies/{agency_id}/settings": supervised(200, body=_json({"alert_ttl_s": 900})),
    "GET /v1/agencies/{agency_id}/policy": supervised(200),
    "PUT /v1/agencies/{agency_id}/policy": supervised(200, body=_json({"target_accepted": 2})),
    "GET /v1/agencies/{agency_id}/aeds": supervised(200),
    "POST /v1/agencies/{agency_id}/aeds": supervised(
        200, body=lambda who, world: ("id,name,lat,lon\nA1,Hall,52.37,4.89\n", "text/csv")
    ),
    "GET /v1/agencies/{agency_id}/rejected-documents": supervised(200),
    "GET /v1/agencies/{agency_id}/feeds": supervised(200),
    "PUT /v1/agencies/{agency_id}/delivery-settings": supervised(
        200, body=_json({"push_ack_timeout_s": 20})
    ),
    "GET /v1/agencies/{agency_id}/credentials": supervised(200),
    "GET /v1/agencies/{agency_id}/credentials/{credential_id}/scan": supervised(200),
    "POST /v1/agencies/{agency_id}/credentials/{credential_id}/approve": supervised(200, again=409),
    "POST /v1/agencies/{agency_id}/credentials/{credential_id}/reject": supervised(
        200, again=409, body=_json({"reason": "Unreadable"})
    ),
    "GET /v1/agencies/{agency_id}/debrief-requests": supervised(200),
    "POST /v1/agencies/{agency_id}/debrief-requests/{request_id}/handled": supervised(
        200, again=409, body=_json({})
    ),
    "GET /v1/agencies/{agency_id}/audit-log": supervised(200),
    "GET /v1/agencies/{agency_id}/incidents": supervised(200),
    "GET /v1/agencies/{agency_id}/volunteers": supervised(200),
    "GET /v1/agencies/{agency_id}/reports/activations": supervised(200, query=_YEAR),
    "GET /v1/agencies/{agency_id}/reports/coverage": supervised(200, query={"hour": "9"}),
    "GET /v1/agencies/{agency_id}/reports/utstein.csv": supervised(200, query=_YEAR),
    "PUT /v1/me/devices": me(200, body=_device),
    "GET /v1/webpush/key": PUBLIC,
    "GET /v1/me/stream": me(200),
    "PUT /v1/me/channels": me(200, body=_json({"preferred": "push"})),
    "POST /v1/twilio/sms-status": TWILIO,
    "POST /v1/twilio/voice-status": TWILIO,
    "POST /v1/twilio/sms-inbound": TWILIO,
    "POST /v1/twilio/voice-gather/{alert_id}": TWILIO,
    "POST /v1/volunteers/signup": public(202, _phone_body({"display_name": "Joiner"})),
    "POST /v1/volunteers/signin": public(202, _phone_body({})),
    "POST /v1/volunteers/verify": public(401, _phone_body({"code": "000000"})),
    "POST /v1/volunteers/refresh": public(401, _json({"refresh_token": "dvr_not-issued"})),
    "GET /v1/me": me(200),
    "PATCH /v1/me": me(200, body=_json({"on_duty": False})),
    "DELETE /v1/me": me(204),
    "GET /v1/me/alerts": me(200),
    "GET /v1/me/export": me(200),
    "POST /v1/me/test-alert": me(202),
    "GET /v1/me/sessions": me(200),
    "DELETE /v1/me/sessions/{session_id}": owned(204),
    "GET /v1/me/credentials": me(200),
    "POST /v1/me/credentials": me(
        201, body=_json({"kind": "cpr_bls", "issuer": "NRR", "expires_on": "2150-01-01"})
    ),
    "GET /v1/agencies/{agency_id}/board": supervised(200),
    "GET /v1/incidents/{incident_id}/scene": INCIDENT,
    "POST /console/session": public(201, _sign_in),
    "GET /console/session": own_console(200),
    "DELETE /console/session": own_console(204),
    "GET /console/events": own_console(200),
    "GET /console/": PUBLIC,
    "GET /console/{asset}": PUBLIC,
    "PUT /v1/me/credentials/{credential_id}/scan": owned(
        200, body=lambda who, world: (io.BytesIO(scan_files.pdf()), "application/pdf")
    ),
}


@pytest.fixture
async def matrix_client(
    settings: Settings, aiohttp_client: Any
) -> TestClient[web.Request, web.Application]:
    """Background workers off (a refused call must leave the database as it was), and
    the failed-auth and code throttles wide open (hundreds of refusals from one client)."""
    quiet = settings.with_overrides(
        notifier_enabled=False, ticker_enabled=False, feeds_enabled=False, report_warmup_s=0
    )
    app = create_app(quiet)
    app[keys.AUTH_GUARD] = AuthGuard(
        per_client=(10**9, 10**9), per_agency=(10**9, 10**9), tarpit_s=0
    )
    app[keys.ADDRESS_LIMITS] = AddressLimits(codes=(10**9, 10**9), failures=(10**9, 10**9))
    # No cookie jar: each principal's cookie is in its headers, never left from a sign-in.
    jarless = aiohttp.DummyCookieJar()
    client: TestClient[web.Request, web.Application] = await aiohttp_client(app, cookie_jar=jarless)
    return client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _console(db: asyncpg.Connection, agency_id: UUID, at: datetime) -> str:
    """A console session signed in at ``at`` (two hours ago: idle past its limit)."""
    supervisor_id = await db.fetchval(
        "SELECT id FROM supervisors WHERE agency_id = $1 ORDER BY id LIMIT 1", agency_id
    )
    return await console_sessions.create(
        db, agency_id=agency_id, supervisor_id=supervisor_id, now=at, max_age=timedelta(hours=12)
    )


def _cookie(secret: str, *, csrf: bool) -> dict[str, str]:
    headers = {"Cookie": f"{CONSOLE_COOKIE}={secret}"}
    if csrf:
        headers[CSRF_HEADER] = csrf_token(secret)
    return headers


async def _session(db: asyncpg.Connection, agency_id: UUID, volunteer_id: int) -> Any:
    return await account_store.create_session(
        db,
        agency_id=agency_id,
        volunteer_id=volunteer_id,
        device_label=None,
        now=datetime.now(UTC),
        access_ttl=timedelta(minutes=15),
        refresh_ttl=timedelta(days=1),
    )


async def _volunteer(db: asyncpg.Connection, agency_id: UUID, name: str) -> int:
    volunteer_id, _ = await volunteer_store.create_volunteer(
        db, agency_id=agency_id, display_name=name, phone_e164=f"+3168{next(_phones):07d}"
    )
    return volunteer_id


async def _world(client: Any, db: asyncpg.Connection) -> World:
    now = datetime.now(UTC)
    agency_id, key = await agency_store.create_agency(db, name="A")
    _, supervisor = await agency_store.create_supervisor(db, agency_id=agency_id, name="S")
    other_id, other_key = await agency_store.create_agency(db, name="B")
    _, other_supervisor = await agency_store.create_supervisor(db, agency_id=other_id, name="T")
    owner_id = await _volunteer(db, agency_id, "Owner")
    owner = await _session(db, agency_id, owner_id)
    second = await _session(db, agency_id, owner_id)
    revoked = await _session(db, agency_id, owner_id)
    await account_store.revoke(db, owner_id, [revoked.session_id], reason="test", now=now)
    expired = await _session(db, agency_id, owner_id)
    await db.execute(
        "UPDATE volunteer_sessions SET access_expires_at = $2 WHERE id = $1",
        expired.session_id,
        now - timedelta(minutes=1),
    )
    peer = await _session(db, agency_id, await _volunteer(db, agency_id, "Peer"))
    console = await _console(db, agency_id, now)
    other_console = await _console(db, other_id, now)
    expired_console = await _console(db, agency_id, now - timedelta(hours=2))
    stranger = await _session(db, other_id, await _volunteer(db, other_id, "Stranger"))
    headers = {
        NONE: {},
        MALFORMED: {"Authorization": "Bearer " + "x" * 600},
        OWNER: _bearer(owner.access_token),
        PEER: _bearer(peer.access_token),
        STRANGER: _bearer(stranger.access_token),
        SUPERVISOR: _bearer(supervisor),
        OTHER_SUPERVISOR: _bearer(other_supervisor),
        KEY: _bearer(key),
        OTHER_KEY: _bearer(other_key),
        REVOKED: _bearer(revoked.access_token),
        EXPIRED: _bearer(expired.access_token),
        CONSOLE: _cookie(console, csrf=True),
        CONSOLE_NO_CSRF: _cookie(console, csrf=False),
        OTHER_CONSOLE: _cookie(other_console, csrf=True),
        CONSOLE_EXPIRED: _cookie(expired_console, csrf=True),
    }
    lat, lon = offset(*CENTRE, 40, 0)
    fix = await client.put("/v1/me/location", json={"lat": lat, "lon": lon}, headers=headers[OWNER])
    assert fix.status == 204

    async def stored() -> bool:
        return bool(
            await db.fetchval(
                "SELECT count(*) FROM volunteer_positions WHERE volunteer_id = $1", owner_id
            )
        )

    await wait_until(stored, timeout_s=5, every_s=0.01, what="the owner's position stored")
    posted = await client.post(
        f"/v1/cad/{agency_id}/incidents", json=incident("matrix"), headers=headers[KEY]
    )
    result = await posted.json()
    assert result["alerts_queued"] == 1, result
    alert_id = await db.fetchval("SELECT id FROM alerts WHERE volunteer_id = $1", owner_id)
    credential = await credential_store.insert(
        db,
        agency_id=agency_id,
        volunteer_id=owner_id,
        kind=CredentialKind.CPR_BLS,
        issuer="NRR",
        number=None,
        expires_on=now.date() + timedelta(days=400),
        expires_at=now + timedelta(days=400),
        now=now,
    )
    await credential_store.store_scan(
        db, credential["credential_id"], agency_id, "application/pdf", scan_files.pdf(), now
    )
    request_id = await aftercare_store.add_feedback(
        db,
        agency_id=agency_id,
        volunteer_id=owner_id,
        alert_id=alert_id,
        text=None,
        wants_to_talk=True,
        now=now,
    )
    ids = {
        "agency_id": agency_id,
        "incident_id": result["incident_id"],
        "alert_id": alert_id,
        "volunteer_id": owner_id,
        "credential_id": credential["credential_id"],
        "session_id": second.session_id,
        "request_id": request_id,
        "supervisor_token": supervisor,
        "asset": "app.js",
    }
    return World(agency_id, headers, ids, owner_id)


async def _snapshot(db: asyncpg.Connection) -> dict[str, list[str]]:
    tables = [
        r["tablename"]
        for r in await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
    ]
    return {
        t: [r[0] for r in await db.fetch(f'SELECT t::text FROM "{t}" t ORDER BY 1')] for t in tables
    }


async def _call(client: Any, method: str, url: str, rule: Access, who: str, world: World) -> Any:
    headers = dict(world.headers[who])
    data: Any = None
    if rule.body is not None:
        data, media = rule.body(who, world)
        if media:
            headers["Content-Type"] = media
    return await client.request(method, url, data=data, headers=headers)


async def test_every_route_answers_each_principal_as_documented(
    matrix_client: Any, db: asyncpg.Connection
) -> None:
    document = await (await matrix_client.get("/v1/openapi.json")).json()
    operations = {
        f"{method.upper()} {path}": (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
    }
    assert not sorted(set(operations) - set(MATRIX)), "routes without an entry in MATRIX"
    assert not sorted(set(MATRIX) - set(operations)), "MATRIX entries for no route"
    failures = []
    calls = 0
    for name, (method, path) in operations.items():
        rule = MATRIX[name]
        world = await _world(matrix_client, db)
        if rule.prepare is not None:
            await rule.prepare(matrix_client, world)
        url = path.format_map(world.ids)
        if rule.query:
            url += "?" + urlencode(rule.query)
        allowed = rule.allowed_for(method)
        refused = [p for p in PRINCIPALS if p not in allowed]
        before = await _snapshot(db)
        for who in refused + [p for p in PRINCIPALS if p in allowed]:
            first_allowed = who in allowed and who == allowed[0]
            if first_allowed and refused and await _snapshot(db) != before:
                failures.append(f"{name}: a refused call changed the database")
            resp = await _call(matrix_client, method, url, rule, who, world)
            calls += 1
            expected = rule.expected(who, method)
            if resp.content_type == "text/event-stream":
                resp.close()  # the live board's stream runs until the browser leaves
            elif resp.status != expected:
                failures.append(
                    f"{name} as {who}: {resp.status}, expected {expected}:"
                    f" {(await resp.text())[:160]}"
                )
            if resp.status != expected and resp.content_type == "text/event-stream":
                failures.append(f"{name} as {who}: {resp.status}, expected {expected}")
        if not allowed and await _snapshot(db) != before:
            failures.append(f"{name}: a refused call changed the database")
    assert not failures, "\n".join(failures)
    assert calls == len(operations) * len(PRINCIPALS)


# Pages for people are not API operations (not in the OpenAPI document): public to every
# caller, the same answer whatever the token, and nothing changes.
PAGES: dict[str, int] = {
    "GET /app": 308,
    "GET /app/": 200,
    "GET /app/{name}": 200,
}
PAGE_ARGS = {"name": "app.js"}


async def test_every_page_answers_every_principal_the_same(
    matrix_client: Any, db: asyncpg.Connection
) -> None:
    from dispatch.web.handlers_pages import PAGE_ROUTE_PREFIX

    served = set()
    for route in matrix_client.server.app.router.routes():
        if route.method != "HEAD" and (route.name or "").startswith(PAGE_ROUTE_PREFIX):
            info = route.resource.get_info() if route.resource else {}
            path = info.get("path") or info.get("formatter")
            served.add(f"{route.method} {path}".replace("{name:[a-z0-9_/-]+\\.[a-z]+}", "{name}"))
    assert served == set(PAGES)
    world = await _world(matrix_client, db)
    before = await _snapshot(db)
    for name, status in PAGES.items():
        method, path = name.split(" ")
        for who in PRINCIPALS:
            url = path.format_map(PAGE_ARGS)
            resp = await matrix_client.request(
                method, url, headers=world.headers[who], allow_redirects=False
            )
            assert resp.status == status, (name, who)
    assert await _snapshot(db) == before
