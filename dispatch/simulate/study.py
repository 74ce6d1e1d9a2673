"""The library entry point: a study (what to simulate) in, the summary dictionary out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from dispatch.domain.aeds import Aed
from dispatch.domain.policy import AlertPolicy
from dispatch.simulate.incidents import IncidentSet
from dispatch.simulate.model import Behaviour
from dispatch.simulate.population import Population
from dispatch.simulate.results import curve_point, summarise
from dispatch.simulate.runner import Setup, blocked_count, simulate_runs

DENSITY_FACTORS: Final = (0.25, 0.5, 1.0, 2.0, 4.0)
POSITION_FACTORS: Final = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True, slots=True)
class Study:
    incidents: IncidentSet
    population: Population
    area_km2: float
    """The area the population stands in (for densities)."""
    behaviour: Behaviour = field(default_factory=Behaviour)
    policy: AlertPolicy = field(default_factory=AlertPolicy)
    aeds: tuple[Aed, ...] = ()
    time_zone: str = "UTC"
    runs: int = 100
    draws: int = 10
    seed: int = 1
    sample_share: float = 1.0
    daily_budget: int | None = None
    workers: int = 1
    curve: bool = True
    curve_runs: int = 20

    def setup(self, population: Population | None = None, runs: int | None = None) -> Setup:
        return Setup(
            tuple(self.incidents.incidents),
            population or self.population,
            self.behaviour,
            self.policy,
            self.aeds,
            time_zone=self.time_zone,
            runs=runs or self.runs,
            draws=min(self.draws, runs or self.runs),
            seed=self.seed,
            sample_share=self.sample_share,
            daily_budget=self.daily_budget,
            workers=self.workers,
        )

    def curve_factors(self) -> Sequence[float]:
        return POSITION_FACTORS if self.population.positions is not None else DENSITY_FACTORS


def run_study(study: Study, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Simulate, summarise, and (unless ``study.curve`` is off) trace the density curve.

    ``progress(done, total)`` counts runs, the curve's included.
    """
    factors = [f for f in study.curve_factors() if f != 1.0] if study.curve else []
    total = study.runs + len(factors) * study.curve_runs
    done = 0

    def tick(offset: int) -> Callable[[int], None] | None:
        if progress is None:
            return None
        return lambda n: progress(offset + n, total)

    setup = study.setup()
    arrays = simulate_runs(setup, tick(0))
    done += study.runs
    summary = summarise(setup, arrays, area_km2=study.area_km2)
    summary["inputs"].update(
        incident_source=study.incidents.source,
        stand_in=study.incidents.stand_in,
        population_description=study.population.description,
    )
    summary["notes"] = [*study.incidents.notes, *_notes(study, summary)]
    blocked = blocked_count(setup)
    if blocked:
        summary["notes"].append(
            f"{blocked:,} incidents alert nobody: the service refuses to start alerting for a "
            "call that reaches it over 30 minutes old, dated in the future, or located more "
            "vaguely than 250 m (the shipped agency settings)"
        )
    if factors:
        points = [curve_point(setup, arrays, study.area_km2) | {"factor": 1.0}]
        for factor in factors:
            scaled = study.setup(study.population.scaled(factor), runs=study.curve_runs)
            part = simulate_runs(scaled, tick(done))
            done += study.curve_runs
            points.append(curve_point(scaled, part, study.area_km2) | {"factor": factor})
        summary["curve"] = sorted(points, key=lambda p: p["factor"])
    return summary


def _notes(study: Study, summary: dict[str, Any]) -> list[str]:
    notes = []
    span = summary["inputs"]["span_days"]
    if span < 28:
        notes.append(
            f"the incidents cover {span:.1f} days: alerts per volunteer per month are "
            "extrapolated from that period"
        )
    if study.sample_share < 1:
        notes.append(
            f"each run keeps each incident with probability {study.sample_share:.1%} "
            "(the share of these calls taken to be cardiac arrests)"
        )
    if not study.aeds:
        notes.append("no AEDs were given: every volunteer goes straight to the patient")
    for p in summary["inputs"]["behaviour"]:
        if p["source"].startswith("assumption"):
            value = p["value"]
            if isinstance(value, list) and len(set(value)) == 1:
                value = f"{value[0]} at every hour"
            notes.append(f"{p['name']} = {value}: {p['source']}")
    return notes


def with_runs(study: Study, runs: int) -> Study:
    return replace(study, runs=runs)
