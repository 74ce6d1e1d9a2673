"""Monte Carlo: many runs of every incident, sharing what does not change between runs.

Work is split by population draw: a task draws one population, builds one geo index, and
finds each incident's nearest volunteers once (``Candidates``); every run of that draw
reuses them and differs only in what is drawn per run (who is available, who answers
how, how fast they walk, EMS where the data has no time), drawn for all incidents at once
with numpy. Each run has its own seed, so results do not depend on how runs are split
between worker processes.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from queue import Empty
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from dispatch.domain.aeds import Aed, distance_m, within
from dispatch.domain.alert_states import AlertEvent
from dispatch.domain.eligibility import Tier, VolunteerProfile
from dispatch.domain.intake import location_imprecise, start_block
from dispatch.domain.models import AgencyPolicy
from dispatch.domain.policy import AlertPolicy
from dispatch.simulate.engine import Candidates, Response, Scene, run_incident
from dispatch.simulate.incidents import SimIncident
from dispatch.simulate.model import Behaviour
from dispatch.simulate.population import AREA_RES, Population, Volunteers
from geoindex import VolunteerIndex, latlng_to_cell

F32 = npt.NDArray[np.float32]
_FAR_FUTURE: Final = datetime(2200, 1, 1, tzinfo=UTC)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DAY: Final = timedelta(hours=24)
_ANSWERS: Final = (AlertEvent.ACCEPT, AlertEvent.DECLINE, None)
_BURDEN_STATS: Final = ("mean", "p50", "p90", "p99", "max", "share_alerted")


@dataclass(frozen=True, slots=True)
class Setup:
    incidents: tuple[SimIncident, ...]
    population: Population
    behaviour: Behaviour
    policy: AlertPolicy
    aeds: tuple[Aed, ...] = ()
    time_zone: str = "UTC"
    runs: int = 100
    draws: int = 10
    seed: int = 1
    sample_share: float = 1.0
    daily_budget: int | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        if not self.incidents:
            raise ValueError("no incidents to simulate")
        if not 1 <= self.runs <= 100_000 or self.draws < 1:
            raise ValueError("runs must be 1..100000 and draws at least 1")
        if not 0 < self.sample_share <= 1:
            raise ValueError("the sample share must be in (0, 1]")


@dataclass(slots=True)
class RunArrays:
    """Per run (rows) and incident (columns); NaN where nothing arrived or not sampled."""

    runs: npt.NDArray[np.int64]
    kept: npt.NDArray[np.bool_]
    first_s: F32
    """Call to first volunteer on scene."""
    aed_s: F32
    """Call to first volunteer arriving with an AED."""
    ems_s: F32
    alerted: npt.NDArray[np.int16]
    accepted: npt.NDArray[np.int16]
    volunteers: npt.NDArray[np.int64]
    burden: npt.NDArray[np.float64]
    """Alerts per volunteer in the run: mean, p50, p90, p99, max, share alerted at least once."""
    by_cell: npt.NDArray[np.object_]
    """Per run, {res-7 cell: (alerts, volunteers)} of the volunteers standing in each cell."""

    @staticmethod
    def merge(parts: Sequence[RunArrays]) -> RunArrays:
        order = np.argsort(np.concatenate([p.runs for p in parts]), kind="stable")

        def cat(name: str) -> Any:
            return np.concatenate([getattr(p, name) for p in parts])[order]

        return RunArrays(*(cat(n) for n in RunArrays.__slots__))


class _Draws:
    """One run's behaviour for one incident, per alert slot."""

    __slots__ = ("answer", "answer_s", "b", "drop", "speed", "turnout")

    def __init__(self, b: Behaviour, rows: list[list[Any]]) -> None:
        self.b = b
        self.answer, self.answer_s, self.turnout, self.speed, self.drop = rows

    def __call__(self, slot: int, volunteer_id: int) -> Response:
        drop = self.drop[slot]
        return Response(
            _ANSWERS[self.answer[slot]],
            self.answer_s[slot],
            self.turnout[slot],
            self.speed[slot],
            drop if drop >= 0 else None,
            self.b.aed_pickup_s,
            self.b.route_factor,
        )


class _Availability:
    __slots__ = ("flags", "p", "rng")

    def __init__(self, p: float, rng: np.random.Generator) -> None:
        self.p, self.rng = p, rng
        self.flags: list[bool] = []

    def __call__(self, i: int) -> bool:
        flags: list[bool] = self.flags
        if i >= len(flags):
            flags.extend((self.rng.random(max(32, i + 1 - len(flags))) < self.p).tolist())
        return flags[i]


