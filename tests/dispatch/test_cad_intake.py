"""CAD intake through HTTP: EIDO and CAP endpoints, units, ordering, stand-down, protection."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from dispatch.secrets import sign_body
from dispatch.store.rejected import KEEP_BYTES, KEEP_PER_AGENCY, RejectedDocument
from dispatch.store.rejected import keep as keep_rejected
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import (
    cap_alert,
    drained,
    incident,
    shift_stamps,
    snapshot,
    volunteers_near,
)

FIXTURES = Path(__file__).resolve().parents[1] / "cad_adapters" / "fixtures"
LIBRARY = (52.370216, 4.895168)  # the EIDO fixture's incident location


# The fixture's call started at 10:00 on 2024-03-05 (+01:00); tests move it to minutes ago,
# since intake never alerts for an incident received more than half an hour before.
FIXTURE_CALL = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
CALL_START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)


def eido(update: int, units: dict[str, list[str]]) -> dict[str, Any]:
    """The fixture EIDO at update ``update`` (minutes after 10:04) with unit statuses."""
    doc: dict[str, Any] = json.loads((FIXTURES / "eido_cardiac_arrest.json").read_text())
    doc = copy.deepcopy(doc)
    doc["lastUpdateTimeStamp"] = f"2024-03-05T10:{4 + update:02d}:30+01:00"
    for unit in doc["emergencyResourceComponent"]:
        name = unit["emergencyResourceName"]
        unit["secondaryUnitStatusRegistryText"] = units[name]
        unit["unitStatusInternal"] = []
        unit["lastUpdateTimeStamp"] = f"2024-03-05T10:{4 + update:02d}:00+01:00"
    moved: dict[str, Any] = shift_stamps(doc, CALL_START - FIXTURE_CALL)
    return moved


def cap(
    identifier: str, msg_type: str, sent: str, references: str = "", event: str = "CA"
) -> bytes:
    return cap_alert(identifier, msg_type, sent, LIBRARY, references=references, event=event)


async def _volunteers_near(client: Any, agency: AgencyFixture, n: int) -> dict[int, str]:
    return await volunteers_near(client, agency, LIBRARY, n, step_m=40)


async def _events(db: asyncpg.Connection, incident_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT event, at, details FROM response_log WHERE incident_id = $1 ORDER BY at, id",
        UUID(incident_id),
    )


async def test_eido_two_units_over_four_updates(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Four EIDO snapshots: each unit change is logged once at the source's time, the first
    EMS on-scene time is kept, replays and an old snapshot change nothing."""
    await _volunteers_near(client, agency, 2)
    steps = [
        {"M12": ["Dispatched"], "E4": ["Dispatched"]},
        {"M12": ["EnRoute"], "E4": ["EnRoute"]},
        {"M12": ["EnRoute"], "E4": ["Arrived", "OnScene"]},
        {"M12": ["Arrived", "OnScene"], "E4": ["PatientContact"]},
    ]
    statuses = []
    incident_id = None
    for n, units in enumerate(steps):
        resp = await client.post(
            f"/v1/cad/{agency.agency_id}/eido", json=eido(n, units), headers=agency.auth
        )
        assert resp.status == 202, await resp.text()
        body = await resp.json()
        statuses.append(body["status"])
        incident_id = incident_id or body["incident_id"]
        assert body["incident_id"] == incident_id
        if n == 0:
            assert body["alerts_queued"] == 2, "NCRCPRF is a cardiac arrest by default"
    assert statuses == ["created", "updated", "updated", "updated"]
    assert incident_id is not None

    await drained(db, positions=2)
    before = await snapshot(db)
    replay = await client.post(
        f"/v1/cad/{agency.agency_id}/eido", json=eido(3, steps[3]), headers=agency.auth
    )
    assert (await replay.json())["status"] == "unchanged"
    old = await client.post(
        f"/v1/cad/{agency.agency_id}/eido", json=eido(1, steps[1]), headers=agency.auth
    )
    assert (await old.json())["status"] == "stale"
    assert await snapshot(db) == before

    units = [
        (r["details"]["unit_id"], r["details"]["status"], r["at"])
        for r in await _events(db, incident_id)
        if r["event"] == "unit_status"
    ]
    assert [(u, s) for u, s, _ in units] == [
        ("M12", "dispatched"),
        ("E4", "dispatched"),
        ("M12", "en_route"),
        ("E4", "en_route"),
        ("E4", "on_scene"),
        ("M12", "on_scene"),
        ("E4", "patient_contact"),
    ]
    on_scene = CALL_START + timedelta(minutes=6)
    assert units[4][2] == on_scene, "the source's time"
    first_on_scene = await db.fetchval(
        "SELECT first_ems_on_scene_at FROM incidents WHERE id = $1", UUID(incident_id)
    )
    assert first_on_scene == on_scene


