"""The activations report and the Utstein export: every number from a history laid out by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.review_helpers import (
    Responder,
    Seeded,
    as_cell,
    csv_rows,
    refused_parameters,
    seed,
    supervised_get,
    supervised_json,
    volunteer,
)

pytestmark = pytest.mark.storage

RANGE = {"from": "2026-03-01", "to": "2026-04-30"}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _history(db: asyncpg.Connection, agency: AgencyFixture) -> dict[str, Any]:
    """Amsterdam time: UTC+1 in March, UTC+2 from 29 March 2026."""
    await db.execute(
        "UPDATE agencies SET time_zone = 'Europe/Amsterdam' WHERE id = $1", agency.agency_id
    )
    v1, v2, v3 = [await volunteer(db, agency.agency_id, n) for n in ("V1", "V2", "V3")]
    ids = {}
    history = {
        # 00:30 on 1 March local: inside the range, hour 0.
        "I0": Seeded(_at("2026-02-28T23:30"), alerting=False, not_alertable="too_old"),
        "I1": Seeded(
            _at("2026-03-10T08:00"),
            responders=[
                Responder(v1, sent_s=5, accept_s=20, on_scene_s=200),
                Responder(v2, sent_s=6),
            ],
            ems_s=400,
        ),
        "I2": Seeded(
            _at("2026-03-20T08:30"),
            responders=[Responder(v1, sent_s=10, accept_s=30, on_scene_s=500, role="aed")],
            ems_s=300,
        ),
        "I3": Seeded(_at("2026-04-05T22:30"), responders=[Responder(v3, sent_s=7)]),
        "I4": Seeded(
            _at("2026-04-07T10:00"),
            cardiac_arrest=False,
            alerting=False,
            not_alertable="not_cardiac_arrest",
        ),
        "I5": Seeded(_at("2026-04-08T10:00"), test=True, responders=[Responder(v2, sent_s=3)]),
        "I6": Seeded(_at("2026-04-09T10:00")),
        # 01:00 on 1 May local: after the range.
        "I7": Seeded(_at("2026-04-30T23:00"), responders=[Responder(v3, sent_s=1)]),
    }
    for name, spec in history.items():
        spec.number = name
        ids[name] = await seed(db, agency.agency_id, spec)
    return ids


async def _report(client: Any, agency: AgencyFixture, **extra: str) -> Any:
    return await supervised_get(client, agency, "reports/activations", {**RANGE, **extra})


async def test_activations_report_numbers(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    await _history(db, agency)
    resp = await _report(client, agency)
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["time_zone"] == "Europe/Amsterdam"
    assert report["from"] == "2026-02-28T23:00:00+00:00"
    assert report["to"] == "2026-04-30T22:00:00+00:00"
    total = report["total"]
    expected_total = {
        "activations": 4,
        "activations_without_alert": 1,
        "alerts_sent": 4,
        "alerts_accepted": 2,
        "acceptance_rate": 0.5,
        "with_volunteer_on_scene": 2,
        "volunteer_on_scene_rate": 0.5,
        "volunteer_and_ems_on_scene": 2,
        "volunteer_before_ems": 1,
        "volunteer_before_ems_rate": 0.5,
        "median_lead_s": 200.0,
        "median_s_to_first_alert": 7.0,
        "median_s_to_first_accept": 25.0,
        "median_s_to_first_volunteer_on_scene": 350.0,
        "median_s_to_first_ems_on_scene": 350.0,
        "excluded": 3,
        "volunteers_alerted": 3,
        "alerts_per_volunteer_median": 1.0,
        "alerts_per_volunteer_p90": 1.8,
    }
    assert {k: total[k] for k in expected_total} == expected_total
    assert {k: v for k, v in total["exclusions"].items() if v} == {
        "too_old": 1,
        "not_cardiac_arrest": 1,
        "test": 1,
    }
    months = {m["month"]: m for m in report["by_month"]}
    assert list(months) == ["2026-03", "2026-04"]
    march, april = months["2026-03"], months["2026-04"]
    assert (march["activations"], march["alerts_sent"], march["alerts_accepted"]) == (2, 3, 2)
    assert march["acceptance_rate"] == 0.6667
    assert march["excluded"] == 1
    assert march["exclusions"]["too_old"] == 1
    assert (march["alerts_per_volunteer_median"], march["alerts_per_volunteer_p90"]) == (1.5, 1.9)
    assert (april["activations"], april["activations_without_alert"], april["excluded"]) == (
        2,
        1,
        2,
    )
    assert april["median_s_to_first_alert"] == 7.0
    assert april["volunteer_on_scene_rate"] == 0.0
    hours = {h["hour"]: h for h in report["by_hour"]}
    assert sorted(hours) == list(range(24))
    assert (hours[9]["activations"], hours[9]["median_s_to_first_accept"]) == (2, 25.0)
    assert (hours[0]["activations"], hours[0]["excluded"]) == (1, 1)
    assert (hours[12]["activations"], hours[12]["excluded"]) == (1, 2)
    assert hours[10]["activations"] == 0
    assert hours[10]["acceptance_rate"] is None
    assert hours[10]["median_s_to_first_alert"] is None


async def test_activations_csv_has_the_json_cells(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    await _history(db, agency)
    report = await (await _report(client, agency)).json()
    resp = await _report(client, agency, format="csv")
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    header, rows = csv_rows(await resp.text())
    groups = [("total", "", report["total"])]
    groups += [("month", m["month"], m) for m in report["by_month"]]
    groups += [("hour", str(h["hour"]), h) for h in report["by_hour"]]
    assert [(r[0], r[1]) for r in rows] == [(g, k) for g, k, _ in groups]
    cells = 0
    for row, (_, _, values) in zip(rows, groups, strict=True):
        for column, text in zip(header[2:], row[2:], strict=True):
            if column in values:
                value = values[column]
            else:
                value = values["exclusions"][column.removeprefix("excluded_")]
            assert text == as_cell(value), column
            cells += 1
    assert cells == len(rows) * (len(header) - 2)
    assert set(header[2:]) - {f"excluded_{r}" for r in report["total"]["exclusions"]} == {
        k for k in report["total"] if k != "exclusions"
    }


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"from": "2100-03-01"}, "to"),
        ({"to": ""}, "to"),
        ({"from": "2026-03-01", "to": "2026-02-01"}, "to"),
        ({"from": "2000-01-01", "to": "2026-02-01"}, "to"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
        ({**RANGE, "format": "pdf"}, "format"),
    ],
)
async def test_bad_report_ranges_are_problems_naming_the_parameter(
    client: Any, agency: AgencyFixture, params: dict[str, str], name: str
) -> None:
    resp = await supervised_get(client, agency, "reports/activations", params)
    assert await refused_parameters(resp) == [name]


async def test_utstein_rows_one_per_real_cardiac_arrest(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    await _history(db, agency)
    url = f"/v1/agencies/{agency.agency_id}/reports/utstein.csv"
    rows: list[dict[str, str]] = []
    cursor = None
    pages = 0
    while True:
        params = {**RANGE, "limit": "2", **({"cursor": cursor} if cursor else {})}
        resp = await client.get(url, params=params, headers=agency.supervisor_auth)
        assert resp.status == 200, await resp.text()
        assert resp.content_type == "text/csv"
        header, page = csv_rows(await resp.text())
        rows += [dict(zip(header, r, strict=True)) for r in page]
        pages += 1
        cursor = resp.headers.get("Next-Cursor")
        if cursor is None:
            break
    assert pages == 3
    assert [r["incident_number"] for r in rows] == ["I0", "I1", "I2", "I3", "I6"]
    by = {r["incident_number"]: r for r in rows}
    columns = (
        "activated",
        "excluded_reason",
        "s_to_first_alert",
        "s_to_first_accept",
        "s_to_first_volunteer_arrival",
        "s_to_first_ems_arrival",
        "volunteers_alerted",
        "volunteers_accepted",
        "volunteers_arrived",
        "aed_fetched",
        "volunteer_before_ems",
    )
    expected = {
        "I0": ("false", "too_old", "", "", "", "", "0", "0", "0", "false", ""),
        "I1": ("true", "", "5.0", "20.0", "200.0", "400.0", "2", "1", "1", "false", "true"),
        "I2": ("true", "", "10.0", "30.0", "500.0", "300.0", "1", "1", "1", "true", "false"),
        "I3": ("true", "", "7.0", "", "", "", "1", "0", "0", "false", ""),
        "I6": ("true", "", "", "", "", "", "0", "0", "0", "false", ""),
    }
    assert {n: tuple(by[n][c] for c in columns) for n in by} == expected
    assert by["I1"]["received_at"] == "2026-03-10T08:00:00+00:00"
    assert by["I1"]["receipt_at"] == "2026-03-10T08:00:02+00:00"


async def test_report_range_defaults_to_twelve_calendar_months(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    await db.execute(
        "UPDATE agencies SET time_zone = 'Europe/Amsterdam' WHERE id = $1", agency.agency_id
    )
    report = await supervised_json(client, agency, "reports/activations")
    months = [m["month"] for m in report["by_month"]]
    assert len(months) == 12
    assert months[-1] == datetime.now(ZoneInfo("Europe/Amsterdam")).strftime("%Y-%m")
    start = datetime.fromisoformat(report["from"]).astimezone(ZoneInfo("Europe/Amsterdam"))
    assert (start.day, start.hour, start.strftime("%Y-%m")) == (1, 0, months[0])
    resp = await supervised_get(client, agency, "reports/activations", {"to": "2026-06-30"})
    assert (await resp.json())["by_month"][0]["month"] == "2025-07"
