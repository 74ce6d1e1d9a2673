"""From per-run arrays to the numbers a planner reads: shares with intervals, times, burden.

Each share is computed per run (a run is one possible year of the same calls), then
reported as the mean over runs with a 95% confidence interval of that mean (normal
approximation, ``1.96 · sd / √runs``) and the range the middle 95% of runs fall in. Times
are pooled over runs. The JSON this module builds is the single source of every number
the terminal table and the HTML report show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from dispatch.simulate.population import AREA_RES
from dispatch.simulate.runner import RunArrays, Setup
from geoindex import cell_to_latlng, latlng_to_cell

SCHEMA: Final = "dispatch-simulate/1"
DAYS_PER_MONTH: Final = 365.25 / 12
PERCENTILES: Final = (10, 25, 50, 75, 90)


def interval(per_run: npt.NDArray[np.float64]) -> dict[str, Any]:
    """Mean over runs, its 95% CI, and the 2.5–97.5 percentile range of the runs."""
    values = per_run[~np.isnan(per_run)]
    if not len(values):
        return {"mean": None, "ci95": [None, None], "runs_95": [None, None], "runs": 0}
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    low, high = np.percentile(values, [2.5, 97.5])
    return {
        "mean": mean,
        "ci95": [mean - half, mean + half],
        "runs_95": [float(low), float(high)],
        "runs": len(values),
    }


def _share(hits: npt.NDArray[np.bool_], of: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    counts = of.sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, (hits & of).sum(axis=1) / counts, np.nan)


def _percentiles(values: npt.NDArray[Any]) -> dict[str, float | None]:
    values = values[~np.isnan(values)]
    if not len(values):
        return {f"p{p}": None for p in PERCENTILES}
    found = np.percentile(values, PERCENTILES)
    return {f"p{p}": float(v) for p, v in zip(PERCENTILES, found, strict=True)}


def summarise(setup: Setup, arrays: RunArrays, *, area_km2: float) -> dict[str, Any]:
    """Every outcome the report shows: over all incidents, per cell and per hour."""
    kept = arrays.kept
    first = arrays.first_s.astype(float)
    ems = arrays.ems_s.astype(float)
    aed = arrays.aed_s.astype(float)
    reached = ~np.isnan(first) & kept
    before = reached & (first < ems)
    aed_before = ~np.isnan(aed) & kept & (aed < ems)
    alerted = arrays.alerted.astype(float)
    accepted = arrays.accepted.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        acceptance = accepted.sum(axis=1) / alerted.sum(axis=1)
    span = _span_days(setup)
    months = span / DAYS_PER_MONTH if span > 0 else float("nan")
    burden = arrays.burden / months
    lead = np.where(before, ems - first, np.nan)
    outcomes = {
        "before_ems": interval(_share(before, kept)),
        "before_ems_of_reached": interval(_share(before, reached)),
        "reached": interval(_share(reached, kept)),
        "alerted_any": interval(_share(arrays.alerted > 0, kept)),
        "aed_before_ems": interval(_share(aed_before, kept)),
        "acceptance": interval(acceptance),
        "alerts_per_incident": interval(
            np.where(kept.sum(axis=1) > 0, (alerted * kept).sum(axis=1) / kept.sum(axis=1), np.nan)
        ),
        "lead_time_s": _percentiles(lead[before]),
        "first_on_scene_s": _percentiles(first[reached]),
        "ems_s": _percentiles(ems[kept]),
        "alerts_per_volunteer_per_month": interval(burden[:, 0]),
        "alerts_per_volunteer_per_month_spread": {
            name: float(np.nanmean(burden[:, i]))
            for i, name in enumerate(("mean", "p50", "p90", "p99", "max"))
        },
        "volunteers_alerted_share": interval(arrays.burden[:, 5]),
    }
    return {
        "schema": SCHEMA,
        "inputs": _inputs(setup, arrays, area_km2, span),
        "outcomes": outcomes,
        "by_cell": _by_cell(setup, arrays, months),
        "by_hour": _by_hour(setup, arrays),
    }


def _span_days(setup: Setup) -> float:
    times = [i.received_at for i in setup.incidents]
    return (max(times) - min(times)).total_seconds() / 86400


def _inputs(setup: Setup, arrays: RunArrays, area_km2: float, span: float) -> dict[str, Any]:
    volunteers = float(arrays.volunteers.mean())
    return {
        "incidents": len(setup.incidents),
        "span_days": span,
        "sample_share": setup.sample_share,
        "runs": setup.runs,
        "population_draws": min(setup.draws, setup.runs),
        "seed": setup.seed,
        "time_zone": setup.time_zone,
        "volunteers_mean": volunteers,
        "area_km2": area_km2,
        "density_per_km2": volunteers / area_km2 if area_km2 else None,
        "professional_share": setup.population.professional_share,
        "population": setup.population.description,
        "aeds": len(setup.aeds),
        "daily_budget": setup.daily_budget,
        "policy": setup.policy.to_json(),
        "behaviour": setup.behaviour.describe(),
    }


def incident_cells(setup: Setup) -> list[int]:
    return [latlng_to_cell(i.lat, i.lon, AREA_RES) for i in setup.incidents]


def _grouped(
    groups: npt.NDArray[np.int64], size: int, arrays: RunArrays, first: npt.NDArray[Any]
) -> list[dict[str, Any]]:
    """The outcomes of the incidents in each group (a cell, an hour), pooled over runs."""
    kept = arrays.kept
    ems = arrays.ems_s.astype(float)
    reached = ~np.isnan(first) & kept
    before = reached & (first < ems)
    aed = arrays.aed_s.astype(float)
    aed_before = ~np.isnan(aed) & kept & (aed < ems)

    def total(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        sums = values.sum(axis=0).astype(np.float64)
        return np.bincount(groups, weights=sums, minlength=size).astype(np.float64)

    n = total(kept)
    alerted, accepted = total(arrays.alerted * kept), total(arrays.accepted * kept)
    hits, aeds = total(before), total(aed_before)
    out = []
    for g in range(size):
        cols = groups == g
        times = first[:, cols][reached[:, cols]]
        out.append(
            {
                "incidents_per_run": float(n[g]) / len(kept),
                "before_ems": float(hits[g] / n[g]) if n[g] else None,
                "aed_before_ems": float(aeds[g] / n[g]) if n[g] else None,
                "alerts_per_incident": float(alerted[g] / n[g]) if n[g] else None,
                "acceptance": float(accepted[g] / alerted[g]) if alerted[g] else None,
                "first_on_scene_p50_s": float(np.median(times)) if len(times) else None,
            }
        )
    return out


def _by_cell(setup: Setup, arrays: RunArrays, months: float) -> list[dict[str, Any]]:
    """Per H3 res-7 cell: the incidents there, and the burden on the volunteers there."""
    cells = incident_cells(setup)
    people: dict[int, list[float]] = {}
    for per_run in arrays.by_cell:
        for cell, (alerts, volunteers) in per_run.items():
            entry = people.setdefault(cell, [0.0, 0.0])
            entry[0] += alerts
            entry[1] += volunteers
    order = sorted(set(cells) | set(people))
    index = {c: k for k, c in enumerate(order)}
    groups = np.array([index[c] for c in cells], dtype=np.int64)
    rows = _grouped(groups, len(order), arrays, arrays.first_s.astype(float))
    runs = len(arrays.runs)
    for cell, row in zip(order, rows, strict=True):
        lat, lon = cell_to_latlng(cell)
        alerts, volunteers = people.get(cell, (0.0, 0.0))
        row.update(
            cell=f"{cell:x}",
            lat=lat,
            lon=lon,
            volunteers=volunteers / runs,
            alerts_per_volunteer_per_month=(
                alerts / volunteers / months if volunteers and months == months else None
            ),
        )
    return rows


def _by_hour(setup: Setup, arrays: RunArrays) -> list[dict[str, Any]]:
    zone = ZoneInfo(setup.time_zone)
    hours = np.array([i.received_at.astimezone(zone).hour for i in setup.incidents])
    rows = _grouped(hours.astype(np.int64), 24, arrays, arrays.first_s.astype(float))
    return [{"hour": h, **row} for h, row in enumerate(rows)]


def curve_point(setup: Setup, arrays: RunArrays, area_km2: float) -> dict[str, Any]:
    """One point of the "volunteers needed" curve."""
    first = arrays.first_s.astype(float)
    before = ~np.isnan(first) & arrays.kept & (first < arrays.ems_s.astype(float))
    volunteers = float(arrays.volunteers.mean())
    return {
        "volunteers": volunteers,
        "density_per_km2": volunteers / area_km2 if area_km2 else None,
        "before_ems": interval(_share(before, arrays.kept)),
    }


def by_cell_values(summary: dict[str, Any]) -> Sequence[tuple[int, float]]:
    return [
        (int(c["cell"], 16), c["before_ems"])
        for c in summary["by_cell"]
        if c["before_ems"] is not None
    ]