async def test_cap_alert_update_cancel_chain_stands_volunteers_down(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """CAP Alert → Update → Cancel attach to one incident; the Cancel stands everyone down
    and releases a volunteer who had accepted."""
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"call_type_rules": {"codes": ["CA"]}},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200, await resp.text()
    tokens = await _volunteers_near(client, agency, 3)
    headers = {**agency.auth, "Content-Type": "application/cap+xml"}
    url = f"/v1/cad/{agency.agency_id}/cap"
    sent = [(CALL_START + timedelta(minutes=m)).isoformat(timespec="seconds") for m in range(3)]

    first = await (await client.post(url, data=cap("A1", "Alert", sent[0]), headers=headers)).json()
    assert first["status"] == "created"
    assert first["alerts_queued"] == 3
    ref = f"cad@example.org,A1,{sent[0]}"
    update = await (
        await client.post(url, data=cap("A2", "Update", sent[1], ref), headers=headers)
    ).json()
    assert update == {**first, "status": "updated", "alerts_queued": 0}

    alerts = {
        r["volunteer_id"]: str(r["id"])
        for r in await db.fetch("SELECT id, volunteer_id FROM alerts")
    }
    accepted_by = next(iter(tokens))
    resp = await client.post(
        f"/v1/alerts/{alerts[accepted_by]}/accept",
        headers={"Authorization": f"Bearer {tokens[accepted_by]}"},
    )
    assert resp.status == 200

    cancel = await (
        await client.post(url, data=cap("A3", "Cancel", sent[2], ref), headers=headers)
    ).json()
    assert cancel["status"] == "cancelled"
    assert cancel["incident_id"] == first["incident_id"]
    states = {r["volunteer_id"]: r["state"] for r in await db.fetch("SELECT * FROM alerts")}
    assert states.pop(accepted_by) == "released"
    assert set(states.values()) == {"stood_down"}
    names = [r["event"] for r in await _events(db, first["incident_id"])]
    assert "incident_cancelled" in names
    assert names.count("alert_stood_down") == 2
    resp = await client.post(
        f"/v1/alerts/{alerts[accepted_by]}/accept",
        headers={"Authorization": f"Bearer {tokens[accepted_by]}"},
    )
    assert resp.status == 409


