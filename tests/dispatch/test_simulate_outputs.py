"""``dispatch simulate``'s results: Monte Carlo, report, command line, calibration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dispatch.cli import main
from dispatch.domain.aeds import Aed
from dispatch.domain.policy import AlertPolicy
from dispatch.simulate.calibration import CASES, TOLERANCE, calibrate, synthetic_incidents
from dispatch.simulate.cli import ProgressBar
from dispatch.simulate.incidents import IncidentSet
from dispatch.simulate.population import cell_ring, ring_km2, served_cells, uniform_density
from dispatch.simulate.report import render_html, table
from dispatch.simulate.runner import plan_tasks, simulate_runs
from dispatch.simulate.study import Study, run_study

FIXTURES = Path(__file__).parent / "simulate_fixtures"


def study(n: int = 120, density: float = 4.0, **changes: Any) -> Study:
    found = synthetic_incidents(n, seed=3)
    cells = served_cells([(i.lat, i.lon) for i in found.incidents])
    base = Study(
        incidents=found,
        population=uniform_density(density, cells),
        area_km2=sum(ring_km2(cell_ring(c)) for c in cells),
        time_zone="Europe/Stockholm",
        runs=6,
        draws=3,
        seed=5,
        curve=False,
    )
    return replace(base, **changes)


def test_runs_are_seeded_and_do_not_depend_on_how_they_are_split() -> None:
    setup = study().setup()
    one = simulate_runs(setup)
    again = simulate_runs(setup)
    np.testing.assert_array_equal(one.first_s, again.first_s)
    np.testing.assert_array_equal(one.alerted, again.alerted)
    split = simulate_runs(replace(setup, workers=2))
    assert len(plan_tasks(replace(setup, workers=2))) > len(plan_tasks(setup))
    np.testing.assert_array_equal(one.first_s, split.first_s)
    np.testing.assert_array_equal(one.burden, split.burden)
    other = simulate_runs(replace(setup, seed=6))
    assert not np.array_equal(np.nan_to_num(one.first_s), np.nan_to_num(other.first_s))


def test_more_volunteers_reach_more_incidents_first_and_none_reach_none() -> None:
    sparse = run_study(study(density=0.5))["outcomes"]
    dense = run_study(study(density=8))["outcomes"]
    assert dense["before_ems"]["mean"] > sparse["before_ems"]["mean"] + 0.15
    assert dense["alerts_per_incident"]["mean"] > sparse["alerts_per_incident"]["mean"]
    nobody = run_study(study(density=0))["outcomes"]
    assert nobody["before_ems"]["mean"] == 0
    assert nobody["alerted_any"]["mean"] == 0
    slow = study(density=8).behaviour.with_overrides({"speed_median_mps": 0.05}, "test")
    crawling = run_study(study(density=8, behaviour=slow))["outcomes"]
    assert crawling["before_ems"]["mean"] < 0.05, "volunteers who crawl never beat EMS"


def test_aeds_are_brought_only_when_there_are_aeds() -> None:
    found = study().incidents.incidents
    aeds = tuple(Aed(i + 1, "a", inc.lat + 0.001, inc.lon) for i, inc in enumerate(found))
    with_aeds = run_study(study(density=8, aeds=aeds))["outcomes"]
    without = run_study(study(density=8))["outcomes"]
    assert with_aeds["aed_before_ems"]["mean"] > 0.05
    assert without["aed_before_ems"]["mean"] == 0


def test_a_daily_budget_caps_alerts_per_volunteer() -> None:
    """Forty arrests at one corner within twelve hours: the same neighbours are alerted again
    and again, unless each may be alerted once a day."""
    start = synthetic_incidents(1, seed=1).incidents[0]
    calls = [
        replace(
            start, incident_id=f"r{i}", received_at=start.received_at + timedelta(minutes=18 * i)
        )
        for i in range(40)
    ]
    busy = replace(study(density=6, runs=2, draws=1), incidents=IncidentSet(calls, "same corner"))
    free = simulate_runs(busy.setup())
    capped = simulate_runs(replace(busy, daily_budget=1).setup())
    assert free.burden[:, 4].min() > 1, "without a budget someone is alerted more than once"
    assert capped.burden[:, 4].max() == 1
    assert capped.alerted.sum() < free.alerted.sum()


def _pairs(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-key="([^"]+)" data-value="([^"]*)"', html))


def _lookup(summary: dict[str, Any], key: str) -> Any:
    value: Any = summary
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_the_report_shows_the_jsons_numbers_and_both_pictures() -> None:
    summary = run_study(replace(study(density=6), curve=True, curve_runs=3))
    summary["calibration"] = [
        {
            "name": "x",
            "metric": "before_ems",
            "published": 0.5,
            "model": summary["outcomes"]["before_ems"],
            "reproduced": False,
            "note": "n",
        }
    ]
    page = render_html(summary)
    pairs = _pairs(page)
    assert len(pairs) > 40
    for key, raw in pairs.items():
        expected = _lookup(summary, key)
        assert (raw == "" and expected is None) or float(raw) == expected, key
    embedded = re.search(r'<script type="application/json" id="results">(.*?)</script>', page)
    assert embedded is not None
    assert json.loads(embedded.group(1).replace("<\\/", "</")) == json.loads(json.dumps(summary))
    assert page.count("data:image/png;base64,") == 2
    assert "NOT reproduced" in page
    assert [p["factor"] for p in summary["curve"]] == [0.25, 0.5, 1.0, 2.0, 4.0]
    shown = table(summary)
    assert f"{summary['outcomes']['before_ems']['mean']:.1%}" in shown


def test_the_command_line_prints_the_table_and_writes_json_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "out"
    code = main(
        [
            "simulate",
            "--incidents",
            str(FIXTURES / "sf_calls.csv"),
            "--density",
            "15",
            "--runs",
            "4",
            "--workers",
            "1",
            "--no-calibration",
            "--no-curve",
            "--no-figures",
            "--set",
            "accept_night=0.2",
            "--report",
            str(report),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "out.json").read_text())
    assert f"{summary['outcomes']['before_ems']['mean']:.1%}" in printed
    assert "3 of 5 incidents have a call type in the list" in printed
    assert summary["inputs"]["time_zone"] == "America/Los_Angeles"
    sources = {p["name"]: p["source"] for p in summary["inputs"]["behaviour"]}
    assert sources["accept_night"] == "set on the command line"
    assert _pairs((tmp_path / "out.html").read_text())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "speed=3"], "unknown behaviour parameter"),
        (["--set", "dropout"], "NAME=NUMBER"),
        (["--availability", "1,2"], "one value or 24"),
        (["--time-zone", "Mars/Olympus"], "unknown time zone"),
        (["--sample-share", "0"], "sample-share"),
        (["--call-types", "nothing"], "no incident to simulate"),
    ],
)
def test_the_command_line_names_what_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["simulate", "--incidents", str(FIXTURES / "sf_calls.csv"), "--density", "5"]
    code = main([*args, "--runs", "1", "--report", str(tmp_path / "r"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_bad_policy_files_name_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"waves": [{"after_s": 5, "radius_m": 500, "live": 3}]}))
    args = ["simulate", "--incidents", str(FIXTURES / "sf_calls.csv"), "--density", "5"]
    assert main([*args, "--policy", str(policy), "--report", str(tmp_path / "r")]) == 2
    assert "/waves/0/after_s" in capsys.readouterr().err


def test_the_progress_bar_draws_on_a_terminal_only() -> None:
    class Terminal:
        def __init__(self, tty: bool) -> None:
            self.text, self.tty = "", tty

        def isatty(self) -> bool:
            return self.tty

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    for tty in (True, False):
        stream = Terminal(tty)
        bar = ProgressBar(stream)  # type: ignore[arg-type]
        bar(5, 10)
        bar(10, 10)
        bar.close()
        assert ("10/10 runs" in stream.text) is tty


def test_the_service_never_needs_matplotlib() -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import dispatch.cli, dispatch.web.app, dispatch.simulate.cli, dispatch.simulate.report\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr


def test_calibration_against_published_results() -> None:
    """Each case documents its parameters' sources; Stockholm's 68% is reproduced within ±10
    points; the three others are not, and the report must say so (never tuned away)."""
    results = {c["name"]: c for c in calibrate(incidents=300, runs=8)}
    assert set(results) == {c.name for c in CASES}
    for case in CASES:
        got = results[case.name]
        assert all(p["source"] for p in got["parameters"]), case.name
        off = abs(got["model"]["mean"] - case.published)
        assert got["reproduced"] is (off <= TOLERANCE)
    assert results["Stockholm 2018-20"]["reproduced"]
    for name in ("Systematic review 2020: before EMS", "Denmark 2017 (Capital Region)"):
        assert not results[name]["reproduced"]
        assert results[name]["model"]["mean"] > results[name]["published"], "optimistic"
        assert results[name]["note"]
    acceptance = results["Systematic review 2020: acceptance"]
    assert not acceptance["reproduced"]
    assert acceptance["model"]["mean"] < acceptance["published"], "stand-downs count as no"


def test_an_incident_set_without_incidents_is_refused() -> None:
    with pytest.raises(ValueError, match="no incidents"):
        replace(study(), incidents=IncidentSet([], "empty")).setup()
    with pytest.raises(ValueError, match="runs"):
        study(runs=0).setup()
    assert AlertPolicy().max_alerted == 30


def test_per_cell_and_per_hour_outcomes_add_up_to_the_whole() -> None:
    summary = run_study(study(density=6))
    whole = summary["outcomes"]
    n = sum(h["incidents_per_run"] for h in summary["by_hour"])
    assert n == pytest.approx(120)
    for part in ("by_hour", "by_cell"):
        rows = [r for r in summary[part] if r["incidents_per_run"]]
        share = sum(r["before_ems"] * r["incidents_per_run"] for r in rows) / n
        assert share == pytest.approx(whole["before_ems"]["mean"])
        alerts = sum(r["alerts_per_incident"] * r["incidents_per_run"] for r in rows) / n
        assert alerts == pytest.approx(whole["alerts_per_incident"]["mean"])
    cells = summary["by_cell"]
    assert sum(c["volunteers"] for c in cells) == pytest.approx(
        summary["inputs"]["volunteers_mean"]
    )
    burden = (
        sum((c["alerts_per_volunteer_per_month"] or 0) * c["volunteers"] for c in cells)
        / summary["inputs"]["volunteers_mean"]
    )
    # The whole is a mean of per-run ratios, cells pool the runs: equal up to draw sizes.
    assert burden == pytest.approx(whole["alerts_per_volunteer_per_month"]["mean"], rel=1e-3)


def test_calls_the_service_would_refuse_alert_nobody() -> None:
    """Too old when they reach dispatch, or located too vaguely: as at intake, nobody is
    alerted (the same domain rule decides)."""
    base = study(density=8)
    calls = base.incidents.incidents
    late = replace(calls[0], alert_delay_s=2 * 3600.0)
    vague = replace(calls[1], uncertainty_m=5000.0)
    changed = replace(
        base, incidents=IncidentSet([late, vague, *calls[2:]], "with refused calls"), runs=2
    )
    arrays = simulate_runs(changed.setup())
    assert (arrays.alerted[:, :2] == 0).all()
    assert arrays.alerted[:, 2:].sum() > 0
    summary = run_study(changed)
    assert any("2 incidents alert nobody" in n for n in summary["notes"])
