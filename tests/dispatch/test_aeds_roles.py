"""AED registry imports and the CPR / AED-fetch role split."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.domain.aed_import import AedImportError, parse_csv, parse_geojson
from dispatch.domain.aeds import (
    Aed,
    Assignment,
    Responder,
    Role,
    distance_m,
    is_accessible,
    plan_roles,
)
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, incident, offset, post_aeds, volunteer_at

PATIENT = CENTRE


def _responder(north: float, east: float, *, responding: bool = False) -> Responder:
    lat, lon = offset(*PATIENT, north, east)
    return Responder(uuid4(), lat, lon, distance_m(lat, lon, *PATIENT), responding)


def _aed(aed_id: int, north: float, east: float, hours: Any = None) -> Aed:
    lat, lon = offset(*PATIENT, north, east)
    return Aed(aed_id, f"AED {aed_id}", lat, lon, hours)


def test_nearest_goes_direct_and_others_fetch_aeds_on_a_small_detour() -> None:
    """The nearest does CPR; a third go direct; the rest fetch the AED on their way."""
    near, mid, far = _responder(50, 0), _responder(300, 0), _responder(0, 350)
    aeds = [_aed(1, 200, 0), _aed(2, 0, 250)]
    roles = plan_roles([far, near, mid], aeds, patient=PATIENT, max_detour_m=300)
    assert roles[near.alert_id].role is Role.CPR
    assert roles[mid.alert_id] == Assignment(Role.AED, 1)
    assert roles[far.alert_id].aed_id == 2


def test_no_aed_role_when_the_detour_is_too_long() -> None:
    """An AED behind the volunteer is not worth the walk: they go straight to the patient."""
    near, other = _responder(50, 0), _responder(300, 0)
    behind = _aed(1, 800, 0)
    roles = plan_roles([near, other], [behind], patient=PATIENT, max_detour_m=300)
    assert {r.role for r in roles.values()} == {Role.CPR}


def test_responder_keeps_the_aed_they_were_sent_for() -> None:
    """Roles do not flap as answers come in: an accepted AED fetcher keeps their AED."""
    fetcher = Responder(uuid4(), *offset(*PATIENT, 300, 0), 300, True, current_aed=7)
    closer = _responder(20, 0)
    roles = plan_roles(
        [fetcher, closer], [_aed(7, 290, 0), _aed(8, 10, 0)], patient=PATIENT, max_detour_m=300
    )
    assert roles[fetcher.alert_id].aed_id == 7
    assert roles[closer.alert_id].role is Role.CPR


@given(
    st.lists(st.tuples(st.floats(-900, 900), st.floats(-900, 900), st.booleans()), max_size=12),
    st.lists(st.tuples(st.floats(-500, 500), st.floats(-500, 500)), max_size=6),
    st.floats(0, 1000),
)
def test_role_invariants(
    people: list[tuple[float, float, bool]], places: list[tuple[float, float]], detour: float
) -> None:
    """Everyone gets a role; the nearest never waits for an AED unless already fetching one;
    each AED is fetched by one volunteer; at least a third go direct."""
    responders = [_responder(n, e, responding=r) for n, e, r in people]
    aeds = [_aed(i, n, e) for i, (n, e) in enumerate(places)]
    roles = plan_roles(responders, aeds, patient=PATIENT, max_detour_m=detour)
    assert set(roles) == {r.alert_id for r in responders}
    fetched = [a.aed_id for a in roles.values() if a.role is Role.AED]
    assert len(fetched) == len(set(fetched))
    if responders:
        nearest = min(responders, key=lambda r: (r.to_patient_m, str(r.alert_id)))
        assert roles[nearest.alert_id].role is Role.CPR
        direct = sum(a.role is Role.CPR for a in roles.values())
        assert direct >= max(1, -(-len(responders) // 3))


def test_access_hours() -> None:
    """An AED in a shop is no use at night; one without hours is always open."""
    shop = _aed(1, 0, 0, {"mon": [(time(8), time(18))]})
    monday_noon = datetime(2026, 11, 30, 12, 0)
    assert is_accessible(shop, monday_noon)
    assert not is_accessible(shop, monday_noon.replace(hour=19))
    assert not is_accessible(shop, datetime(2026, 11, 29, 12, 0)), "closed on Sunday"
    assert is_accessible(_aed(2, 0, 0), monday_noon.replace(hour=3))


CSV = """id,name,lat,lon,indoor_description,access_notes,access_hours
A1,Station hall,52.3791,4.9003,Next to ticket machines,,24/7
A2,Pharmacy,52.3735,4.8930,Behind the counter,Ask staff,"{""mon"": [[""08:00"", ""18:00""]]}"
"""


def test_csv_and_geojson_imports() -> None:
    """Both formats give the same records; GeoJSON's [lon, lat] order is honoured."""
    rows = parse_csv(CSV)
    assert [(r.external_id, r.lat, r.lon) for r in rows] == [
        ("A1", 52.3791, 4.9003),
        ("A2", 52.3735, 4.893),
    ]
    assert rows[0].access_hours is None
    assert rows[1].access_hours == {"mon": [["08:00", "18:00"]]}
    geo = parse_geojson(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": "A1",
                    "geometry": {"type": "Point", "coordinates": [4.9003, 52.3791]},
                    "properties": {"name": "Station hall"},
                }
            ],
        }
    )
    assert (geo[0].lat, geo[0].lon) == (52.3791, 4.9003)