async def test_generic_replay_storm_creates_one_incident_and_alerts_once(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Fifty deliveries of three versions, shuffled and concurrent: one incident, the newest
    version stored, each volunteer alerted once."""
    await _volunteers_near(client, agency, 4)
    versions = [incident("storm-1", version=v, address=f"v{v}") for v in (1, 2, 3)]
    order = [versions[i % 3] for i in (5, 1, 3, 0, 4, 2, 7, 6, 8, 9) * 5]
    answers = await asyncio.gather(
        *(
            client.post(f"/v1/cad/{agency.agency_id}/incidents", json=doc, headers=agency.auth)
            for doc in order
        )
    )
    bodies = [await a.json() for a in answers]
    assert {a.status for a in answers} == {202}
    assert len({b["incident_id"] for b in bodies}) == 1
    assert sum(b["status"] == "created" for b in bodies) == 1
    assert await db.fetchval("SELECT count(*) FROM incidents") == 1
    assert await db.fetchval("SELECT report->'source_version' FROM incidents") == 3
    assert await db.fetchval("SELECT count(*) FROM alerts") == 4
    assert await db.fetchval("SELECT count(DISTINCT volunteer_id) FROM alerts") == 4


XXE_FILE = b"""<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>"""
XXE_URL = b"""<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&x;</identifier></alert>"""
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b']><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&lol9;</alert>'
)
PLAIN_DTD = b'<?xml version="1.0"?><!DOCTYPE alert SYSTEM "cap.dtd"><alert/>'


def _swapped_eido() -> dict[str, Any]:
    doc = eido(0, {"M12": ["EnRoute"], "E4": ["EnRoute"]})
    loc = doc["locationComponent"][1]
    loc["locationByValue"] = loc["locationByValue"].replace(
        "52.370216 4.895168", "-122.419416 37.774929"
    )
    return doc


def _nan_eido() -> dict[str, Any]:
    doc = eido(0, {"M12": ["EnRoute"], "E4": ["EnRoute"]})
    loc = doc["locationComponent"][1]
    loc["locationByValue"] = loc["locationByValue"].replace("52.370216 4.895168", "NaN 4.89")
    return doc


HOSTILE: list[tuple[str, str, bytes, str]] = [
    ("xxe to a file", "cap", XXE_FILE, "application/xml"),
    ("xxe to a url", "cap", XXE_URL, "application/xml"),
    ("billion laughs", "cap", LAUGHS, "application/xml"),
    ("any dtd", "cap", PLAIN_DTD, "application/xml"),
    ("json nested 10,000 deep", "eido", b"[" * 10_000 + b"]" * 10_000, "application/json"),
    ("invalid utf-8", "eido", b'{"eidoVersion": "1.0\xff"}', "application/json"),
    ("invalid utf-8 xml", "cap", b"<alert>\xff\xfe</alert>", "application/xml"),
    ("nan coordinates", "eido", json.dumps(_nan_eido()).encode(), "application/json"),
    ("swapped lat/lon", "eido", json.dumps(_swapped_eido()).encode(), "application/json"),
    ("nan in generic", "incidents", b'{"location": {"lat": NaN}}', "application/json"),
]


@pytest.mark.parametrize(
    ("endpoint", "body", "media"), [pytest.param(e, b, m, id=n) for n, e, b, m in HOSTILE]
)
async def test_hostile_documents_are_refused_and_change_nothing(
    client: Any,
    agency: AgencyFixture,
    db: asyncpg.Connection,
    endpoint: str,
    body: bytes,
    media: str,
) -> None:
    """Hostile input gets a 4xx problem+json with a reason, no file or network access, and
    no change to the database."""
    before = await snapshot(db)
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/{endpoint}",
        data=body,
        headers={**agency.auth, "Content-Type": media},
    )
    assert 400 <= resp.status < 500, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem.get("detail")
    assert "root:" not in json.dumps(problem), "entity content must never be expanded"
    assert await snapshot(db) == before
    # ... except for the audit copy of the refused document (ARCHITECTURE invariant 6).
    (kept,) = await _rejected(client, agency)
    assert (kept["endpoint"], kept["status"]) == (endpoint, resp.status)
    assert kept["problem_type"] == problem["type"]
    assert kept["detail"] == problem["detail"]
    assert kept["pointer"] == problem.get("pointer")
    assert kept["sha256"] == hashlib.sha256(body).hexdigest()
    assert kept["size_bytes"] == len(body)
    assert kept["body"] == body[:KEEP_BYTES].decode("utf-8", "replace")
    assert kept["truncated"] is (len(body) > KEEP_BYTES)


@pytest.mark.parametrize("endpoint", ["eido", "cap", "incidents"])
async def test_documents_over_one_mebibyte_are_refused(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, endpoint: str
) -> None:
    """Every intake endpoint refuses a body over 1 MiB with 413 and changes nothing."""
    before = await snapshot(db)
    media = "application/xml" if endpoint == "cap" else "application/json"
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/{endpoint}",
        data=io.BytesIO(b" " * (1024 * 1024 + 1)),
        headers={**agency.auth, "Content-Type": media},
    )
    assert resp.status == 413
    assert await snapshot(db) == before
    (kept,) = await _rejected(client, agency)
    assert (kept["status"], kept["problem_type"]) == (413, "/problems/body-too-large")
    assert kept["body"] is None
    assert kept["size_bytes"] == 1024 * 1024 + 1


async def _rejected(client: Any, agency: AgencyFixture, query: str = "") -> list[dict[str, Any]]:
    resp = await client.get(
        f"/v1/agencies/{agency.agency_id}/rejected-documents{query}",
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200, await resp.text()
    documents: list[dict[str, Any]] = (await resp.json())["documents"]
    return documents


async def test_refused_documents_are_kept_for_audit_and_listed_newest_first(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Each refused document is kept (first 64 KiB, with its digest and the reason), newest
    first and paged; callers without the agency's key leave nothing; only its supervisors
    may read the list."""
    big = b'{"pad": "' + b"x" * (KEEP_BYTES + 10) + b'"'  # unterminated: refused
    bodies = [b"{", b"[]", big]
    for body in bodies:
        resp = await client.post(
            f"/v1/cad/{agency.agency_id}/incidents",
            data=body,
            headers={**agency.auth, "Content-Type": "application/json"},
        )
        assert resp.status in (400, 422), await resp.text()
    wrong_type = await client.post(
        f"/v1/cad/{agency.agency_id}/eido",
        data=b"<eido/>",
        headers={**agency.auth, "Content-Type": "text/plain"},
    )
    assert wrong_type.status == 415
    for headers in ({}, {"Authorization": "Bearer dak_not_a_key"}):
        resp = await client.post(
            f"/v1/cad/{agency.agency_id}/incidents",
            data=b"{",
            headers={**headers, "Content-Type": "application/json"},
        )
        assert resp.status == 401

    kept = await _rejected(client, agency)
    assert [(d["endpoint"], d["status"]) for d in kept] == [
        ("eido", 415),
        ("incidents", 400),
        ("incidents", 422),
        ("incidents", 400),
    ]
    assert kept[0]["content_type"] == "text/plain"
    assert kept[0]["body"] == "<eido/>"
    truncated = kept[1]
    assert truncated["truncated"] is True
    assert len(truncated["body"]) == KEEP_BYTES
    assert truncated["size_bytes"] == len(big)
    assert truncated["sha256"] == hashlib.sha256(big).hexdigest()
    assert kept[3]["body"] == "{"

    page = await _rejected(client, agency, f"?limit=2&before={kept[1]['id']}")
    assert [d["id"] for d in page] == [kept[2]["id"], kept[3]["id"]]
    for query in ("?limit=0", "?limit=201", "?limit=x", "?before=0"):
        resp = await client.get(
            f"/v1/agencies/{agency.agency_id}/rejected-documents{query}",
            headers=agency.supervisor_auth,
        )
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
    for headers in (agency.auth, {}):
        resp = await client.get(
            f"/v1/agencies/{agency.agency_id}/rejected-documents", headers=headers
        )
        assert resp.status == 401


async def test_kept_documents_are_trimmed_by_age_and_count(
    agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """Past the retention period, or beyond the newest KEEP_PER_AGENCY, documents go."""
    now = datetime.now(UTC)

    def doc(at: datetime) -> RejectedDocument:
        return RejectedDocument(
            agency.agency_id, at, "incidents", "application/json", 400, "/p", None, None, b"{"
        )

    await keep_rejected(db, doc(now - timedelta(days=31)), keep_days=30)
    await keep_rejected(db, doc(now - timedelta(days=29)), keep_days=30)
    await keep_rejected(db, doc(now), keep_days=30)
    ages = await db.fetch(
        "SELECT received_at FROM rejected_documents WHERE agency_id = $1 ORDER BY id",
        agency.agency_id,
    )
    assert [r["received_at"] for r in ages] == [now - timedelta(days=29), now]

    await db.execute(
        """
        INSERT INTO rejected_documents
            (agency_id, received_at, endpoint, content_type, status, problem_type)
        SELECT $1, $2, 'incidents', 'application/json', 400, '/p' FROM generate_series(1, $3)
        """,
        agency.agency_id,
        now,
        KEEP_PER_AGENCY,
    )
    await keep_rejected(db, doc(now), keep_days=30)
    count = await db.fetchval(
        "SELECT count(*) FROM rejected_documents WHERE agency_id = $1", agency.agency_id
    )
    assert count == KEEP_PER_AGENCY
    newest = await db.fetchval(
        "SELECT body FROM rejected_documents WHERE agency_id = $1 ORDER BY id DESC LIMIT 1",
        agency.agency_id,
    )
    assert newest == b"{"


async def _signed_post(
    client: Any, agency: AgencyFixture, body: bytes, key: str, at: int, signature: str = ""
) -> Any:
    return await client.post(
        f"/v1/cad/{agency.agency_id}/incidents",
        data=body,
        headers={
            "Authorization": f"Bearer {agency.key}",
            "Content-Type": "application/json",
            "Dispatch-Signature": signature or sign_body(body, key, at),
        },
    )


def _body(incident_id: str) -> bytes:
    return json.dumps(incident(incident_id)).encode()


async def test_signatures_window_replay_and_wrong_key(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """A fresh signature passes once; an old one, a replayed one, one made with another key,
    or none where the agency requires it are refused, and nothing changes."""
    now = int(time.time())
    first = _body("s-1")
    signature = sign_body(first, agency.key, now)
    ok = await _signed_post(client, agency, first, agency.key, now, signature)
    assert ok.status == 202, await ok.text()
    await drained(db)
    before = await snapshot(db)

    refused = [
        (await _signed_post(client, agency, _body("s-2"), agency.key, now - 301), 401),
        (await _signed_post(client, agency, first, agency.key, now, signature), 409),
        (await _signed_post(client, agency, _body("s-3"), "dak_not_the_key", now), 401),
        (await _signed_post(client, agency, _body("s-5"), agency.key, now, "t=1,v1=zz"), 401),
    ]
    assert await snapshot(db) == before
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"require_signature": True},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200
    before = await snapshot(db)
    unsigned = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("s-4"), headers=agency.auth
    )
    refused.append((unsigned, 401))
    for resp, status in refused:
        assert resp.status == status, await resp.text()
        assert resp.content_type == "application/problem+json"
    assert await snapshot(db) == before
    # The four refused for their signature are kept for audit; the replay is not a bad document.
    kept = await db.fetch(
        "SELECT status, body FROM rejected_documents WHERE agency_id = $1 ORDER BY id",
        agency.agency_id,
    )
    assert [(r["status"], json.loads(r["body"])["incident_id"]) for r in kept] == [
        (401, "s-2"),
        (401, "s-3"),
        (401, "s-5"),
        (401, "s-4"),
    ]


async def test_rate_limit_answers_429_with_retry_after(client: Any, agency: AgencyFixture) -> None:
    """Past the agency's per-minute budget the answer is 429 with Retry-After."""
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"intake_rate_per_min": 2},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200
    codes = []
    for n in range(3):
        resp = await client.post(
            f"/v1/cad/{agency.agency_id}/incidents", json=incident(f"r-{n}"), headers=agency.auth
        )
        codes.append(resp.status)
    assert codes == [202, 202, 429]
    assert int(resp.headers["Retry-After"]) >= 1


