"""The simulator and the service alert the same volunteers, in the same wave and role.

Random incidents, volunteers (positions, tiers), AEDs, policies and volunteer behaviour
are replayed twice: through ``dispatch.simulate.engine`` with its simulated clock, and
through the real intake path against PostgreSQL (``dispatch.service.ingest``), the
volunteers' answers (``dispatch.service.responses``) and the deadline ticker, each at the
moment the simulator acted. After every step the alerts must be equal: who, which wave,
which state, which role and AED. The service's own extra deadlines (its periodic re-look
for volunteers who moved, which the simulator skips once it has found nobody new) must
change nothing.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cad_adapters.generic import parse_generic
from cad_adapters.models import PlaceType
from dispatch.config import Settings
from dispatch.db.pool import open_pool
from dispatch.domain.aed_import import AedRecord
from dispatch.domain.aeds import Aed, distance_m, within
from dispatch.domain.alert_states import AlertEvent, IllegalTransition
from dispatch.domain.eligibility import Tier, VolunteerProfile
from dispatch.domain.policy import AlertPolicy, Wave
from dispatch.service.ingest import ingest_incident
from dispatch.service.positions import PositionCache
from dispatch.service.responses import respond
from dispatch.simulate.engine import Candidates, Outcome, Response, Scene, Step, run_incident
from dispatch.store import aeds as aed_store
from dispatch.store import agencies as agency_store
from dispatch.store import volunteers as volunteer_store
from dispatch.store.volunteers import PositionRow
from dispatch.workers.ticker import DeadlineTicker
from geoindex import VolunteerIndex
from tests.dispatch import pg
from tests.dispatch.helpers import CENTRE, offset

T0 = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)
EVENTS = {"accept": AlertEvent.ACCEPT, "decline": AlertEvent.DECLINE, "cancel": AlertEvent.CANCEL}


@dataclass(frozen=True)
class Volunteer:
    north: float
    east: float
    professional: bool
    response: Response


@dataclass(frozen=True)
class Case:
    volunteers: list[Volunteer]
    aeds: list[tuple[float, float, bool]]
    """(north, east, open only 08:00-18:00 on weekdays)"""
    place: PlaceType
    policy: AlertPolicy
    ems_s: float | None


@st.composite
def responses(draw: Any) -> Response:
    return Response(
        answer=draw(st.sampled_from([AlertEvent.ACCEPT, AlertEvent.DECLINE, None])),
        answer_s=draw(st.floats(0.5, 200)),
        turnout_s=draw(st.floats(0.5, 200)),
        speed_mps=draw(st.floats(0.8, 4.0)),
        drop_at=draw(st.none() | st.floats(0.05, 0.95)),
        aed_pickup_s=30.0,
    )


@st.composite
def policies(draw: Any) -> AlertPolicy:
    r0 = draw(st.floats(150, 900))
    live0 = draw(st.integers(1, 5))
    waves = [Wave(0, r0, live0)]
    if draw(st.booleans()):
        waves.append(
            Wave(draw(st.floats(20, 150)), draw(st.floats(r0, 1600)), draw(st.integers(live0, 9)))
        )
    top = max(w.live for w in waves)
    return AlertPolicy(
        waves=tuple(waves),
        target_accepted=draw(st.integers(1, 4)),
        max_alerted=draw(st.integers(top, 14)),
        stop_after_s=draw(st.floats(60, 600)),
        not_coming_after_s=draw(st.floats(20, 120)),
        replace_declined=draw(st.booleans()),
        lay_unknown_place=draw(st.booleans()),
        stand_down_on_ems_on_scene=draw(st.booleans()),
        aed_radius_m=draw(st.floats(200, 800)),
        aed_max_detour_m=draw(st.floats(50, 600)),
    )


@st.composite
def cases(draw: Any) -> Case:
    n = draw(st.integers(1, 16))
    volunteers = [
        Volunteer(
            draw(st.floats(-1500, 1500)),
            draw(st.floats(-1500, 1500)),
            draw(st.booleans()),
            draw(responses()),
        )
        for _ in range(n)
    ]
    # Two volunteers exactly as far from the patient are told apart by alert id, which the
    # service draws at random: no deterministic replay can match that, so ties are avoided.
    far = sorted(math.hypot(v.north, v.east) for v in volunteers)
    assume(all(b - a > 1e-3 for a, b in itertools.pairwise(far)))
    aeds = draw(
        st.lists(st.tuples(st.floats(-700, 700), st.floats(-700, 700), st.booleans()), max_size=4)
    )
    return Case(
        volunteers,
        aeds,
        draw(st.sampled_from(list(PlaceType))),
        draw(policies()),
        draw(st.none() | st.floats(20, 500)),
    )


def simulate(case: Case, ids: list[int], aed_ids: list[int], *, trace: bool = True) -> Outcome:
    where = [offset(*CENTRE, v.north, v.east) for v in case.volunteers]
    index = VolunteerIndex()
    index.bulk_load(ids, [w[0] for w in where], [w[1] for w in where], [T0] * len(ids))
    position = dict(zip(ids, where, strict=True))
    profiles = {
        vid: VolunteerProfile(
            vid,
            tier=Tier.PROFESSIONAL if v.professional else Tier.LAY,
            certified_until=T0 + timedelta(days=730),
        )
        for vid, v in zip(ids, case.volunteers, strict=True)
    }
    by_id = {vid: v.response for vid, v in zip(ids, case.volunteers, strict=True)}

    def more(limit: int) -> Any:
        return index.nearest(*CENTRE, radius_m=case.policy.waves[-1].radius_m, limit=limit)

    aeds = [
        Aed(aid, f"aed{aid}", *offset(*CENTRE, north, east), _hours(office))
        for aid, (north, east, office) in zip(aed_ids, case.aeds, strict=True)
    ]
    hits = more(3)  # small, so that runs also exercise extending the candidate list
    scene = Scene(
        policy=case.policy,
        started_at=T0,
        lat=CENTRE[0],
        lon=CENTRE[1],
        place_type=case.place,
        is_test=False,
        candidates=Candidates(hits, len(hits) < 3, more),
        position_of=position.get,
        aeds=sorted(
            within(aeds, *CENTRE, case.policy.aed_radius_m),
            key=lambda a: a.aed_id,
        ),
        distance=functools.lru_cache(maxsize=None)(distance_m),
    )
    return run_incident(
        scene,
        lambda slot, vid: by_id[vid],
        lambda now: profiles.get,
        ems_s=case.ems_s,
        trace=trace,
    )


def _hours(office: bool) -> dict[str, list[tuple[Any, Any]]] | None:
    if not office:
        return None
    from datetime import time

    return {d: [(time(8), time(18))] for d in ("mon", "tue", "wed", "thu", "fri")}


class _Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


async def _alerts(conn: Any, incident_id: UUID) -> tuple[tuple[Any, ...], ...]:
    rows = await conn.fetch(
        "SELECT volunteer_id, wave, state, role, aed_id FROM alerts WHERE incident_id = $1",
        incident_id,
    )
    return tuple(sorted(tuple(r.values()) for r in rows))


async def _replay(dsn: str, case: Case) -> None:
    settings_ = Settings(database_url=dsn)
    async with open_pool(dsn, settings_, min_size=1, max_size=3) as pool:
        async with pool.acquire() as conn:
            # Examples share the database: nothing another example left behind may come due.
            await conn.execute("UPDATE incidents SET next_check_at = NULL")
            agency_id, _ = await agency_store.create_agency(conn, name="Parity")
            await agency_store.store_alert_policy(conn, agency_id, case.policy)
            ids = [
                (
                    await volunteer_store.create_volunteer(
                        conn,
                        agency_id=agency_id,
                        display_name="v",
                        settings={"tier": "professional" if v.professional else "lay"},
                        now=T0,
                    )
                )[0]
                for v in case.volunteers
            ]
            records = [
                AedRecord(
                    f"x{i}",
                    f"aed{i}",
                    *offset(*CENTRE, north, east),
                    access_hours={
                        d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
                    }
                    if office
                    else None,
                )
                for i, (north, east, office) in enumerate(case.aeds)
            ]
            await aed_store.import_records(conn, agency_id, records, T0)
            aed_ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM aeds WHERE agency_id = $1 ORDER BY external_id", agency_id
                )
            ]
            agency = await agency_store.policy(conn, agency_id)
            assert agency is not None
        outcome = simulate(case, ids, aed_ids)
        positions = PositionCache()
        for vid, v in zip(ids, case.volunteers, strict=True):
            lat, lon = offset(*CENTRE, v.north, v.east)
            positions.upsert(PositionRow(vid, agency_id, lat, lon, None, T0))
        doc = {
            "incident_id": "parity-1",
            "call_type": {"code": "09-E-01"},
            "is_cardiac_arrest": True,
            "received_at": T0.isoformat(),
            "location": {"lat": CENTRE[0], "lon": CENTRE[1]},
            "place_type": case.place.value,
        }
        result = await ingest_incident(pool, positions, agency, parse_generic(doc), now=T0)
        clock = _Clock()
        ticker = DeadlineTicker(pool, positions, clock, lambda: None, tick_s=1)
        async with pool.acquire() as conn:
            steps = outcome.steps
            assert steps[0].kind == "start"
            assert await _alerts(conn, result.incident_id) == steps[0].after
            for step in steps[1:]:
                await _relooks_change_nothing(conn, ticker, clock, result.incident_id, step.at)
                await _act(
                    pool, conn, positions, agency, ticker, clock, result.incident_id, step, doc
                )
                assert await _alerts(conn, result.incident_id) == step.after, step
            await _relooks_change_nothing(conn, ticker, clock, result.incident_id, None)


async def _relooks_change_nothing(
    conn: Any, ticker: DeadlineTicker, clock: _Clock, incident_id: UUID, until: datetime | None
) -> None:
    for _ in range(100):
        due = await conn.fetchval("SELECT next_check_at FROM incidents WHERE id = $1", incident_id)
        if due is None or (until is not None and due >= until):
            return
        before = await _alerts(conn, incident_id)
        clock.at = due
        await ticker.run_once()
        assert await _alerts(conn, incident_id) == before, f"a re-look at {due} changed alerts"
    raise AssertionError("the service kept re-looking")


async def _act(
    pool: Any,
    conn: Any,
    positions: PositionCache,
    agency: Any,
    ticker: DeadlineTicker,
    clock: _Clock,
    incident_id: UUID,
    step: Step,
    doc: dict[str, Any],
) -> None:
    clock.at = step.at
    if step.kind == "deadline":
        # The simulator may look in where the service's own re-look already settled that
        # nothing is due; either way the alerts after it must be the same.
        assert await ticker.run_once() <= 1
        return
    if step.kind == "ems":
        update = {
            **doc,
            "version": 2,
            "units": [{"unit_id": "M1", "status": "on_scene", "at": step.at.isoformat()}],
        }
        await ingest_incident(pool, positions, agency, parse_generic(update), now=step.at)
        return
    alert_id = await conn.fetchval(
        "SELECT id FROM alerts WHERE incident_id = $1 AND volunteer_id = $2",
        incident_id,
        step.volunteer_id,
    )
    assert step.volunteer_id is not None
    kind = step.kind
    event = EVENTS[step.tried if kind in ("refused", "unchanged") and step.tried else kind]
    call = respond(
        pool,
        alert_id=alert_id,
        volunteer_id=step.volunteer_id,
        event=event,
        now=step.at,
        positions=positions,
    )
    if kind == "refused":
        with pytest.raises(IllegalTransition):
            await call
    else:
        answer = await call
        assert answer.changed is (kind != "unchanged")


@pytest.fixture(scope="module")
def parity_dsn(admin_dsn: str, template_name: str) -> Iterator[str]:
    """One database for every example: each example is its own agency."""
    name = asyncio.run(pg.create_test_database(admin_dsn, template_name))
    try:
        yield pg.with_database(admin_dsn, name)
    finally:
        asyncio.run(pg.drop_test_database(admin_dsn, name))


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=cases())
def test_simulator_and_service_decide_alike(parity_dsn: str, case: Case) -> None:
    asyncio.run(_replay(parity_dsn, case))


def test_the_parity_check_sees_a_difference() -> None:
    """Guard: a changed policy changes what the simulator decides, so equal traces mean
    something."""
    case = Case(
        [Volunteer(n * 60.0, 0, True, Response(AlertEvent.DECLINE, 5, 60, 2)) for n in range(6)],
        [],
        PlaceType.PUBLIC,
        AlertPolicy(waves=(Wave(0, 1000, 2),), max_alerted=6),
        None,
    )
    wider = Case(
        **{**case.__dict__, "policy": AlertPolicy(waves=(Wave(0, 1000, 3),), max_alerted=6)}
    )
    ids = list(range(1, 7))
    first = simulate(case, ids, [])
    second = simulate(wider, ids, [])
    assert first.steps[0].after != second.steps[0].after


def _same_outcome(case: Case) -> None:
    """Traced runs (checked against the service above) act at every moment the service does;
    Monte Carlo runs skip what changes nothing. Alerts, arrivals, AEDs brought, who accepted
    and their roles must agree."""
    ids = list(range(1, len(case.volunteers) + 1))
    aed_ids = list(range(1, len(case.aeds) + 1))
    eager = simulate(case, ids, aed_ids)
    lazy = simulate(case, ids, aed_ids, trace=False)
    assert lazy.alerts == eager.alerts
    assert (lazy.first_on_scene_s, lazy.first_aed_s) == (eager.first_on_scene_s, eager.first_aed_s)
    assert (lazy.accepted, lazy.busy) == (eager.accepted, eager.busy)
    accepted = [
        k
        for k, a in enumerate(eager.alerts)
        if a.state.value in ("accepted", "cancelled", "released")
    ]
    assert [lazy.roles[k] for k in accepted] == [eager.roles[k] for k in accepted]


@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_putting_off_role_plans_while_nobody_responds_changes_no_outcome(case: Case) -> None:
    """Role re-plans nobody reads yet are put off in Monte Carlo runs."""
    _same_outcome(case)


@settings(max_examples=300, deadline=None)
@given(case=cases(), silent=st.lists(st.booleans(), min_size=16, max_size=16))
def test_skipping_relooks_that_find_nothing_changes_no_outcome(
    case: Case, silent: list[bool]
) -> None:
    """Monte Carlo runs do not come back for the re-look after new alerts when it can find
    nothing new (nobody left out for a reason that passes): they go straight to the next
    deadline, the new alerts' own included. Silent volunteers make those deadlines matter
    (each time-out is replaced); AEDs always open keep the shortcut on."""
    quiet = replace(
        case,
        volunteers=[
            replace(v, response=v.response._replace(answer=None)) if mute else v
            for v, mute in zip(case.volunteers, silent, strict=False)
        ],
        aeds=[(north, east, False) for north, east, _ in case.aeds],
    )
    _same_outcome(quiet)
