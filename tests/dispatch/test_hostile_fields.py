"""Text and dates PostgreSQL cannot hold, and bodies that were accepted then ignored.

Each answer is 422 problem+json naming the field and changes nothing; a refused CAD
document is kept for audit like every other refusal.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, incident, post_aeds, snapshot

NUL = "a\u0000b"
SURROGATE = "a\ud800b"


def _raw(doc: Any) -> bytes:
    # json.dumps escapes both (\u0000, \ud800) exactly as a hostile client would send them.
    return json.dumps(doc).encode()


async def _refused(resp: Any, pointer: str) -> None:
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["pointer"] == pointer


def _named(bad: str) -> str:
    """How a refused field name is named: what cannot be stored replaced by U+FFFD."""
    return "/a\ufffdb" if bad == NUL else "/a?b"


async def _volunteer(client: Any, agency: AgencyFixture) -> dict[str, str]:
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "V"},
        headers=agency.supervisor_auth,
    )
    return {"Authorization": f"Bearer {(await resp.json())['token']}"}


@pytest.mark.parametrize("bad", [NUL, SURROGATE], ids=["nul", "surrogate"])
@pytest.mark.parametrize(
    ("endpoint", "document", "pointer"),
    [
        ("incidents", lambda s: incident("i1", address=s), "/address"),
        ("incidents", lambda s: incident("i1", local_incident_number=s), "/local_incident_number"),
        ("incidents", lambda s: incident(s), "/incident_id"),
        ("incidents", lambda s: {**incident("i1"), s: 1}, None),
        (
            "eido",
            lambda s: {
                "$id": "urn:x",
                "eidoVersion": "1.0",
                "lastUpdateTimeStamp": "2026-11-30T10:00:00Z",
                "incidentComponent": {"internalIncidentId": s},
            },
            "/incidentComponent/internalIncidentId",
        ),
    ],
)
async def test_cad_text_that_cannot_be_stored_is_refused_and_kept(
    client: Any,
    agency: AgencyFixture,
    db: asyncpg.Connection,
    endpoint: str,
    document: Any,
    pointer: str | None,
    bad: str,
) -> None:
    pointer = pointer if pointer is not None else _named(bad)
    before = await snapshot(db)
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/{endpoint}",
        data=_raw(document(bad)),
        headers={**agency.auth, "Content-Type": "application/json"},
    )
    await _refused(resp, pointer)
    assert await snapshot(db) == before
    rows = await db.fetch("SELECT status, pointer FROM rejected_documents")
    assert [(r["status"], r["pointer"]) for r in rows] == [(422, pointer)], "kept for audit"


@pytest.mark.parametrize(
    ("route", "method", "body", "pointer"),
    [
        ("volunteers", "post", {"display_name": NUL}, "/display_name"),
        ("volunteers", "post", {"display_name": SURROGATE}, "/display_name"),
        ("volunteers", "post", {"display_name": "V", "language": NUL}, "/language"),
        ("settings", "patch", {"call_type_rules": {"codes": [NUL]}}, "/call_type_rules/codes/0"),
        ("settings", "patch", {"place_rules": {"public": [SURROGATE]}}, "/place_rules/public/0"),
        ("settings", "patch", {"time_zone": NUL}, "/time_zone"),
    ],
)
async def test_admin_text_that_cannot_be_stored_is_refused(
    client: Any,
    agency: AgencyFixture,
    db: asyncpg.Connection,
    route: str,
    method: str,
    body: dict[str, Any],
    pointer: str,
) -> None:
    before = await snapshot(db)
    resp = await getattr(client, method)(
        f"/v1/agencies/{agency.agency_id}/{route}",
        data=_raw(body),
        headers={**agency.supervisor_auth, "Content-Type": "application/json"},
    )
    await _refused(resp, pointer)
    assert await snapshot(db) == before


async def test_aed_names_with_nul_are_refused(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    csv = f"id,name,lat,lon\nA1,Station\u0000hall,{CENTRE[0]},{CENTRE[1]}\n"
    resp = await post_aeds(client, agency, csv.encode())
    await _refused(resp, "/line/2")
    feature = {
        "type": "Feature",
        "id": "A1",
        "properties": {"name": SURROGATE},
        "geometry": {"type": "Point", "coordinates": [CENTRE[1], CENTRE[0]]},
    }
    collection = {"type": "FeatureCollection", "features": [feature]}
    resp = await post_aeds(client, agency, _raw(collection), "application/geo+json")
    await _refused(resp, "/features/0/properties/name")
    assert await db.fetchval("SELECT count(*) FROM aeds") == 0


EDGE_DATES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00"]


@pytest.mark.parametrize("stamp", EDGE_DATES)
@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        (lambda s: incident("d1", received_at=s), "/received_at"),
        (lambda s: incident("d1", updated_at=s), "/updated_at"),
        (
            lambda s: incident("d1", units=[{"unit_id": "M1", "status": "en_route", "at": s}]),
            "/units/0/at",
        ),
    ],
)
async def test_cad_dates_outside_1900_to_2200_are_refused(
    client: Any,
    agency: AgencyFixture,
    db: asyncpg.Connection,
    document: Any,
    pointer: str,
    stamp: str,
) -> None:
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=document(stamp), headers=agency.auth
    )
    await _refused(resp, pointer)
    assert await db.fetchval("SELECT count(*) FROM incidents") == 0
    assert await db.fetchval("SELECT count(*) FROM rejected_documents") == 1


@pytest.mark.parametrize("stamp", EDGE_DATES[:2])
async def test_volunteer_dates_outside_1900_to_2200_are_refused(
    client: Any, agency: AgencyFixture, stamp: str
) -> None:
    auth = await _volunteer(client, agency)
    resp = await client.put(
        "/v1/me/location", json={"lat": CENTRE[0], "lon": CENTRE[1], "at": stamp}, headers=auth
    )
    await _refused(resp, "/at")
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "W", "certified_until": stamp},
        headers=agency.supervisor_auth,
    )
    await _refused(resp, "/certified_until")


async def test_half_set_quiet_hours_are_refused(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "V", "quiet_from": "22:00", "quiet_until": None},
        headers=agency.supervisor_auth,
    )
    await _refused(resp, "/quiet_until")
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "V", "quiet_from": None, "quiet_until": "07:00"},
        headers=agency.supervisor_auth,
    )
    await _refused(resp, "/quiet_from")
    assert await db.fetchval("SELECT count(*) FROM volunteers") == 0


async def test_bodies_that_were_accepted_and_ignored_are_refused(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    auth = await _volunteer(client, agency)
    resp = await client.put(
        f"/v1/agencies/{agency.agency_id}/delivery-settings",
        json={"critical_alerts": None},
        headers=agency.supervisor_auth,
    )
    await _refused(resp, "/critical_alerts")
    for refused in (["sms", "sms"], ["sms", "voice", "sms", "voice"]):
        resp = await client.put("/v1/me/channels", json={"refused": refused}, headers=auth)
        await _refused(resp, "/refused")
    resp = await client.put(
        "/v1/me/location", json={"lat": CENTRE[0], "lon": CENTRE[1], "at": None}, headers=auth
    )
    await _refused(resp, "/at")
    assert await db.fetchval("SELECT count(*) FROM volunteer_positions") == 0


@pytest.mark.parametrize(
    ("language", "accepted"),
    [
        ("en", True),
        ("nl-NL", True),
        ("zh-Hant-TW", True),
        ("sr-Latn-RS", True),
        ("es-419", True),
        ("en-US-x-twain", True),
        ("english please", False),
        ("e", False),
        ("nl_NL", False),
        ("x" * 8, False),
        ("en-", False),
    ],
)
async def test_language_must_be_a_bcp47_tag(
    client: Any, agency: AgencyFixture, language: str, accepted: bool
) -> None:
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "V", "language": language},
        headers=agency.supervisor_auth,
    )
    if accepted:
        assert resp.status == 201, await resp.text()
    else:
        await _refused(resp, "/language")


def test_supported_years_are_checked_after_conversion_to_utc() -> None:
    from cad_adapters import CadParseError, in_supported_range

    inside = datetime(1900, 1, 1, 0, 30, tzinfo=UTC)
    assert in_supported_range(inside, pointer="/x") == inside
    with pytest.raises(CadParseError):
        in_supported_range(datetime(1899, 12, 31, 23, 59, tzinfo=UTC), pointer="/x")