async def test_settings_are_validated(client: Any, agency: AgencyFixture) -> None:
    """Settings changes name the bad field; supervisors of other agencies cannot change them."""
    url = f"/v1/agencies/{agency.agency_id}/settings"
    for body, pointer in [
        ({"time_zone": "Mars/Olympus"}, "/time_zone"),
        ({"max_location_uncertainty_m": float("inf")}, None),
        ({"alert_ttl_s": 0}, "/alert_ttl_s"),
        ({"alert_radius_m": 800}, "/alert_radius_m"),
        ({"call_type_rules": {"codes": "CA"}}, "/call_type_rules/codes"),
        ({"colour": "red"}, "/colour"),
        ({}, ""),
    ]:
        if pointer is None:
            resp = await client.patch(
                url,
                data=b'{"max_location_uncertainty_m": Infinity}',
                headers={**agency.supervisor_auth, "Content-Type": "application/json"},
            )
            assert resp.status == 400
            continue
        resp = await client.patch(url, json=body, headers=agency.supervisor_auth)
        assert resp.status == 422, body
        assert (await resp.json())["pointer"] == pointer
    assert (await client.patch(url, json={"alert_ttl_s": 60}, headers=agency.auth)).status == 401
    current = await (await client.get(url, headers=agency.supervisor_auth)).json()
    assert current["alert_ttl_s"] == 600


