"""Erasure through the real ``dispatch serve``: nothing of the person is left anywhere, and
the incident's numbers do not move.

A volunteer signs up by SMS code (read from the log provider's file, as a phone would),
proves training, registers a device, reports a position, responds to a cardiac arrest,
asks for a self-test and gives feedback. Then ``DELETE /v1/me``. Every column of every
table is read back as text and searched for their name, number, tokens (and their
hashes), device token, position and scan; the incident's metrics and timeline (and the
agency's activations report, where the document has one) are the same as before.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from dispatch.secrets import hash_token
from dispatch.store import agencies as agency_store
from tests.dispatch import scan_files
from tests.dispatch.helpers import CENTRE, incident, offset, wait_until
from tests.dispatch.serve_process import ServeProcess

pytestmark = pytest.mark.slow

NAME = "Zoë Erasmus-Vandenbroucke"
PHONE = "+31687654321"
DEVICE = "fcm-device-token-of-zoe-0123456789"
LAT, LON = offset(*CENTRE, 37.123, 21.77)


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self, method: str, path: str, token: str | None = None, status: int = 200, **kw: Any
    ) -> Any:
        headers = kw.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.base + path, headers=headers, **kw) as resp:
            body = await resp.read()
            assert resp.status == status, (method, path, resp.status, body[:300])
            return json.loads(body) if body and resp.content_type.endswith("json") else None


def _code_in(sent_file: Path, phone: str) -> str | None:
    if not sent_file.exists():
        return None
    for line in sent_file.read_text().splitlines():
        record = json.loads(line)
        if record.get("to") == phone and record["data"].get("kind") == "code":
            return str(record["body"].split()[0])
    return None


async def _code(sent_file: Path, phone: str) -> str:
    """The code texted to ``phone``, from the log provider's file (the phone's inbox)."""

    async def texted() -> str | None:
        return await asyncio.to_thread(_code_in, sent_file, phone)

    return await wait_until(texted, timeout_s=10, every_s=0.05, what=f"a code in {sent_file}")


async def _everything(db: asyncpg.Connection) -> str:
    tables = [
        r["tablename"]
        for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    parts = []
    for table in tables:
        parts += [r[0] for r in await db.fetch(f'SELECT t::text FROM "{table}" t')]
    return "\n".join(parts)


async def _numbers(api: Api, agency_id: str, incident_id: str, key: str, sup: str) -> Any:
    metrics = await api.call("GET", f"/v1/incidents/{incident_id}/metrics", key)
    timeline = await api.call("GET", f"/v1/incidents/{incident_id}/timeline", key)
    events = [
        (e["seq"], e["at"], e["event"], e["alert_id"], e["details"]) for e in timeline["events"]
    ]
    document = await api.call("GET", "/v1/openapi.json")
    report = None
    if "/v1/agencies/{agency_id}/reports/activations" in document["paths"]:
        report = await api.call("GET", f"/v1/agencies/{agency_id}/reports/activations", sup)
        # The erasure changes the log, so the kept copy is recomputed: a new time, same numbers.
        report.pop("computed_at", None)
    return metrics, events, report


@pytest.mark.timeout(180)
async def test_erasure_leaves_nothing_of_the_person_and_the_numbers_unchanged(
    database_url: str, tmp_path: Path
) -> None:
    sent_file = tmp_path / "sent.jsonl"
    db = await asyncpg.connect(database_url)
    agency_id, key = await agency_store.create_agency(db, name="Erasure agency")
    _, sup = await agency_store.create_supervisor(db, agency_id=agency_id, name="Sup")
    server = ServeProcess(
        {"DATABASE_URL": database_url, "DISPATCH_LOG_PROVIDER_FILE": str(sent_file)},
        tmp_path / "serve.log",
    )
    try:
        await server.wait_ready()
        async with aiohttp.ClientSession() as session:
            await _scenario(Api(session, server.base), db, str(agency_id), key, sup, sent_file)
        assert "Traceback" not in server.output(), server.output()[-3000:]
    finally:
        await server.terminate()
        await db.close()


async def _scenario(
    api: Api, db: asyncpg.Connection, agency_id: str, key: str, sup: str, sent_file: Path
) -> None:
    base = f"/v1/agencies/{agency_id}"
    signup = {"agency_id": agency_id, "display_name": NAME, "phone_e164": PHONE}
    await api.call("POST", "/v1/volunteers/signup", json=signup, status=202)
    verify = {"agency_id": agency_id, "phone_e164": PHONE, "code": await _code(sent_file, PHONE)}
    first = await api.call("POST", "/v1/volunteers/verify", json=verify)
    tokens = await api.call(
        "POST", "/v1/volunteers/refresh", json={"refresh_token": first["refresh_token"]}
    )
    secrets = [first["access_token"], first["refresh_token"]]
    secrets += [tokens["access_token"], tokens["refresh_token"]]
    me = tokens["access_token"]
    volunteer_id = tokens["volunteer_id"]
    credential = await api.call(
        "POST",
        "/v1/me/credentials",
        me,
        status=201,
        json={
            "kind": "cpr_bls",
            "issuer": "NRR",
            "number": "NRR-ZOE-77",
            "expires_on": "2150-01-01",
        },
    )
    marker = b"SCAN-OF-ZOE-ERASMUS"
    await api.call(
        "PUT",
        f"/v1/me/credentials/{credential['credential_id']}/scan",
        me,
        data=scan_files.pdf().replace(b"%%EOF", marker + b"\n%%EOF"),
        headers={"Content-Type": "application/pdf"},
    )
    await api.call("POST", f"{base}/credentials/{credential['credential_id']}/approve", sup)
    await api.call("PUT", "/v1/me/devices", me, json={"fcm_token": DEVICE, "platform": "android"})
    await api.call("PUT", "/v1/me/location", me, status=204, json={"lat": LAT, "lon": LON})
    other = await api.call(
        "POST", f"{base}/volunteers", sup, status=201, json={"display_name": "W"}
    )
    w_lat, w_lon = offset(*CENTRE, 80, 0)
    await api.call(
        "PUT", "/v1/me/location", other["token"], status=204, json={"lat": w_lat, "lon": w_lon}
    )
    await asyncio.sleep(0.5)  # both positions written
    doc = incident("erasure-1")
    posted = await api.call("POST", f"/v1/cad/{agency_id}/incidents", key, status=202, json=doc)
    assert posted["alerts_queued"] == 2
    incident_id = posted["incident_id"]
    inbox = await api.call("GET", "/v1/me/alerts", me)
    alert_id = inbox["alerts"][0]["alert_id"]
    await api.call("POST", f"/v1/alerts/{alert_id}/accept", me)
    await api.call("POST", f"/v1/alerts/{alert_id}/arrived", me)
    other_alert = (await api.call("GET", "/v1/me/alerts", other["token"]))["alerts"][0]
    await api.call("POST", f"/v1/alerts/{other_alert['alert_id']}/decline", other["token"])
    doc_closed = {**doc, "status": "closed", "version": 2}
    await api.call("POST", f"/v1/cad/{agency_id}/incidents", key, status=202, json=doc_closed)
    await api.call(
        "POST",
        f"/v1/alerts/{alert_id}/feedback",
        me,
        status=201,
        json={"text": f"This is {NAME}, I am fine", "wants_to_talk": True},
    )
    await api.call("POST", "/v1/me/test-alert", me, status=202)
    await asyncio.sleep(1.0)  # the outbox and the notice worker have sent everything
    before = await _numbers(api, agency_id, incident_id, key, sup)
    held = await _everything(db)
    assert NAME in held
    assert PHONE in held
    assert DEVICE in held
    assert f"{LAT}" in held

    await api.call("DELETE", "/v1/me", me, status=204)

    after = await _numbers(api, agency_id, incident_id, key, sup)
    assert after == before
    held = await _everything(db)
    needles = [NAME, PHONE, DEVICE, "NRR-ZOE-77", marker.decode(), f"{LAT}", f"{LON}"]
    needles += secrets + [hash_token(s).hex() for s in secrets]
    found = [n for n in needles if n in held]
    assert not found, f"still held after erasure: {found}"
    # The facts stay under a pseudonym: the alert is someone's, and that someone is nobody.
    pseudonym = await db.fetchrow(
        "SELECT v.id, v.display_name, v.phone_e164 FROM alerts a JOIN volunteers v"
        " ON v.id = a.volunteer_id WHERE a.id = $1::uuid",
        alert_id,
    )
    assert pseudonym["display_name"].startswith("erased-")
    assert pseudonym["phone_e164"] is None
    assert pseudonym["id"] != volunteer_id
    for token in (me, secrets[0]):
        await api.call("GET", "/v1/me", token, status=401)
    await api.call(
        "POST", "/v1/volunteers/refresh", json={"refresh_token": secrets[-1]}, status=401
    )
    await api.call("GET", f"{base}/volunteers/{volunteer_id}", sup, status=404)
    # The number can join again, as a new person.
    await api.call("POST", "/v1/volunteers/signup", json=signup, status=202)
