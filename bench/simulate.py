"""One simulated city-year through ``dispatch simulate``'s engine: is it fast enough to plan with?

A synthetic metro (Stockholm's coordinates, 40 × 40 km): 10,000 incidents over a year,
70% around the centre (σ 6 km) and 30% spread over the box, each with an EMS time
(log-normal, median 8:11); 5,000 volunteers by density per H3 res-7 cell in proportion to
the incidents there; 2,000 AEDs placed like the incidents; the default alert policy and
behaviour model; 100 Monte Carlo runs over 10 population draws. Target: under
a minute on the 2-core development machine.

The machine is shared, so the script first times a fixed piece of the same work — the wave
planner deciding one 10-alert incident, 20,000 times — and states the result both in
seconds and as a multiple of that calibration measured in the same run. Not a test:
numbers only.

    python bench/simulate.py [--incidents 10000] [--volunteers 5000] [--runs 100]
        [--workers 2] [--draws 10] [--uniform] [--digest]

``--digest`` prints a SHA-256 of every output array, so that a change meant to be exact can
be checked to give the same results to the last digit.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import print_calibration
from dispatch.domain.aeds import Aed
from dispatch.domain.alert_states import AlertState
from dispatch.domain.policy import AlertPolicy
from dispatch.domain.waves import AlertView, plan
from dispatch.simulate.incidents import SimIncident
from dispatch.simulate.model import Behaviour
from dispatch.simulate.population import AREA_RES, Area, Population, cell_ring
from dispatch.simulate.results import summarise
from dispatch.simulate.runner import RunArrays, Setup, simulate_runs
from geoindex import latlng_to_cell

CENTRE = (59.33, 18.06)
KM_LAT = 1 / 111.2


def _points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    km_lon = KM_LAT / np.cos(np.radians(CENTRE[0]))
    central = rng.random(n) < 0.7
    lat = (
        np.where(central, rng.normal(0, 6, n) * KM_LAT, rng.uniform(-20, 20, n) * KM_LAT)
        + CENTRE[0]
    )
    lon = (
        np.where(central, rng.normal(0, 6, n) * km_lon, rng.uniform(-20, 20, n) * km_lon)
        + CENTRE[1]
    )
    return lat, lon


def city(
    n_incidents: int, n_volunteers: int, n_aeds: int, *, like_incidents: bool = True
) -> tuple[list[SimIncident], Population, list[Aed]]:
    rng = np.random.default_rng(2024)
    lat, lon = _points(rng, n_incidents)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    seconds = np.sort(rng.uniform(0, 365 * 86400, n_incidents))
    ems = np.exp(np.log(491) + 0.35 * rng.standard_normal(n_incidents))
    incidents = [
        SimIncident(
            f"b{i}",
            start + timedelta(seconds=float(seconds[i])),
            float(lat[i]),
            float(lon[i]),
            "bench",
            ems_s=float(ems[i]),
        )
        for i in range(n_incidents)
    ]
    cells: dict[int, int] = {}
    for a, b in zip(lat.tolist(), lon.tolist(), strict=True):
        cell = latlng_to_cell(a, b, AREA_RES)
        cells[cell] = cells.get(cell, 0) + 1
    areas = [Area(cell_ring(c), 0.0) for c in cells]
    weights = np.array(list(cells.values()), dtype=float)
    if not like_incidents:  # the tool's default: one density over the incidents' cells
        weights = np.ones(len(cells))
    km2 = np.array([a.km2 for a in areas])
    per_km2 = weights / weights.sum() * n_volunteers / km2
    population = Population(
        areas=tuple(Area(a.ring, float(d)) for a, d in zip(areas, per_km2, strict=True)),
        description=f"{n_volunteers:,} volunteers by res-7 cell, "
        + ("in proportion to incidents" if like_incidents else "one density over every cell"),
    )
    alat, alon = _points(rng, n_aeds)
    aeds = [
        Aed(i + 1, f"aed{i}", float(a), float(b))
        for i, (a, b) in enumerate(zip(alat, alon, strict=True))
    ]
    return incidents, population, aeds


def calibration(repeat: int = 20_000) -> float:
    """µs per wave-planner decision on a fixed 10-alert incident (best of three)."""
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    states = [AlertState.QUEUED, AlertState.DECLINED, AlertState.ACCEPTED, AlertState.TIMED_OUT]
    alerts = [
        AlertView(UUID(int=i + 1), i, states[i % 4], t0 + timedelta(seconds=3 * i), 0)
        for i in range(10)
    ]
    policy = AlertPolicy()
    now = t0 + timedelta(seconds=45)
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(repeat):
            plan(policy, alerts, started_at=t0, now=now, open_=True)
        best = min(best, time.perf_counter() - began)
    return best / repeat * 1e6


def digest(arrays: RunArrays) -> str:
    """SHA-256 of every output array (the per-cell dicts in sorted order)."""
    h = hashlib.sha256()
    for name in RunArrays.__slots__:
        value = getattr(arrays, name)
        h.update(name.encode())
        if value.dtype == object:
            h.update(repr([sorted(cells.items()) for cells in value]).encode())
        else:
            h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--volunteers", type=int, default=5_000)
    parser.add_argument("--aeds", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument(
        "--uniform",
        action="store_true",
        help="one density over the incidents' cells (the tool's default) instead of "
        "volunteers placed like the incidents",
    )
    parser.add_argument(
        "--digest", action="store_true", help="print a SHA-256 of every output array"
    )
    args = parser.parse_args()
    print_calibration()

    incidents, population, aeds = city(
        args.incidents, args.volunteers, args.aeds, like_incidents=not args.uniform
    )
    setup = Setup(
        tuple(incidents),
        population,
        Behaviour(),
        AlertPolicy(),
        tuple(aeds),
        time_zone="Europe/Stockholm",
        runs=args.runs,
        draws=args.draws,
        seed=1,
        workers=args.workers,
    )
    plan_us = calibration()
    print(
        f"baseline: one wave-planner decision (10 alerts) = {plan_us:.2f} µs "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    began = time.perf_counter()
    cpu0 = time.process_time()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    arrays = simulate_runs(setup)
    wall = time.perf_counter() - began
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    parent_cpu = time.process_time() - cpu0
    worker_cpu = (children1.ru_utime - children0.ru_utime) + (
        children1.ru_stime - children0.ru_stime
    )
    cpu = worker_cpu + parent_cpu if args.workers > 1 else parent_cpu
    summary = summarise(setup, arrays, area_km2=sum(a.km2 for a in population.areas))
    incident_runs = int(arrays.kept.sum())
    per = cpu / incident_runs * 1e6
    print(
        f"city-year: {args.incidents:,} incidents × {args.runs} runs = {incident_runs:,} "
        f"incident-runs, {int(arrays.volunteers.mean()):,} volunteers (mean of draws), "
        f"{len(aeds):,} AEDs, {args.workers} worker(s), "
        f"{summary['outcomes']['alerts_per_incident']['mean']:.1f} alerts per incident"
    )
    print(
        f"wall {wall:.1f} s = {wall / 60:.2f} × the one-minute target; CPU {cpu:.1f} s "
        f"(workers {worker_cpu:.1f} s, parent {parent_cpu:.1f} s): {per:.0f} µs per "
        f"incident-run = {per / plan_us:.1f} planner decisions; on {args.workers} idle cores "
        f"≈ {cpu / args.workers / 60:.2f} × the target"
    )
    headline = summary["outcomes"]["before_ems"]
    print(
        f"result: ≥1 volunteer before EMS in {headline['mean']:.1%} of incidents "
        f"(95% CI {headline['ci95'][0]:.1%}–{headline['ci95'][1]:.1%}); "
        f"alerts per incident {summary['outcomes']['alerts_per_incident']['mean']:.1f}"
    )
    if args.digest:
        print(f"digest of every output array: {digest(arrays)}")


if __name__ == "__main__":
    main()
