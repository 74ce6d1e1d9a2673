"""A kept activations report is always the report computed now: after late events, late CAD
reports, corrections and deletions in its months, and against a recomputation from the log."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from dispatch.config import Settings
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.review_helpers import (
    Responder,
    Seeded,
    seed,
    supervised_json,
    volunteer,
)

pytestmark = pytest.mark.storage


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Only requests keep reports here: housekeeping's warm-up has its own tests."""
    return settings.with_overrides(report_warmup_s=0)


ZONE = ZoneInfo("Europe/Amsterdam")
REASONS = (
    "not_cardiac_arrest",
    "unknown_call_type",
    "not_active",
    "no_location",
    "too_old",
    "in_future",
    "location_imprecise",
    "received_time_unknown",
    "test",
    "other",
)


def _months_back(n: int) -> date:
    today = datetime.now(UTC).date()
    month = today.year * 12 + today.month - 1 - n
    return date(month // 12, month % 12 + 1, 1)


# Two whole months that ended long ago; the history sits in both.
FIRST, SECOND = _months_back(4), _months_back(3)
RANGE = {"from": FIRST.isoformat(), "to": (_months_back(2) - timedelta(days=1)).isoformat()}


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def _history(db: asyncpg.Connection, agency: AgencyFixture) -> dict[str, Any]:
    await db.execute(
        "UPDATE agencies SET time_zone = 'Europe/Amsterdam' WHERE id = $1", agency.agency_id
    )
    v = [await volunteer(db, agency.agency_id, f"V{n}") for n in range(4)]
    specs = [
        Seeded(
            _local(FIRST + timedelta(days=2), 8),
            responders=[
                Responder(v[0], sent_s=5.25, accept_s=20.5, on_scene_s=200.125),
                Responder(v[1], sent_s=6.75),
            ],
            ems_s=400.5,
        ),
        Seeded(
            _local(FIRST + timedelta(days=9), 8, 30),
            responders=[Responder(v[0], sent_s=10, accept_s=31.3, on_scene_s=500, role="aed")],
            ems_s=300.05,
        ),
        Seeded(
            _local(FIRST + timedelta(days=14), 21),
            responders=[Responder(v[2], sent_s=7.15, accept_s=44), Responder(v[3], sent_s=8)],
        ),
        Seeded(_local(SECOND + timedelta(days=3), 22, 30), responders=[Responder(v[2])]),
        Seeded(
            _local(SECOND + timedelta(days=6), 10),
            cardiac_arrest=False,
            alerting=False,
            not_alertable="not_cardiac_arrest",
        ),
        Seeded(_local(SECOND + timedelta(days=7), 10), test=True, responders=[Responder(v[1])]),
        Seeded(
            _local(SECOND + timedelta(days=8), 8),
            responders=[Responder(v[1], sent_s=3.5, accept_s=12.25, on_scene_s=150)],
            ems_s=140,
        ),
    ]
    ids = [await seed(db, agency.agency_id, spec) for spec in specs]
    return {"volunteers": v, "incidents": ids}


async def _report(client: Any, agency: AgencyFixture, params: dict[str, str] = RANGE) -> Any:
    return await supervised_json(client, agency, "reports/activations", params)


async def _fresh(client: Any, db: asyncpg.Connection, agency: AgencyFixture) -> Any:
    """The report computed from the tables, nothing kept (without its computation time,
    which is this request's)."""
    await db.execute("DELETE FROM activations_cache")
    report = await _report(client, agency)
    assert await db.fetchval("SELECT count(*) FROM activations_cache") == 1
    return _figures(report)


def _figures(report: Any) -> Any:
    """The report without ``computed_at``: what a computation now must give again."""
    return {k: v for k, v in report.items() if k != "computed_at"}


def _percentile(values: list[float], q: float) -> float | None:
    """PostgreSQL's percentile_cont, step by step in the same double arithmetic."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    lo, hi = math.floor(position), math.ceil(position)
    if hi == lo:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _secs(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _group_numbers(facts: list[dict[str, Any]]) -> dict[str, Any]:
    """One group of the report, from per-incident facts, by the documented definitions."""
    acts = [f for f in facts if f["act"]]

    def median(values: list[float | None]) -> float | None:
        return _secs(_percentile([x for x in values if x is not None], 0.5))

    both = [f for f in acts if f["to_arrival"] is not None and f["to_ems"] is not None]
    before = [f for f in both if f["lead"] > 0]
    per_volunteer: dict[int, int] = defaultdict(int)
    for f in acts:
        for volunteer_id in f["sent_to"]:
            per_volunteer[volunteer_id] += 1
    burden = [float(n) for n in per_volunteer.values()]
    exclusions = dict.fromkeys(REASONS, 0)
    for f in facts:
        if f["excluded"] is not None:
            exclusions[f["excluded"]] += 1
    sent = sum(len(f["sent_to"]) for f in acts)
    accepted = sum(f["accepted"] for f in acts)
    on_scene = sum(1 for f in acts if f["to_arrival"] is not None)
    return {
        "activations": len(acts),
        "activations_without_alert": sum(1 for f in acts if not f["sent_to"]),
        "alerts_sent": sent,
        "alerts_accepted": accepted,
        "acceptance_rate": _rate(accepted, sent),
        "with_volunteer_on_scene": on_scene,
        "volunteer_on_scene_rate": _rate(on_scene, len(acts)),
        "volunteer_and_ems_on_scene": len(both),
        "volunteer_before_ems": len(before),
        "volunteer_before_ems_rate": _rate(len(before), len(both)),
        "median_lead_s": median([f["lead"] for f in before]),
        "median_s_to_first_alert": median([f["to_alert"] for f in acts]),
        "median_s_to_first_accept": median([f["to_accept"] for f in acts]),
        "median_s_to_first_volunteer_on_scene": median([f["to_arrival"] for f in acts]),
        "median_s_to_first_ems_on_scene": median([f["to_ems"] for f in acts]),
        "excluded": sum(exclusions.values()),
        "volunteers_alerted": len(burden),
        "alerts_per_volunteer_median": _secs(_percentile(burden, 0.5)),
        "alerts_per_volunteer_p90": _secs(_percentile(burden, 0.9)),
        "exclusions": exclusions,
    }


async def _from_the_log(db: asyncpg.Connection, agency_id: UUID, report: Any) -> dict[str, Any]:
    """The report recomputed from incidents, alerts and the response log, row by row."""
    start, stop = datetime.fromisoformat(report["from"]), datetime.fromisoformat(report["to"])
    incidents = await db.fetch(
        "SELECT * FROM incidents WHERE agency_id = $1 AND received_at >= $2 AND received_at < $3",
        agency_id,
        start,
        stop,
    )
    log = await db.fetch(
        """
        SELECT r.*, a.volunteer_id AS alerted FROM response_log r
        LEFT JOIN alerts a ON a.id = r.alert_id
        WHERE r.agency_id = $1 ORDER BY r.id
        """,
        agency_id,
    )
    facts = []
    for i in incidents:
        events = [e for e in log if e["incident_id"] == i["id"]]

        def first(name: str, events: list[Any] = events) -> datetime | None:
            times = [e["at"] for e in events if e["event"] == name and e["alerted"] is not None]
            return min(times, default=None)

        def since(at: datetime | None, start: datetime | None = i["created_at"]) -> float | None:
            return None if at is None or start is None else (at - start).total_seconds()

        reasons = [e["details"]["reason"] for e in events if e["event"] == "not_alertable"]
        act = i["alerting_started_at"] is not None and not i["is_test"]
        excluded = (
            "test"
            if i["is_test"]
            else None
            if act
            else (reasons[0] if reasons else i["alert_blocked"] or "other")
        )
        sent = {
            e["alert_id"]: e["alerted"]
            for e in events
            if e["event"] == "alert_sent" and e["alerted"] is not None
        }
        accepted = {
            e["alert_id"]
            for e in events
            if e["event"] == "alert_accepted" and e["alerted"] is not None
        }
        local = i["received_at"].astimezone(ZONE)
        facts.append(
            {
                "month": local.strftime("%Y-%m"),
                "hour": local.hour,
                "act": act,
                "excluded": excluded,
                "sent_to": list(sent.values()),
                "accepted": len(accepted),
                "to_alert": since(first("alert_sent")),
                "to_accept": since(first("alert_accepted")),
                "to_arrival": since(first("alert_on_scene")),
                "to_ems": since(i["first_ems_on_scene_at"]),
                "lead": since(i["first_ems_on_scene_at"], first("alert_on_scene")),
            }
        )
    return {
        "total": _group_numbers(facts),
        "by_month": [
            {"month": m["month"], **_group_numbers([f for f in facts if f["month"] == m["month"]])}
            for m in report["by_month"]
        ],
        "by_hour": [
            {"hour": h, **_group_numbers([f for f in facts if f["hour"] == h])} for h in range(24)
        ],
    }


def _numbers(report: Any) -> dict[str, Any]:
    return {k: report[k] for k in ("total", "by_month", "by_hour")}


async def test_kept_report_equals_the_log_recomputed_before_and_after_a_late_answer(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    seeded = await _history(db, agency)
    computed = await _report(client, agency)
    assert await db.fetchval("SELECT count(*) FROM activations_cache") == 1
    kept = await _report(client, agency)
    assert kept == computed
    assert _numbers(kept) == await _from_the_log(db, agency.agency_id, kept)

    # Weeks later, the app of the volunteer alerted to the first month's third incident
    # delivers an accept it could not send at the time.
    await late_accept(db, seeded)
    after = await _report(client, agency)
    assert after["by_month"][0]["alerts_accepted"] == kept["by_month"][0]["alerts_accepted"] + 1
    assert after["total"]["median_s_to_first_accept"] != kept["total"]["median_s_to_first_accept"]
    assert _numbers(after) == await _from_the_log(db, agency.agency_id, after)
    assert _figures(after) == await _fresh(client, db, agency)


async def late_accept(db: asyncpg.Connection, seeded: Any) -> None:
    """The accept of the alert of the first month's third incident to its second volunteer,
    logged weeks late (its app could not send it at the time)."""
    alert_id = await db.fetchval(
        "SELECT id FROM alerts WHERE incident_id = $1 AND volunteer_id = $2",
        seeded["incidents"][2],
        seeded["volunteers"][3],
    )
    await db.execute(
        """
        INSERT INTO response_log (agency_id, incident_id, alert_id, volunteer_id, event, at)
        SELECT agency_id, incident_id, id, volunteer_id, 'alert_accepted',
               created_at + interval '15.4 seconds'
        FROM alerts WHERE id = $1
        """,
        alert_id,
    )


async def _late_report(db: asyncpg.Connection, agency: AgencyFixture, seeded: Any) -> None:
    await seed(
        db,
        agency.agency_id,
        Seeded(
            _local(SECOND + timedelta(days=20), 23),
            responders=[Responder(seeded["volunteers"][0], sent_s=2.5)],
        ),
    )


async def _ems_recorded_late(db: asyncpg.Connection, agency: AgencyFixture, seeded: Any) -> None:
    await db.execute(
        "UPDATE incidents SET first_ems_on_scene_at = created_at + interval '90 s' WHERE id = $1",
        seeded["incidents"][2],
    )


async def _marked_test(db: asyncpg.Connection, agency: AgencyFixture, seeded: Any) -> None:
    await db.execute("UPDATE incidents SET is_test = true WHERE id = $1", seeded["incidents"][0])


async def _deleted(db: asyncpg.Connection, agency: AgencyFixture, seeded: Any) -> None:
    await db.execute("DELETE FROM incidents WHERE id = $1", seeded["incidents"][1])


async def _volunteer_deleted(db: asyncpg.Connection, agency: AgencyFixture, seeded: Any) -> None:
    await db.execute("DELETE FROM volunteers WHERE id = $1", seeded["volunteers"][0])


Change = Callable[[asyncpg.Connection, AgencyFixture, Any], Awaitable[None]]


@pytest.mark.parametrize(
    "change", [_late_report, _ems_recorded_late, _marked_test, _deleted, _volunteer_deleted]
)
async def test_a_change_to_an_old_month_is_never_hidden_by_the_kept_report(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture, change: Change
) -> None:
    seeded = await _history(db, agency)
    kept = await _report(client, agency)
    await change(db, agency, seeded)
    after = await _report(client, agency)
    assert _figures(after) != _figures(kept)
    assert _figures(after) == await _fresh(client, db, agency)


async def test_a_range_that_has_not_ended_is_computed_every_time(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    seeded = await _history(db, agency)
    until_now = {"from": FIRST.isoformat()}
    first = await _report(client, agency, until_now)
    assert await db.fetchval("SELECT count(*) FROM activations_cache") == 0
    # Received now: the change count does not move, and the report (never kept) has it.
    changes = "SELECT changes FROM report_changes WHERE agency_id = $1"
    before = await db.fetchval(changes, agency.agency_id)
    await seed(
        db,
        agency.agency_id,
        Seeded(datetime.now(UTC), responders=[Responder(seeded["volunteers"][0])]),
    )
    assert await db.fetchval(changes, agency.agency_id) == before
    second = await _report(client, agency, until_now)
    assert second["total"]["activations"] == first["total"]["activations"] + 1


async def test_a_kept_report_is_served_until_the_count_moves(
    client: Any, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """The comparisons above read the kept copy: marked here, it is what the route returns."""
    seeded = await _history(db, agency)
    computed = await _report(client, agency)
    await db.execute(
        """
        UPDATE activations_cache SET groups = (
            SELECT jsonb_agg(CASE WHEN g ->> 0 = 'total'
                                  THEN jsonb_set(g, '{2,activations}', '999') ELSE g END)
            FROM jsonb_array_elements(groups) g)
        """
    )
    assert (await _report(client, agency))["total"]["activations"] == 999
    await _ems_recorded_late(db, agency, seeded)
    after = await _report(client, agency)
    assert after["total"]["activations"] == computed["total"]["activations"]
    assert _figures(after) == await _fresh(client, db, agency)
