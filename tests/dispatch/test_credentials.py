"""Credentials: declared by the volunteer, scans checked from the bytes, reviewed by the agency."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from dispatch.domain.scans import MAX_SCAN_BYTES
from dispatch.store import agencies as agency_store
from tests.dispatch import scan_files
from tests.dispatch.accounts_helpers import sent_of_kind, sign_up
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import bearer

NEXT_YEAR = (date.today() + timedelta(days=365)).isoformat()


async def _declare(client: Any, token: str, kind: str = "cpr_bls", **more: Any) -> dict[str, Any]:
    body = {"kind": kind, "issuer": "Dutch Resuscitation Council", "expires_on": NEXT_YEAR} | more
    resp = await client.post("/v1/me/credentials", json=body, headers=bearer(token))
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    return created


async def _review(
    client: Any, agency: AgencyFixture, credential_id: int, verdict: str, **body: Any
) -> Any:
    return await client.post(
        f"/v1/agencies/{agency.agency_id}/credentials/{credential_id}/{verdict}",
        json=body or None,
        headers=agency.supervisor_auth,
    )


async def _me(client: Any, token: str) -> dict[str, Any]:
    me: dict[str, Any] = await (await client.get("/v1/me", headers=bearer(token))).json()
    return me


async def test_review_decides_eligibility_and_tier(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    tokens = await sign_up(client, agency.agency_id, "+31622220001")
    token = tokens["access_token"]
    cpr = await _declare(client, token, number="NRR-1")
    assert cpr["state"] == "pending"
    pending = await client.get(
        f"/v1/agencies/{agency.agency_id}/credentials?state=pending",
        headers=agency.supervisor_auth,
    )
    listed = (await pending.json())["credentials"]
    assert [(c["credential_id"], c["display_name"]) for c in listed] == [
        (cpr["credential_id"], "Ann")
    ]
    assert (await _me(client, token))["alertable"] is False
    approved = await _review(client, agency, cpr["credential_id"], "approve")
    assert approved.status == 200
    assert (await approved.json())["state"] == "approved"
    me = await _me(client, token)
    assert (me["alertable"], me["tier"]) == (True, "lay")
    assert me["certified_until"].startswith(NEXT_YEAR)
    # A professional licence makes them professional; asking for lay keeps them lay.
    licence = await _declare(client, token, "professional_licence", issuer="BIG register")
    assert (await _review(client, agency, licence["credential_id"], "approve")).status == 200
    assert (await _me(client, token))["tier"] == "professional"
    patched = await client.patch("/v1/me", json={"tier_requested": "lay"}, headers=bearer(token))
    assert (await patched.json())["tier"] == "lay"
    # A rejection carries the reason the volunteer sees; withdrawing an approval is a rejection.
    blurry = await _declare(client, token)
    rejected = await _review(
        client, agency, blurry["credential_id"], "reject", reason="The scan is unreadable"
    )
    assert rejected.status == 200
    mine = await (await client.get("/v1/me/credentials", headers=bearer(token))).json()
    reasons = {c["credential_id"]: c["reason"] for c in mine["credentials"]}
    assert reasons[blurry["credential_id"]] == "The scan is unreadable"
    again = await _review(client, agency, blurry["credential_id"], "approve")
    assert again.status == 409
    assert (await again.json())["state"] == "rejected"
    withdrawn = await _review(client, agency, licence["credential_id"], "reject", reason="Lapsed")
    assert withdrawn.status == 200
    assert (await _me(client, token))["tier_granted"] == "lay"
    # The volunteer was told each outcome (push else text; the log provider here).
    titles = [m.title for m in await sent_of_kind(client, "credential_reviewed", 4)]
    assert len(titles) == 4
    assert "was not approved" in titles[-1]
    actions = [
        r["action"]
        for r in await db.fetch("SELECT action FROM audit_log WHERE target_type = 'credential'")
    ]
    assert actions.count("credential_approved") == 2
    assert actions.count("credential_rejected") == 2


async def test_only_the_agency_s_supervisors_review(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    tokens = await sign_up(client, agency.agency_id, "+31622220002")
    cpr = await _declare(client, tokens["access_token"])
    other_id, _ = await agency_store.create_agency(db, name="Other")
    _, other_supervisor = await agency_store.create_supervisor(db, agency_id=other_id, name="O")
    url = f"/v1/agencies/{agency.agency_id}/credentials/{cpr['credential_id']}/approve"
    for headers in (bearer(other_supervisor), bearer(tokens["access_token"]), agency.auth, {}):
        assert (await client.post(url, headers=headers)).status == 401
    # Their own agency's path does not reach another agency's credential either.
    foreign = await client.post(
        f"/v1/agencies/{other_id}/credentials/{cpr['credential_id']}/approve",
        headers=bearer(other_supervisor),
    )
    assert foreign.status == 404
    assert await db.fetchval("SELECT state FROM credentials") == "pending"
    past = await client.post(
        "/v1/me/credentials",
        json={"kind": "cpr_bls", "issuer": "X", "expires_on": "2020-01-01"},
        headers=bearer(tokens["access_token"]),
    )
    assert past.status == 422
    assert (await past.json())["pointer"] == "/expires_on"


async def _stored(db: asyncpg.Connection) -> list[Any]:
    return [
        await db.fetch("SELECT c::text FROM credentials c ORDER BY id"),
        await db.fetch("SELECT s::text FROM credential_scans s"),
    ]


@pytest.mark.parametrize(
    ("content_type", "data", "status"),
    [
        ("application/x-msdownload", b"MZ\x90\x00" + b"\x00" * 64, 415),
        ("text/plain", b"hello", 415),
        ("application/pdf", scan_files.png(), 422),
        ("application/pdf", scan_files.elf_with_pdf_header(), 422),
        ("image/png", scan_files.png()[:-12], 422),
        ("image/jpeg", b"\xff\xd8\xff" + b"\x00" * 10, 422),
        ("application/pdf", scan_files.pdf_with_script(), 422),
        ("application/pdf", b"", 422),
        ("application/pdf", scan_files.sized_pdf(MAX_SCAN_BYTES + 1), 413),
    ],
    ids=[
        "executable",
        "text",
        "png-declared-pdf",
        "pdf-header-on-elf",
        "truncated-png",
        "jpeg-without-end",
        "pdf-with-javascript",
        "empty",
        "5MiB-plus-one",
    ],
)
async def test_a_refused_scan_is_a_problem_and_stores_nothing(
    client: Any,
    agency: AgencyFixture,
    db: asyncpg.Connection,
    content_type: str,
    data: bytes,
    status: int,
) -> None:
    tokens = await sign_up(client, agency.agency_id, "+31622220003")
    cpr = await _declare(client, tokens["access_token"])
    before = await _stored(db)
    resp = await client.put(
        f"/v1/me/credentials/{cpr['credential_id']}/scan",
        data=io.BytesIO(data),
        headers={**bearer(tokens["access_token"]), "Content-Type": content_type},
    )
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert await _stored(db) == before
    assert await db.fetchval("SELECT count(*) FROM credential_scans") == 0


@pytest.mark.parametrize(
    ("content_type", "data", "extension"),
    [
        ("application/pdf", scan_files.sized_pdf(MAX_SCAN_BYTES), "pdf"),
        ("image/png", scan_files.png(), "png"),
        ("image/jpeg", scan_files.jpeg(), "jpg"),
    ],
    ids=["pdf-5MiB", "png", "jpeg"],
)
async def test_scans_go_to_the_agency_s_supervisors_as_attachments(
    client: Any,
    agency: AgencyFixture,
    db: asyncpg.Connection,
    content_type: str,
    data: bytes,
    extension: str,
) -> None:
    tokens = await sign_up(client, agency.agency_id, "+31622220004")
    token = tokens["access_token"]
    cpr = await _declare(client, token)
    url = f"/v1/me/credentials/{cpr['credential_id']}/scan"
    resp = await client.put(
        url, data=io.BytesIO(data), headers={**bearer(token), "Content-Type": content_type}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["scan"] == {"media_type": content_type, "size_bytes": len(data)}
    download = f"/v1/agencies/{agency.agency_id}/credentials/{cpr['credential_id']}/scan"
    got = await client.get(download, headers=agency.supervisor_auth)
    assert got.status == 200
    assert got.headers["Content-Type"] == content_type
    assert got.headers["Content-Disposition"] == (
        f'attachment; filename="credential-{cpr["credential_id"]}.{extension}"'
    )
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert await got.read() == data
    # Not to the volunteer who uploaded it, not to anyone else.
    other_id, _ = await agency_store.create_agency(db, name="Other")
    _, other_supervisor = await agency_store.create_supervisor(db, agency_id=other_id, name="O")
    for headers in (bearer(token), bearer(other_supervisor), agency.auth):
        assert (await client.get(download, headers=headers)).status == 401
    elsewhere = f"/v1/agencies/{other_id}/credentials/{cpr['credential_id']}/scan"
    assert (await client.get(elsewhere, headers=bearer(other_supervisor))).status == 404
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'scan_downloaded'") == 1
    # Once reviewed, the scan stays as it was reviewed.
    assert (await _review(client, agency, cpr["credential_id"], "approve")).status == 200
    late = await client.put(
        url, data=io.BytesIO(data), headers={**bearer(token), "Content-Type": content_type}
    )
    assert late.status == 409
