"""The incident list and the roster: filters, keyset pages, refusals, CSV = JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from tests.dispatch import review_helpers as review
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.review_helpers import Responder, Seeded, as_cell, csv_rows, seed, volunteer

pytestmark = pytest.mark.storage

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


async def _get(client: Any, agency: AgencyFixture, path: str, **params: Any) -> Any:
    return await review.supervised_json(client, agency, path, params)


async def _ids(client: Any, agency: AgencyFixture, **params: Any) -> list[str]:
    body = await _get(client, agency, "incidents", limit="1000", **params)
    return [i["number"] if "number" in i else i["incident_number"] for i in body["incidents"]]


async def test_incident_filters_select_exactly_their_incidents(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    v1 = await volunteer(db, agency.agency_id)
    v2 = await volunteer(db, agency.agency_id)
    specs = {
        "A": Seeded(T0, responders=[Responder(v1, accept_s=20, on_scene_s=200), Responder(v2)]),
        "B": Seeded(T0 + timedelta(days=1), cardiac_arrest=False, call_type="26-A-01"),
        "C": Seeded(T0 + timedelta(days=2), test=True, state="alerting", status="active"),
        "D": Seeded(T0 + timedelta(days=3), address="Kalverstraat 92_%", ems_s=400),
        "E": Seeded(T0 - timedelta(days=40), state="cancelled", status="cancelled"),
    }
    for number, spec in specs.items():
        spec.number = f"X-{number}"
        await seed(db, agency.agency_id, spec)

    async def numbers(**params: Any) -> list[str]:
        return [n.removeprefix("X-") for n in await _ids(client, agency, **params)]

    assert await numbers() == ["D", "C", "B", "A", "E"]
    assert await numbers(cardiac_arrest="true") == ["D", "C", "A", "E"]
    assert await numbers(cardiac_arrest="false") == ["B"]
    assert await numbers(test="true") == ["C"]
    assert await numbers(test="false") == ["D", "B", "A", "E"]
    assert await numbers(state="alerting") == ["C"]
    assert await numbers(state="alerting,cancelled") == ["C", "E"]
    assert await numbers(call_type="26-A-01") == ["B"]
    assert await numbers(q="kalverSTRAAT") == ["D"]
    assert await numbers(q="92_%") == ["D"]
    assert await numbers(q="x-e") == ["E"]
    assert await numbers(q="%") == ["D"]  # taken literally: only D holds a "%"
    assert await numbers(q="Z%Z") == []
    # Dates are whole days in the agency's zone (UTC here); `to` includes its day.
    assert await numbers(**{"from": "2026-03-10", "to": "2026-03-11"}) == ["B", "A"]
    assert await numbers(**{"from": "2026-03-11T00:00:00Z"}) == ["D", "C", "B"]
    assert await numbers(to="2026-03-10T08:00:00+00:00") == ["E"]
    assert await numbers(cardiac_arrest="true", test="false", state="closed") == ["D", "A"]

    body = await _get(client, agency, "incidents", q="X-A")
    (item,) = body["incidents"]
    assert item["alerted"] == 2
    assert item["accepted"] == 1
    assert item["on_scene"] == 1
    assert item["address"] == "Dam 1, Amsterdam"
    assert item["received_at"] == T0.isoformat()
    assert item["cardiac_arrest"] is True
    assert item["test"] is False
    body = await _get(client, agency, "incidents", q="X-D")
    assert (
        body["incidents"][0]["first_ems_on_scene_at"]
        == (T0 + timedelta(days=3, seconds=402)).isoformat()
    )


async def test_pages_cover_every_incident_once_in_order(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    # Many incidents share a received time: the id breaks the tie across page edges.
    expected = set()
    for i in range(23):
        spec = Seeded(T0 + timedelta(minutes=i // 4), number=f"P-{i:02d}")
        expected.add(str(await seed(db, agency.agency_id, spec)))
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        body = await _get(client, agency, "incidents", **params)
        seen += body["incidents"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    ids = [i["incident_id"] for i in seen]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    keys = [(i["received_at"], i["incident_id"]) for i in seen]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"state": "bogus"}, "state"),
        ({"cardiac_arrest": "yes"}, "cardiac_arrest"),
        ({"test": "1"}, "test"),
        ({"from": "2026-13-01"}, "from"),
        ({"from": "2026-03-01T10:00:00"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": ""}, "from"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "to"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WzEsMl0"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"format": "xml"}, "format"),
        ({"q": "a\x01b"}, "q"),
        ({"q": "x" * 101}, "q"),
        ({"call_type": ","}, "call_type"),
    ],
)
async def test_bad_incident_filters_are_problems_naming_the_parameter(
    client: Any, agency: AgencyFixture, params: dict[str, str], name: str
) -> None:
    resp = await review.supervised_get(client, agency, "incidents", params)
    assert await review.refused_parameters(resp) == [name]


async def test_incident_csv_has_the_json_cells(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    v1 = await volunteer(db, agency.agency_id)
    await seed(
        db,
        agency.agency_id,
        Seeded(T0, address='Dam 1, "centre"', responders=[Responder(v1, accept_s=9)], ems_s=300),
    )
    await seed(db, agency.agency_id, Seeded(T0 + timedelta(hours=1), address=None))
    await seed(db, agency.agency_id, Seeded(T0 + timedelta(hours=2), cardiac_arrest=None))
    body = await _get(client, agency, "incidents", limit="2")
    url = f"/v1/agencies/{agency.agency_id}/incidents"
    by_accept = await client.get(
        url, params={"limit": "2"}, headers={**agency.supervisor_auth, "Accept": "text/csv"}
    )
    by_param = await client.get(
        url, params={"limit": "2", "format": "csv"}, headers=agency.supervisor_auth
    )
    for resp in (by_accept, by_param):
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        assert resp.headers["Next-Cursor"] == body["next_cursor"]
        header, rows = csv_rows(await resp.text())
        assert header == list(body["incidents"][0])
        assert rows == [[as_cell(v) for v in item.values()] for item in body["incidents"]]


async def test_roster_filters_pages_and_never_positions(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    soon = datetime.now(UTC) + timedelta(days=10)
    later = datetime.now(UTC) + timedelta(days=400)
    a = await volunteer(db, agency.agency_id, "Ann", tier="professional", certified_until=soon)
    b = await volunteer(db, agency.agency_id, "Bob", verified=False, certified_until=later)
    c = await volunteer(db, agency.agency_id, "Cas", on_duty=False)
    d = await volunteer(db, agency.agency_id, "Dee", erased_at=datetime.now(UTC))
    await db.execute(
        "INSERT INTO volunteer_positions (volunteer_id, agency_id, lat, lon, reported_at)"
        " VALUES ($1, $2, 52.3, 4.9, now())",
        a,
        agency.agency_id,
    )

    async def ids(**params: Any) -> list[int]:
        body = await _get(client, agency, "volunteers", **params)
        return [v["volunteer_id"] for v in body["volunteers"]]

    assert await ids() == [a, b, c]
    assert d not in await ids()
    assert await ids(tier="professional") == [a]
    assert await ids(tier="lay") == [b, c]
    assert await ids(verified="false") == [b]
    assert await ids(on_duty="false") == [c]
    cutoff = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    assert await ids(certificate_expires_before=cutoff) == [a]
    first = await _get(client, agency, "volunteers", limit="2")
    second = await _get(client, agency, "volunteers", limit="2", cursor=first["next_cursor"])
    assert [v["volunteer_id"] for v in first["volunteers"] + second["volunteers"]] == [a, b, c]
    assert second["next_cursor"] is None
    text = str(first)
    assert "lat" not in text
    assert "lon" not in text
    assert "phone" not in text
    resp = await review.supervised_get(client, agency, "volunteers", {"verified": "maybe"})
    assert await review.refused_parameters(resp) == ["verified"]