def _lognormal(rng: np.random.Generator, median: Any, sigma: float, shape: Any) -> Any:
    return np.exp(np.log(median) + sigma * rng.standard_normal(shape))


class _Task:
    """One population draw and the runs that use it."""

    def __init__(self, setup: Setup, draw: int) -> None:
        self.setup = setup
        policy = setup.policy
        self.zone = ZoneInfo(setup.time_zone)
        rng = np.random.default_rng([setup.seed, 7, draw])
        self.volunteers: Volunteers = setup.population.draw(rng)
        n = len(self.volunteers)
        self.index = VolunteerIndex()
        if n:
            self.index.bulk_load(
                range(n), self.volunteers.lat.tolist(), self.volunteers.lon.tolist(), [_EPOCH] * n
            )
        self.lat = self.volunteers.lat.tolist()
        self.lon = self.volunteers.lon.tolist()
        home = [latlng_to_cell(a, b, AREA_RES) for a, b in zip(self.lat, self.lon, strict=True)]
        self.cells = sorted(set(home))
        where = {c: i for i, c in enumerate(self.cells)}
        self.cell_of = np.array([where[c] for c in home], dtype=np.int64)
        self.profiles = [
            VolunteerProfile(
                v,
                tier=Tier.PROFESSIONAL if pro else Tier.LAY,
                certified_until=_FAR_FUTURE,
                daily_budget=setup.daily_budget,
            )
            for v, pro in enumerate(self.volunteers.professional.tolist())
        ]
        b = setup.behaviour
        share = max(min(b.availability), 0.05) * max(setup.population.professional_share, 0.05)
        self.limit = min(5000, max(32, math.ceil((policy.max_alerted + 8) / share)))
        self.radius = policy.waves[-1].radius_m
        self.scenes: list[Scene | None] = [None] * len(setup.incidents)
        self.aed_lists = _aeds_near(setup.incidents, setup.aeds, policy.aed_radius_m)
        self.blocked = [_blocked(i, setup.behaviour) for i in setup.incidents]
        # Call to alerting, in seconds as the runs count it (the scene's start less the call).
        self.delays = [
            (i.received_at + timedelta(seconds=alert_delay_s(i, b)) - i.received_at).total_seconds()
            for i in setup.incidents
        ]
        self.distance = functools.lru_cache(maxsize=1 << 16)(distance_m)

    def position_of(self, vid: int) -> tuple[float, float] | None:
        return (self.lat[vid], self.lon[vid]) if 0 <= vid < len(self.lat) else None

    def scene(self, i: int) -> Scene:
        scene = self.scenes[i]
        if scene is None:
            inc = self.setup.incidents[i]
            delay = alert_delay_s(inc, self.setup.behaviour)

            def more(limit: int, lat: float = inc.lat, lon: float = inc.lon) -> Any:
                if not len(self.index):
                    return []
                return self.index.nearest(lat, lon, radius_m=self.radius, limit=limit)

            hits = more(self.limit)
            scene = self.scenes[i] = Scene(
                policy=self.setup.policy,
                started_at=inc.received_at + timedelta(seconds=delay),
                lat=inc.lat,
                lon=inc.lon,
                place_type=inc.place_type,
                is_test=inc.is_test,
                candidates=Candidates(hits, len(hits) < self.limit, more),
                position_of=self.position_of,
                aeds=self.aed_lists[i],
                zone=self.zone,
                distance=self.distance,
            )
        return scene

    def run(self, run: int) -> RunArrays:
        setup, b = self.setup, self.setup.behaviour
        incidents = setup.incidents
        n, slots = len(incidents), setup.policy.max_alerted
        rng = np.random.default_rng([setup.seed, 11, run])
        hours = np.array([i.received_at.astimezone(self.zone).hour for i in incidents])
        kept = rng.random(n) < setup.sample_share
        ems_known = np.array([np.nan if i.ems_s is None else i.ems_s for i in incidents])
        ems = np.where(
            np.isnan(ems_known), _lognormal(rng, b.ems_median_s, b.ems_sigma, n), ems_known
        )
        accept = np.array([b.acceptance(int(h)) for h in hours])[:, None]
        u = rng.random((n, slots))
        answer = np.where(u < accept, 0, np.where(u < 1 - b.unseen, 1, 2))
        answer_s = _lognormal(rng, b.answer_median_s, b.answer_sigma, (n, slots))
        turnout_med = np.array([b.turnout_median_s(int(h)) for h in hours])[:, None]
        turnout = _lognormal(rng, turnout_med, b.turnout_sigma, (n, slots))
        speed = _lognormal(rng, b.speed_median_mps, b.speed_sigma, (n, slots))
        drop = np.where(rng.random((n, slots)) < b.dropout, rng.random((n, slots)), -1.0)
        availability = [b.availability[int(h)] for h in hours]
        ems_list = ems.tolist()
        # Rows as Python lists in one go: per incident they would cost more than its replay.
        rows = [m.tolist() for m in (answer, answer_s, turnout, speed, drop)]

        first = np.full(n, np.nan, dtype=np.float32)
        aed = np.full(n, np.nan, dtype=np.float32)
        alerted = np.zeros(n, dtype=np.int16)
        accepted = np.zeros(n, dtype=np.int16)
        alerted_ids: list[int] = []
        busy_until: dict[int, datetime] = {}
        recent: dict[int, list[datetime]] = {}
        profiles_for = self._profiles(busy_until, recent)
        for i in np.flatnonzero(kept).tolist():
            if self.blocked[i]:
                continue  # the service would not start alerting for it at all
            scene = self.scene(i)
            if not scene.candidates.hits:
                continue
            delay = self.delays[i]
            p = availability[i]
            ems_i = ems_list[i]
            out = run_incident(
                scene,
                _Draws(b, [row[i] for row in rows]),
                profiles_for,
                available=None if p >= 1.0 else _Availability(p, rng),
                ems_s=ems_i - delay,
            )
            alerted[i] = len(out.alerts)
            accepted[i] = out.accepted
            if out.first_on_scene_s is not None:
                first[i] = delay + out.first_on_scene_s
            if out.first_aed_s is not None:
                aed[i] = delay + out.first_aed_s
            ems_end = max(ems_i - delay, 0.0) + b.busy_after_ems_s
            for vid, accepted_s in out.busy:
                busy_until[vid] = scene.started_at + timedelta(seconds=max(ems_end, accepted_s))
            for alert in out.alerts:
                alerted_ids.append(alert.volunteer_id)
                if setup.daily_budget is not None:
                    recent.setdefault(alert.volunteer_id, []).append(alert.created_at)
        counts = np.bincount(
            np.array(alerted_ids, dtype=np.int64), minlength=len(self.volunteers)
        ).astype(np.int64)
        ems32 = np.where(kept, ems, np.nan).astype(np.float32)
        return RunArrays(
            np.array([run]),
            kept[None],
            first[None],
            aed[None],
            ems32[None],
            alerted[None],
            accepted[None],
            np.array([len(self.volunteers)]),
            _burden(counts)[None],
            _objects([self._by_cell(counts)]),
        )

    def _by_cell(self, counts: npt.NDArray[np.int64]) -> dict[int, tuple[float, int]]:
        if not len(counts):
            return {}
        alerts = np.bincount(self.cell_of, weights=counts, minlength=len(self.cells))
        people = np.bincount(self.cell_of, minlength=len(self.cells))
        return {
            c: (float(a), int(v))
            for c, a, v in zip(self.cells, alerts.tolist(), people.tolist(), strict=True)
        }

    def _profiles(
        self, busy_until: dict[int, datetime], recent: dict[int, list[datetime]]
    ) -> Callable[[datetime], Callable[[int], VolunteerProfile | None]]:
        base = self.profiles
        budget = self.setup.daily_budget

        def at(now: datetime) -> Callable[[int], VolunteerProfile | None]:
            def profile(vid: int) -> VolunteerProfile | None:
                p = base[vid]
                until = busy_until.get(vid)
                if until is not None and until > now:
                    p = VolunteerProfile(vid, p.tier, certified_until=_FAR_FUTURE, busy=True)
                if budget is not None and vid in recent:
                    today = sum(t > now - _DAY for t in recent[vid])
                    p = VolunteerProfile(
                        vid,
                        p.tier,
                        certified_until=_FAR_FUTURE,
                        daily_budget=budget,
                        alerts_today=today,
                        busy=p.busy,
                    )
                return p

            return profile

        return at


