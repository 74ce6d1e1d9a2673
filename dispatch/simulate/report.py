"""The simulation's results as a terminal table, JSON and a self-contained HTML report.

Every number the table and the HTML show is read from the summary dictionary that is
also written as JSON (the HTML carries each one in a ``data-key``/``data-value`` pair
and embeds the JSON itself), so the three cannot disagree. Plots are matplotlib PNGs
embedded as data URIs; matplotlib is imported only here, and only when a report is
drawn (``pip install 'cpr-dispatch[simulate]'``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from typing import Any, Final

from geoindex import cell_to_boundary

ROWS: Final = (
    ("before_ems", "≥1 volunteer on scene before EMS", "share"),
    ("before_ems_of_reached", "… of incidents a volunteer reached", "share"),
    ("reached", "≥1 volunteer on scene at all", "share"),
    ("aed_before_ems", "AED brought by a volunteer before EMS", "share"),
    ("alerted_any", "incidents alerting ≥1 volunteer", "share"),
    ("acceptance", "alerts accepted", "share"),
    ("alerts_per_incident", "alerts per incident", "number"),
    ("alerts_per_volunteer_per_month", "alerts per volunteer per month", "number"),
)
_CELL_EXTRA: Final = (
    ("volunteers", "volunteers there", "number"),
    ("alerts_per_volunteer_per_month", "alerts per volunteer per month", "number"),
)
TIMES: Final = (
    ("first_on_scene_s", "call → first volunteer on scene"),
    ("lead_time_s", "volunteer's lead over EMS (when first)"),
    ("ems_s", "call → EMS on scene"),
)


def fmt(value: float | None, kind: str) -> str:
    if value is None or math.isnan(value):
        return "–"
    if kind == "share":
        return f"{value:.1%}"
    if kind == "time":
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes}:{seconds:02d}"
    return f"{value:.2f}"


def table(summary: dict[str, Any]) -> str:
    """The outcome table for a terminal."""
    out = summary["outcomes"]
    runs = summary["inputs"]["runs"]
    lines = [f"{'outcome':44} {'mean':>8} {'95% CI':>17} {'95% of runs':>17}"]
    for key, label, kind in ROWS:
        row = out[key]
        ci = f"{fmt(row['ci95'][0], kind)}–{fmt(row['ci95'][1], kind)}"
        spread = f"{fmt(row['runs_95'][0], kind)}–{fmt(row['runs_95'][1], kind)}"
        lines.append(f"{label:44} {fmt(row['mean'], kind):>8} {ci:>17} {spread:>17}")
    lines.append("")
    head = f"time (m:ss), pooled over {runs} runs"
    lines.append(f"{head:44} {'p25':>8} {'median':>8} {'p75':>8}")
    for key, label in TIMES:
        t = out[key]
        lines.append(
            f"{label:44} {fmt(t['p25'], 'time'):>8} {fmt(t['p50'], 'time'):>8} "
            f"{fmt(t['p75'], 'time'):>8}"
        )
    return "\n".join(lines)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def map_png(summary: dict[str, Any]) -> str | None:
    """Before-EMS probability by H3 res-7 cell."""
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    cells = [c for c in summary["by_cell"] if c["before_ems"] is not None]
    if not cells:
        return None
    polygons = [[(lon, lat) for lat, lon in cell_to_boundary(int(c["cell"], 16))] for c in cells]
    figure = Figure(figsize=(6.4, 5.2))
    ax = figure.add_subplot()
    collection = PolyCollection(polygons, cmap="viridis", edgecolors="white", linewidths=0.3)
    collection.set_array([c["before_ems"] for c in cells])
    collection.set_clim(0, 1)
    ax.add_collection(collection)
    ax.autoscale_view()
    mid = sum(c["lat"] for c in cells) / len(cells)
    ax.set_aspect(1 / math.cos(math.radians(mid)))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.locator_params(axis="x", nbins=5)
    ax.set_title("Share of incidents with a volunteer on scene before EMS")
    figure.colorbar(collection, ax=ax, label="before EMS (per H3 res-7 cell)")
    return _png(figure)


def curve_png(curve: Sequence[dict[str, Any]], current: float | None) -> str | None:
    """Before-EMS share as a function of volunteer density, with its 95% CI."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    points = [p for p in curve if p["density_per_km2"] and p["before_ems"]["mean"] is not None]
    if len(points) < 2:
        return None
    x = [p["density_per_km2"] for p in points]
    y = [p["before_ems"]["mean"] for p in points]
    low = [p["before_ems"]["ci95"][0] for p in points]
    high = [p["before_ems"]["ci95"][1] for p in points]
    figure = Figure(figsize=(6.4, 4.2))
    ax = figure.add_subplot()
    ax.fill_between(x, low, high, alpha=0.25, label="95% CI")
    ax.plot(x, y, marker="o", label="mean over runs")
    if current:
        ax.axvline(current, linestyle="--", color="grey", label="this population")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{round(v, 1):g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(x)
    ax.set_ylim(0, 1)
    ax.set_xlabel("volunteers per km² (with the app on)")
    ax.set_ylabel("≥1 volunteer before EMS")
    ax.set_title("Volunteers needed")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return _png(figure)


def _cell(value: float | None, kind: str, key: str) -> str:
    raw = "" if value is None else repr(float(value))
    return (
        f'<td data-key="{html.escape(key)}" data-value="{raw}">{html.escape(fmt(value, kind))}</td>'
    )


def _outcome_rows(summary: dict[str, Any]) -> str:
    out = summary["outcomes"]
    rows = []
    for key, label, kind in ROWS:
        r = out[key]
        rows.append(
            f"<tr><th>{html.escape(label)}</th>"
            + _cell(r["mean"], kind, f"outcomes.{key}.mean")
            + _cell(r["ci95"][0], kind, f"outcomes.{key}.ci95.0")
            + _cell(r["ci95"][1], kind, f"outcomes.{key}.ci95.1")
            + _cell(r["runs_95"][0], kind, f"outcomes.{key}.runs_95.0")
            + _cell(r["runs_95"][1], kind, f"outcomes.{key}.runs_95.1")
            + "</tr>"
        )
    for key, label in TIMES:
        t = out[key]
        rows.append(
            f"<tr><th>{html.escape(label)} (p25 / median / p75)</th>"
            + _cell(t["p25"], "time", f"outcomes.{key}.p25")
            + _cell(t["p50"], "time", f"outcomes.{key}.p50")
            + _cell(t["p75"], "time", f"outcomes.{key}.p75")
            + "<td></td><td></td></tr>"
        )
    return "\n".join(rows)


_GROUP_COLUMNS: Final = (
    ("incidents_per_run", "incidents per run", "number"),
    ("before_ems", "before EMS", "share"),
    ("aed_before_ems", "AED before EMS", "share"),
    ("alerts_per_incident", "alerts per incident", "number"),
    ("acceptance", "accepted", "share"),
    ("first_on_scene_p50_s", "first on scene (median)", "time"),
)


def _group_table(summary: dict[str, Any], part: str, label: str, extra: Sequence[Any]) -> str:
    columns = [*_GROUP_COLUMNS, *extra]
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    rows = []
    for i, row in enumerate(summary[part]):
        name = html.escape(str(row.get("hour", row.get("cell"))))
        cells = "".join(_cell(row.get(key), kind, f"{part}.{i}.{key}") for key, _, kind in columns)
        rows.append(f"<tr><th>{name}</th>{cells}</tr>")
    return f"<table><tr><th>{html.escape(label)}</th>{head}</tr>{''.join(rows)}</table>"


def _calibration_rows(summary: dict[str, Any]) -> str:
    rows = []
    for i, case in enumerate(summary.get("calibration", [])):
        verdict = "reproduced" if case["reproduced"] else "NOT reproduced"
        rows.append(
            f"<tr><th>{html.escape(case['name'])}</th><td>{html.escape(case['metric'])}</td>"
            + _cell(case["published"], "share", f"calibration.{i}.published")
            + _cell(case["model"]["mean"], "share", f"calibration.{i}.model.mean")
            + f"<td>{verdict}</td><td>{html.escape(case['note'])}</td></tr>"
        )
    return "\n".join(rows)


def render_html(summary: dict[str, Any], *, figures: bool = True) -> str:
    """The report; ``figures=False`` leaves the plots out (no matplotlib needed)."""
    inputs = summary["inputs"]
    map_uri = map_png(summary) if figures else None
    curve_uri = (
        curve_png(summary.get("curve", []), inputs.get("density_per_km2")) if figures else None
    )
    behaviour = "\n".join(
        f"<tr><th>{html.escape(p['name'])}</th><td>{html.escape(json.dumps(p['value']))}</td>"
        f"<td>{html.escape(p['source'])}</td></tr>"
        for p in inputs["behaviour"]
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in summary.get("notes", []))
    images = "".join(
        f'<figure><img alt="{alt}" src="{uri}"></figure>'
        for alt, uri in (("before-EMS map", map_uri), ("volunteers-needed curve", curve_uri))
        if uri
    )
    calibration = _calibration_rows(summary)
    calibration_table = (
        "<h2>Calibration against published results (±10 percentage points)</h2>"
        "<table><tr><th>case</th><th>metric</th><th>published</th><th>model</th><th></th>"
        f"<th>parameters and their sources</th></tr>{calibration}</table>"
        if calibration
        else ""
    )
    blob = json.dumps(summary).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dispatch simulate</title>
<style>body{{font:14px/1.45 system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border-bottom:1px solid #ddd;padding:.3em .6em;
text-align:left;vertical-align:top}}td[data-value]{{text-align:right}}img{{max-width:100%}}</style>
</head><body>
<h1>Volunteers before EMS: simulation report</h1>
<p>{html.escape(str(inputs["incidents"]))} incidents ({html.escape(inputs["incident_source"])}),
{html.escape(inputs["population"])}; {inputs["runs"]} runs over {inputs["population_draws"]}
population draws, seed {inputs["seed"]}. {html.escape(inputs.get("stand_in") or "")}
Sample share {inputs["sample_share"]:.0%}.</p>
<h2>Outcomes</h2>
<table><tr><th></th><th>mean</th><th colspan="2">95% CI of the mean</th>
<th colspan="2">middle 95% of runs</th></tr>
{_outcome_rows(summary)}</table>
{images}
<h2>By hour of the call (local)</h2>
{_group_table(summary, "by_hour", "hour", ())}
<details><summary>By H3 res-7 cell</summary>
{_group_table(summary, "by_cell", "cell", _CELL_EXTRA)}
</details>
{calibration_table}
<h2>Notes</h2><ul>{notes}</ul>
<h2>Behaviour model</h2><table><tr><th>parameter</th><th>value</th><th>source</th></tr>
{behaviour}</table>
<h2>Alert policy</h2><pre>{html.escape(json.dumps(inputs["policy"], indent=2))}</pre>
<script type="application/json" id="results">{blob}</script>
</body></html>
"""
