"""``dispatch simulate``: options, input loading, progress bar, and the three outputs."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import numpy as np

from dispatch.domain.aed_import import AedImportError, hours_as_times
from dispatch.domain.aed_import import parse_csv as parse_aed_csv
from dispatch.domain.aed_import import parse_geojson as parse_aed_geojson
from dispatch.domain.aeds import Aed
from dispatch.domain.policy import AlertPolicy, PolicyError, policy_from_json
from dispatch.domain.time_zones import UnknownTimeZone, time_zone
from dispatch.simulate import incidents as readers
from dispatch.simulate.calibration import calibrate
from dispatch.simulate.model import Behaviour
from dispatch.simulate.population import (
    Population,
    PopulationError,
    cell_ring,
    load_population_file,
    ring_km2,
    served_cells,
    uniform_density,
)
from dispatch.simulate.report import render_html, table
from dispatch.simulate.runner import default_workers
from dispatch.simulate.study import Study, run_study

LOCAL_DATA_ZONE = "America/Los_Angeles"


class SimulateError(Exception):
    """Input the simulator cannot use; printed without a traceback."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--incidents",
        required=True,
        type=Path,
        help="SF 'Calls for Service' or Seattle 'Real Time Fire 911' CSV, or generic "
        "JSON / EIDO / CAP documents (a file or a folder)",
    )
    p.add_argument("--layout", choices=("auto", "sf", "seattle", "documents"), default="auto")
    p.add_argument(
        "--call-types",
        action="append",
        help="call types standing in for cardiac arrests in public data (glob; "
        "repeatable). Default SF: 'Medical Incident'; Seattle: 'Medic Response*'",
    )
    p.add_argument(
        "--sample-share",
        type=float,
        default=1.0,
        help="share of those calls each run keeps as cardiac arrests (default 1)",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--density", type=float, help="volunteers per km² over the incidents' area")
    who.add_argument(
        "--population",
        type=Path,
        help="densities by area (CSV h3_cell,density_per_km2 or GeoJSON) or an "
        "agency's anonymised positions (CSV lat,lon[,tier])",
    )
    p.add_argument(
        "--professional-share",
        type=float,
        default=1.0,
        help="share of volunteers who may go into homes (default 1)",
    )
    p.add_argument("--policy", type=Path, help="alert policy JSON (default: the shipped one)")
    p.add_argument("--aeds", type=Path, help="AED registry, CSV or GeoJSON (as 'aed import')")
    p.add_argument("--time-zone", help="the agency's zone (default: per layout, else UTC)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a behaviour parameter, e.g. accept_night=0.1 (repeatable)",
    )
    p.add_argument("--availability", help="share available: one value or 24 (by local hour)")
    p.add_argument("--daily-budget", type=int, help="at most this many alerts per volunteer a day")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--draws", type=int, default=10, help="population draws (default 10)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--no-curve", action="store_true", help="skip the volunteers-needed curve")
    p.add_argument("--curve-runs", type=int, help="runs per curve point (default runs/5, ≥ 10)")
    p.add_argument(
        "--report",
        type=Path,
        default=Path("simulate-report"),
        help="writes REPORT.json and REPORT.html (default simulate-report)",
    )
    p.add_argument("--no-figures", action="store_true", help="HTML without plots")
    p.add_argument(
        "--no-calibration",
        action="store_true",
        help="leave out the check of the model against published results (~10 s)",
    )


def _zone(args: argparse.Namespace, layout: str) -> str:
    name = args.time_zone or (LOCAL_DATA_ZONE if layout in ("sf", "seattle") else "UTC")
    try:
        return time_zone(name).key
    except UnknownTimeZone:
        raise SimulateError(f"--time-zone: unknown time zone {name!r}") from None


def load_incidents(args: argparse.Namespace) -> tuple[readers.IncidentSet, str]:
    path: Path = args.incidents
    if not path.exists():
        raise SimulateError(f"--incidents: {path} does not exist")
    layout = readers.sniff_layout(path) if args.layout == "auto" else args.layout
    zone = _zone(args, layout)
    tz = ZoneInfo(zone)
    if layout == "sf":
        found = readers.read_sf_calls(
            path, tz=tz, call_types=args.call_types or readers.SF_DEFAULT_TYPES
        )
    elif layout == "seattle":
        found = readers.read_seattle(
            path, tz=tz, call_types=args.call_types or readers.SEATTLE_DEFAULT_TYPES
        )
    else:
        found = readers.read_documents(
            readers.document_paths(path), agency=readers.default_agency(zone), tz=tz
        )
    if not found.incidents:
        hint = (
            " (public data has no cardiac-arrest coding: name stand-in call types with "
            "--call-types)"
            if layout != "documents"
            else ""
        )
        raise SimulateError(f"--incidents: no incident to simulate in {path.name}{hint}")
    return found, zone


def load_population(
    args: argparse.Namespace, points: list[tuple[float, float]]
) -> tuple[Population, float]:
    cells = served_cells(points)
    served_km2 = sum(ring_km2(cell_ring(c)) for c in cells)
    if args.density is not None:
        population = uniform_density(args.density, cells)
        area = served_km2
    else:
        try:
            text = args.population.read_text(encoding="utf-8-sig")
            population = load_population_file(args.population.name, text)
        except OSError as exc:
            raise SimulateError(f"--population: {exc}") from None
        area = sum(a.km2 for a in population.areas) if population.areas else served_km2
    if not 0 <= args.professional_share <= 1:
        raise SimulateError("--professional-share must be between 0 and 1")
    population = Population(
        areas=population.areas,
        positions=population.positions,
        tiers=population.tiers,
        professional_share=args.professional_share,
        description=population.description,
    )
    return population, area


def load_aeds(path: Path | None) -> tuple[Aed, ...]:
    if path is None:
        return ()
    text = path.read_text(encoding="utf-8-sig")
    try:
        records = (
            parse_aed_geojson(json.loads(text))
            if path.name.endswith((".geojson", ".json"))
            else parse_aed_csv(text)
        )
    except json.JSONDecodeError as exc:
        raise SimulateError(f"--aeds: {path.name} is not JSON: {exc}") from None
    except AedImportError as exc:
        raise SimulateError(f"--aeds: {path.name} {exc.pointer}: {exc.detail}") from None
    return tuple(
        Aed(i + 1, r.name, r.lat, r.lon, hours_as_times(r.access_hours), r.indoor_description)
        for i, r in enumerate(records)
    )


def load_policy(path: Path | None) -> AlertPolicy:
    if path is None:
        return AlertPolicy()
    try:
        return policy_from_json(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise SimulateError(f"--policy: not JSON: {exc}") from None
    except PolicyError as exc:
        raise SimulateError(f"--policy {exc.pointer}: {exc.detail}") from None


def load_behaviour(args: argparse.Namespace) -> Behaviour:
    values: dict[str, Any] = {}
    for item in args.set:
        name, sep, raw = item.partition("=")
        try:
            if not sep:
                raise ValueError
            values[name.strip()] = float(raw)
        except ValueError:
            raise SimulateError(f"--set {item!r}: expected NAME=NUMBER") from None
    if args.availability:
        try:
            shares = [float(v) for v in args.availability.split(",")]
        except ValueError:
            raise SimulateError("--availability: numbers separated by commas") from None
        if len(shares) not in (1, 24):
            raise SimulateError("--availability: one value or 24 (one per local hour)")
        values["availability"] = shares[0] if len(shares) == 1 else shares
    try:
        return Behaviour().with_overrides(values, "set on the command line")
    except ValueError as exc:
        raise SimulateError(f"--set: {exc}") from None


def build_study(args: argparse.Namespace) -> Study:
    found, zone = load_incidents(args)
    population, area = load_population(args, [(i.lat, i.lon) for i in found.incidents])
    if not 0 < args.sample_share <= 1:
        raise SimulateError("--sample-share must be in (0, 1]")
    if not 1 <= args.runs <= 100_000:
        raise SimulateError("--runs must be between 1 and 100000")
    if args.daily_budget is not None and not 0 <= args.daily_budget <= 100:
        raise SimulateError("--daily-budget must be between 0 and 100")
    curve_runs = args.curve_runs or max(10, args.runs // 5)
    return Study(
        incidents=found,
        population=population,
        area_km2=area,
        behaviour=load_behaviour(args),
        policy=load_policy(args.policy),
        aeds=load_aeds(args.aeds),
        time_zone=zone,
        runs=args.runs,
        draws=max(1, args.draws),
        seed=args.seed,
        sample_share=args.sample_share,
        daily_budget=args.daily_budget,
        workers=max(1, args.workers),
        curve=not args.no_curve,
        curve_runs=curve_runs,
    )


class ProgressBar:
    """A one-line bar on a terminal, shown once a run takes longer than a second."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        if not self.stream.isatty() or (elapsed < 1 and done < total):
            return
        width = 30
        filled = math.floor(width * done / total)
        eta = elapsed / done * (total - done) if done else 0
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} runs, "
            f"{elapsed:.0f} s, ~{eta:.0f} s left "
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")


def main(args: argparse.Namespace) -> int:
    try:
        study = build_study(args)
        bar = ProgressBar(sys.stderr)
        summary = run_study(study, bar)
        bar.close()
        if not args.no_calibration:
            summary["calibration"] = calibrate()
            summary["notes"].extend(
                f"calibration: {c['name']} ({c['metric']}) not reproduced: model "
                f"{c['model']['mean']:.0%} vs published {c['published']:.0%}. {c['note']}"
                for c in summary["calibration"]
                if not c["reproduced"]
            )
    except (SimulateError, readers.IncidentsError, PopulationError) as exc:
        sys.stderr.write(f"dispatch simulate: {exc}\n")
        return 2
    json_path = args.report.with_suffix(".json")
    html_path = args.report.with_suffix(".html")
    json_path.write_text(json.dumps(summary, indent=1, default=_plain), encoding="utf-8")
    html_path.write_text(render_html(summary, figures=not args.no_figures), encoding="utf-8")
    out = sys.stdout
    out.write(table(summary) + "\n\n")
    for note in summary["notes"]:
        out.write(f"- {note}\n")
    out.write(f"\nwrote {json_path} and {html_path}\n")
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