_AGENCY: Final = AgencyPolicy(agency_id=UUID(int=0))
"""The shipped agency settings: how old, how future-dated, how vaguely located a call may be."""


def alert_delay_s(incident: SimIncident, behaviour: Behaviour) -> float:
    delay = incident.alert_delay_s
    return behaviour.alert_delay_s if delay is None else max(0.0, delay)


def blocked_count(setup: Setup) -> int:
    return sum(_blocked(i, setup.behaviour) for i in setup.incidents)


def _blocked(incident: SimIncident, behaviour: Behaviour) -> bool:
    """Whether the service would refuse to start alerting when this call reaches it."""
    return (
        start_block(
            incident.received_at,
            incident.received_at + timedelta(seconds=alert_delay_s(incident, behaviour)),
            imprecise=location_imprecise(
                incident.uncertainty_m, _AGENCY.max_location_uncertainty_m
            ),
            max_age_s=_AGENCY.max_incident_age_s,
            max_skew_s=_AGENCY.max_clock_skew_s,
        )
        is not None
    )


def _objects(items: list[Any]) -> npt.NDArray[np.object_]:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _burden(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    if not len(counts):
        return np.zeros(len(_BURDEN_STATS))
    p50, p90, p99 = np.percentile(counts, [50, 90, 99])
    return np.array([counts.mean(), p50, p90, p99, counts.max(), (counts > 0).mean()])


def _aeds_near(
    incidents: Sequence[SimIncident], aeds: Sequence[Aed], radius: float
) -> list[list[Aed]]:
    """Each incident's AEDs within the radius, in id order (a box in numpy, exact in the domain)."""
    if not aeds:
        return [[] for _ in incidents]
    ordered = sorted(aeds, key=lambda a: a.aed_id)
    lat = np.array([a.lat for a in ordered])
    lon = np.array([a.lon for a in ordered])
    dlat = radius / 111_000 * 1.01
    out = []
    for inc in incidents:
        dlon = dlat / max(math.cos(math.radians(inc.lat)), 0.01)
        box = np.flatnonzero((np.abs(lat - inc.lat) <= dlat) & (np.abs(lon - inc.lon) <= dlon))
        out.append(within((ordered[j] for j in box.tolist()), inc.lat, inc.lon, radius))
    return out


# Worker side: progress goes back through a queue handed over at start.
_progress_queue: Any = None


def _init_worker(queue: Any) -> None:
    global _progress_queue
    _progress_queue = queue


def _run_task(setup: Setup, draw: int, runs: Sequence[int]) -> RunArrays:
    task = _Task(setup, draw)
    parts = []
    for run in runs:
        parts.append(task.run(run))
        if _progress_queue is not None:
            _progress_queue.put(1)
    return RunArrays.merge(parts)


def plan_tasks(setup: Setup) -> list[tuple[int, list[int]]]:
    """(draw, runs) pairs: run r uses draw r mod draws; a draw's runs split to keep workers busy."""
    draws = min(setup.draws, setup.runs)
    by_draw = [list(range(d, setup.runs, draws)) for d in range(draws)]
    chunks = max(1, math.ceil(2 * setup.workers / draws)) if setup.workers > 1 else 1
    tasks: list[tuple[int, list[int]]] = []
    for d, runs in enumerate(by_draw):
        size = max(1, math.ceil(len(runs) / chunks))
        tasks.extend((d, runs[i : i + size]) for i in range(0, len(runs), size))
    return tasks


def simulate_runs(setup: Setup, progress: Callable[[int], None] | None = None) -> RunArrays:
    """Every run of every incident; ``progress`` is called with the number of runs done."""
    tasks = plan_tasks(setup)
    if setup.workers <= 1:
        parts = []
        done = 0
        for draw, runs in tasks:
            task = _Task(setup, draw)
            for run in runs:
                parts.append(task.run(run))
                done += 1
                if progress:
                    progress(done)
        return RunArrays.merge(parts)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    with ProcessPoolExecutor(
        max_workers=min(setup.workers, len(tasks)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(queue,),
    ) as pool:
        futures = [pool.submit(_run_task, setup, d, runs) for d, runs in tasks]
        done = 0
        while done < setup.runs:
            try:
                queue.get(timeout=0.5)
            except Empty:
                for future in futures:
                    if future.done() and future.exception() is not None:
                        future.result()  # a worker failed: raise its error here
                continue
            done += 1
            if progress:
                progress(done)
        results = [f.result() for f in futures]
    return RunArrays.merge(results)


def default_workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))