BACKWARDS = 'id,name,lat,lon,access_hours\nA,B,52,4,"{""mon"": [[""18:00"", ""08:00""]]}"\n'


@pytest.mark.parametrize(
    ("text", "pointer"),
    [
        ("id,name,lat\nA,B,1\n", "/header"),
        ("id,name,lat,lon\nA,B,91,4\n", "/line/2/lat"),
        ("id,name,lat,lon\nA,B,NaN,4\n", "/line/2/lat"),
        ("id,name,lat,lon\nA,,52,4\n", "/line/2/name"),
        ("id,name,lat,lon,access_hours\nA,B,52,4,always\n", "/line/2/access_hours"),
        (BACKWARDS, "/line/2/access_hours/mon"),
        ("id,name,lat,lon\nA,B,52,4\nA,C,52,4\n", "/id"),
    ],
)  # fmt: skip
def test_bad_rows_are_refused_naming_the_line(text: str, pointer: str) -> None:
    """A bad row refuses the whole file, saying which line and field."""
    with pytest.raises(AedImportError) as raised:
        parse_csv(text)
    assert raised.value.pointer == pointer


async def test_incident_splits_roles_and_the_app_sees_its_aed(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    """With AEDs imported, an incident's nearest volunteer does CPR and the next fetches the
    AED on the way; the volunteer's app reads the role and the AED's place and notes."""
    aed_lat, aed_lon = offset(*CENTRE, 150, 0)
    resp = await post_aeds(
        client,
        agency,
        f"id,name,lat,lon,indoor_description\nX1,Library,{aed_lat},{aed_lon},Lobby\n",
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["imported"] == 1
    tokens = {}
    for north in (40, 250):
        tokens[north] = await volunteer_at(client, agency, offset(*CENTRE, north, 0))
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("aed-1"), headers=agency.auth
    )
    assert (await resp.json())["alerts_queued"] == 2
    roles = {
        r["volunteer_id"]: (r["role"], r["id"])
        for r in await db.fetch("SELECT volunteer_id, role, id FROM alerts")
    }
    assert roles[tokens[40][0]][0] == "cpr"
    assert roles[tokens[250][0]][0] == "aed"
    resp = await client.get(
        f"/v1/alerts/{roles[tokens[250][0]][1]}",
        headers={"Authorization": f"Bearer {tokens[250][1]}"},
    )
    assert resp.status == 200
    seen = await resp.json()
    assert seen["role"] == "aed"
    assert seen["aed"]["name"] == "Library"
    assert seen["aed"]["indoor_description"] == "Lobby"
    assert seen["patient"]["lat"] == pytest.approx(CENTRE[0])
    resp = await client.get(
        f"/v1/alerts/{roles[tokens[250][0]][1]}",
        headers={"Authorization": f"Bearer {tokens[40][1]}"},
    )
    assert resp.status == 404, "another volunteer's alert stays private"