async def test_key_rotation_two_live_keys(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """A second key works beside the first; a third is refused; a revoked key stops working."""
    from datetime import UTC, datetime

    from dispatch.store import agencies

    now = datetime.now(UTC)
    _, new_key = await agencies.add_key(db, agency.agency_id, label="2026", now=now)
    with pytest.raises(agencies.TooManyKeys):
        await agencies.add_key(db, agency.agency_id, label="third", now=now)
    url = f"/v1/cad/{agency.agency_id}/incidents"
    for n, key in enumerate((agency.key, new_key)):
        resp = await client.post(
            url, json=incident(f"k-{n}"), headers={"Authorization": f"Bearer {key}"}
        )
        assert resp.status == 202
    old_id = min(k["id"] for k in await agencies.list_keys(db, agency.agency_id))
    assert await agencies.revoke_key(db, agency.agency_id, old_id, now=now)
    # Revoked from another process (the CLI): this one notices when its cached check expires.
    from dispatch.web import app_keys

    client.server.app[app_keys.AUTH_CACHE].forget(agency.agency_id)
    resp = await client.post(
        url, json=incident("k-9"), headers={"Authorization": f"Bearer {agency.key}"}
    )
    assert resp.status == 401
    resp = await client.post(
        url, json=incident("k-9"), headers={"Authorization": f"Bearer {new_key}"}
    )
    assert resp.status == 202


def test_auth_cache_expires_and_never_holds_the_key() -> None:
    """Cached checks expire after the TTL and are keyed by the key's hash, not the key."""
    from uuid import uuid4

    from dispatch.domain.models import AgencyPolicy
    from dispatch.service.auth_cache import AgencyAuthCache
    from dispatch.store.agencies import AgencyAuth

    now = [100.0]
    cache = AgencyAuthCache(ttl_s=2.0, clock=lambda: now[0])
    agency_id = uuid4()
    auth = AgencyAuth(AgencyPolicy(agency_id=agency_id), b"h" * 32)
    cache.put(agency_id, "dak_secret", auth)
    assert cache.get(agency_id, "dak_secret") is auth
    assert cache.get(agency_id, "dak_other") is None
    assert "dak_secret" not in repr(cache.__dict__)
    now[0] += 2.5
    assert cache.get(agency_id, "dak_secret") is None
