"""CAP as agencies publish it, through HTTP: signatures checked against a pinned certificate,
EDXL-DE envelopes unwrapped, empty shapes read as absent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import jsonschema
import pytest

from dispatch.web.openapi import openapi_document
from tests.cad_adapters.signing import Signer, new_signer, sign
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import cap_alert, drained, offset, snapshot, volunteer_at
from tests.dispatch.serve_process import dispatch_cli, run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "cad_adapters" / "fixtures"
SPOT = (52.378901, 4.900272)


def cap(
    identifier: str = "S-1", msg_type: str = "Alert", references: str = "", later_s: int = 0
) -> bytes:
    sent = (datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=later_s)).isoformat()
    return cap_alert(identifier, msg_type, sent, SPOT, place="Stationsplein", references=references)


async def _post(client: Any, agency: AgencyFixture, body: bytes) -> Any:
    return await client.post(
        f"/v1/cad/{agency.agency_id}/cap",
        data=body,
        headers={**agency.auth, "Content-Type": "application/cap+xml"},
    )


async def _settings(client: Any, agency: AgencyFixture, changes: dict[str, Any]) -> Any:
    return await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings", json=changes, headers=agency.supervisor_auth
    )


async def _received(db: asyncpg.Connection, incident_id: str) -> dict[str, Any]:
    details: dict[str, Any] = await db.fetchval(
        "SELECT details FROM response_log WHERE incident_id = $1 AND event = 'incident_received'",
        UUID(incident_id),
    )
    return details


async def _rejected(client: Any, agency: AgencyFixture) -> list[dict[str, Any]]:
    resp = await client.get(
        f"/v1/agencies/{agency.agency_id}/rejected-documents", headers=agency.supervisor_auth
    )
    documents: list[dict[str, Any]] = (await resp.json())["documents"]
    return documents


async def _volunteer_near(client: Any, agency: AgencyFixture) -> None:
    await volunteer_at(client, agency, offset(*SPOT, 60, 0), tier="professional")


@pytest.fixture(scope="module")
def signer() -> Signer:
    return new_signer()


async def test_pinned_certificate_is_a_setting(
    client: Any, agency: AgencyFixture, signer: Signer
) -> None:
    """The certificate is set, shown and unset through the settings API; a private key or
    a non-certificate is refused naming the field, and changes nothing."""
    resp = await _settings(client, agency, {"cap_signing_cert": signer.pem})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["cap_signing_cert"] == signer.pem

    for bad, reason in (
        ("not a certificate", "PEM certificate"),
        (signer.pem + "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n", "key"),
        (42, "must be of type string or null"),
    ):
        resp = await _settings(client, agency, {"cap_signing_cert": bad})
        assert resp.status == 422
        problem = await resp.json()
        assert problem["pointer"] == "/cap_signing_cert"
        assert reason in problem["detail"]
    shown = await client.get(
        f"/v1/agencies/{agency.agency_id}/settings", headers=agency.supervisor_auth
    )
    assert (await shown.json())["cap_signing_cert"] == signer.pem

    resp = await _settings(client, agency, {"cap_signing_cert": None})
    assert (await resp.json())["cap_signing_cert"] is None


async def test_signed_alert_is_accepted_and_forgeries_are_refused(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, signer: Signer
) -> None:
    """With a pinned certificate: the signed alert alerts the volunteer and its timeline says
    "verified"; the same alert with one changed byte, one signed by another key, and an
    unsigned one are refused (problem+json naming the signature, kept for audit) and change
    nothing."""
    await _settings(client, agency, {"call_type_rules": {"codes": ["CA"]}})
    await _volunteer_near(client, agency)
    await _settings(client, agency, {"cap_signing_cert": signer.pem})

    signed = sign(cap(), signer)
    forgeries = {
        "changed byte": signed.replace(b"<areaDesc>Stationsplein", b"<areaDesc>Stationsplain"),
        "other key": sign(cap(), new_signer(name="intruder.example.net")),
        "unsigned": cap(),
    }
    await drained(db, positions=1)
    before = await snapshot(db)
    for name, body in forgeries.items():
        resp = await _post(client, agency, body)
        assert resp.status == 422, name
        assert resp.content_type == "application/problem+json"
        problem = await resp.json()
        assert problem["type"] == "/problems/cap-signature"
        assert problem["pointer"] == "/alert/Signature"
    assert await snapshot(db) == before
    kept = await _rejected(client, agency)
    assert [k["problem_type"] for k in kept] == ["/problems/cap-signature"] * 3
    assert [k["detail"] for k in reversed(kept)] == [
        "the alert was changed after it was signed (digest mismatch)",
        "the signature was not made with the pinned certificate's key",
        "this agency accepts only alerts signed with its pinned certificate;"
        " the alert carries no ds:Signature",
    ]

    resp = await _post(client, agency, signed)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert (body["status"], body["alerts_queued"]) == ("created", 1)
    assert (await _received(db, body["incident_id"]))["signature"] == "verified"


async def test_without_a_pin_the_timeline_says_signatures_were_not_checked(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, signer: Signer
) -> None:
    """No pinned certificate: signed or not, the alert is taken, and its received and
    updated events say the signature was not checked."""
    first = await _post(client, agency, sign(cap("N-1"), signer))
    body = await first.json()
    assert first.status == 202, body
    assert (await _received(db, body["incident_id"]))["signature"] == "not_checked"
    update = cap("N-2", "Update", f"cad@example.org,N-1,{datetime.now(UTC).isoformat()}", 1)
    resp = await _post(client, agency, update)
    assert (await resp.json())["status"] == "updated"
    updated = await db.fetchval(
        "SELECT details FROM response_log WHERE incident_id = $1 AND event = 'incident_updated'",
        UUID(body["incident_id"]),
    )
    assert updated["signature"] == "not_checked"


async def test_edxl_envelope_fixture_is_unwrapped(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """The NSW-RFS-layout envelope gives two incidents in one request; a replay of it changes
    nothing; an envelope carrying a link is refused whole and kept for audit."""
    envelope = (FIXTURES / "edxlde_two_alerts.xml").read_bytes()
    resp = await _post(client, agency, envelope)
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    jsonschema.validate(body, openapi_document()["components"]["schemas"]["EnvelopeIntakeResult"])
    assert (body["envelope"], body["distribution_id"]) == ("EDXL-DE", "fixture-distribution-0001")
    assert [(i["source_incident_id"], i["status"]) for i in body["incidents"]] == [
        ("alerts@fire.example.org/fixture-2026-0203-001", "created"),
        ("alerts@fire.example.org/fixture-2026-0203-002", "created"),
    ]
    received = await _received(db, body["incidents"][0]["incident_id"])
    assert (received["envelope"], received["signature"]) == ("EDXL-DE", "not_checked")
    assert await db.fetchval("SELECT count(*) FROM incidents") == 2

    before = await snapshot(db)
    replay = await (await _post(client, agency, envelope)).json()
    assert [i["status"] for i in replay["incidents"]] == ["unchanged", "unchanged"]
    assert await snapshot(db) == before

    with_link = envelope.replace(
        b"<edxlde:xmlContent>",
        b"<edxlde:nonXMLContent><edxlde:uri>http://127.0.0.1:9/x</edxlde:uri>"
        b"</edxlde:nonXMLContent><edxlde:xmlContent>",
        1,
    )
    resp = await _post(client, agency, with_link)
    assert resp.status == 422
    problem = await resp.json()
    assert problem["pointer"] == "/EDXLDistribution/contentObject[1]/nonXMLContent"
    assert await snapshot(db) == before
    assert (await _rejected(client, agency))[0]["pointer"] == problem["pointer"]


async def test_empty_polygon_fixture_is_accepted(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """The NWS-layout Blizzard Warning with <polygon></polygon> is stored (no location, so it
    alerts nobody) instead of being refused whole."""
    resp = await _post(client, agency, (FIXTURES / "cap_blizzard_empty_polygon.xml").read_bytes())
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    assert body["status"] == "created"
    report = await db.fetchval(
        "SELECT report FROM incidents WHERE id = $1", UUID(body["incident_id"])
    )
    assert report["location"] is None
    assert report["address"]["text"] == "North Fixture; South Fixture"


@pytest.mark.slow
async def test_cli_pins_the_certificate_from_a_file(
    database_url: str, tmp_path: Path, signer: Signer
) -> None:
    """`dispatch agency configure --cap-signing-cert FILE` pins it; a file holding a private
    key is refused naming the field."""
    env = {"DATABASE_URL": database_url}
    agency = (await run_cli(env, "agency", "create", "--name", "CAP agency"))["agency_id"]
    pem = tmp_path / "sender.pem"
    pem.write_text(signer.pem)
    done = await dispatch_cli(
        env, "agency", "configure", "--agency", agency, "--cap-signing-cert", str(pem)
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cap_signing_cert"] == signer.pem

    pem.write_text(signer.pem + "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n")
    refused = await dispatch_cli(
        env, "agency", "configure", "--agency", agency, "--cap-signing-cert", str(pem)
    )
    assert refused.returncode == 1
    assert "/cap_signing_cert" in refused.stderr
    unset = await dispatch_cli(
        env, "agency", "configure", "--agency", agency, "--settings", '{"cap_signing_cert": null}'
    )
    assert json.loads(unset.stdout)["cap_signing_cert"] is None
