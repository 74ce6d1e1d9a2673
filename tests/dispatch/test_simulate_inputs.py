"""``dispatch simulate``'s inputs: call data readers, volunteer populations, behaviour model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from cad_adapters.models import PlaceType
from dispatch.simulate import incidents as readers
from dispatch.simulate.model import DEFAULT_SOURCES, Behaviour, period
from dispatch.simulate.population import (
    PopulationError,
    areas_from_csv,
    areas_from_geojson,
    cell_ring,
    inside,
    load_population_file,
    positions_from_csv,
    served_cells,
    uniform_density,
)
from geoindex import latlng_to_cell

FIXTURES = Path(__file__).parent / "simulate_fixtures"
LA = ZoneInfo("America/Los_Angeles")


def test_sf_layout_takes_each_incidents_first_unit_on_scene_and_first_dispatch() -> None:
    found = readers.read_sf_calls(FIXTURES / "sf_calls.csv", tz=LA)
    by_id = {i.incident_id: i for i in found.incidents}
    assert set(by_id) == {"sf:9000001", "sf:9000003", "sf:9000005"}, "medical, located"
    first = by_id["sf:9000001"]
    # 23:58 PDT is 06:58 UTC the next day; the medic (00:04) beat the engine (00:05).
    assert first.received_at == datetime(2024, 6, 2, 6, 58, tzinfo=UTC)
    assert first.ems_s == 6 * 60
    assert first.alert_delay_s == 60, "the earliest dispatch of the two units"
    assert (first.lat, first.lon) == (37.77, -122.42)
    assert by_id["sf:9000003"].ems_s is None, "cancelled before anyone was on scene"
    assert any("1 unit rows without" in n for n in found.notes)
    assert any("1 incidents have no unit on scene" in n for n in found.notes)
    assert found.stand_in is not None
    assert "Medical Incident" in found.stand_in
    fires = readers.read_sf_calls(FIXTURES / "sf_calls.csv", tz=LA, call_types=["structure*"])
    assert [i.incident_id for i in fires.incidents] == ["sf:9000002"]


def test_seattle_layout_reads_floating_times_hour_24_and_skips_null_island() -> None:
    found = readers.read_seattle(FIXTURES / "seattle_calls.csv", tz=LA)
    by_id = {i.incident_id: i for i in found.incidents}
    assert set(by_id) == {"seattle:F240000001", "seattle:F240000003"}
    # "+0000" is not trusted: 22:04 local (PDT) is 05:04 UTC.
    assert by_id["seattle:F240000001"].received_at == datetime(2024, 6, 2, 5, 4, tzinfo=UTC)
    # Hour 24 of 2 June is 00:22 on 3 June, local.
    assert by_id["seattle:F240000003"].received_at == datetime(2024, 6, 3, 7, 22, tzinfo=UTC)
    assert all(i.ems_s is None for i in found.incidents), "no unit times in this layout"
    assert any("without a location" in n for n in found.notes)
    mva = readers.read_seattle(FIXTURES / "seattle_calls.csv", tz=LA, call_types=["motor*"])
    assert [i.call_type for i in mva.incidents] == ["Motor Vehicle Accident Freeway"]


def test_layouts_are_recognised_and_unknown_ones_refused(tmp_path: Path) -> None:
    assert readers.sniff_layout(FIXTURES / "sf_calls.csv") == "sf"
    assert readers.sniff_layout(FIXTURES / "seattle_calls.csv") == "seattle"
    other = tmp_path / "x.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(readers.IncidentsError, match="not a layout"):
        readers.sniff_layout(other)
    broken = tmp_path / "broken.csv"
    text = (FIXTURES / "sf_calls.csv").read_text().splitlines()
    broken.write_text("\n".join([text[0], text[1].replace("11:58:00 PM", "25:99:00 XM")]))
    with pytest.raises(readers.IncidentsError, match="line 2"):
        readers.read_sf_calls(broken, tz=LA)


def test_documents_go_through_the_cad_adapters_and_the_agencys_rules(tmp_path: Path) -> None:
    base = {
        "call_type": {"code": "09-E-01"},
        "received_at": "2024-06-01T10:00:00Z",
        "location": {"lat": 52.37, "lon": 4.89},
        "place_type": "residential",
    }
    docs = [
        {**base, "incident_id": "a", "version": 1},
        {
            **base,
            "incident_id": "a",
            "version": 2,
            "dispatched_at": "2024-06-01T10:01:00Z",
            "units": [{"unit_id": "M1", "status": "on_scene", "at": "2024-06-01T10:07:30Z"}],
        },
        {**base, "incident_id": "b", "call_type": {"code": "CHEST"}},
        {**base, "incident_id": "c", "location": {"lat": 0, "lon": 0}},
    ]
    (tmp_path / "calls.json").write_text(json.dumps(docs))
    found = readers.read_documents(
        readers.document_paths(tmp_path), agency=readers.default_agency("UTC"), tz=UTC
    )
    assert [i.incident_id for i in found.incidents] == ["generic:a"]
    only = found.incidents[0]
    assert (only.ems_s, only.alert_delay_s) == (450.0, 60.0)
    assert only.place_type is PlaceType.RESIDENTIAL
    (tmp_path / "bad.json").write_text(json.dumps([{**base, "incident_id": "d", "extra": 1}]))
    with pytest.raises(readers.IncidentsError, match=r"bad.json/0/extra"):
        readers.read_documents(
            readers.document_paths(tmp_path), agency=readers.default_agency("UTC"), tz=UTC
        )


def test_the_shared_sf_and_seattle_samples_read(shared_dir: Path) -> None:
    samples = shared_dir / "cad_samples"
    sf = readers.read_sf_calls(
        samples / "sf_fire_calls" / "sf_fire_department_calls_for_service_excerpt.csv", tz=LA
    )
    assert len(sf.incidents) > 500
    with_ems = [i.ems_s for i in sf.incidents if i.ems_s is not None]
    assert len(with_ems) > 0.9 * len(sf.incidents)
    assert 120 < float(np.median(with_ems)) < 1200, "first unit on scene within minutes"
    seattle = samples / "seattle_fire_911" / "seattle_real_time_fire_911_calls_excerpt.csv"
    assert readers.sniff_layout(seattle) == "seattle"
    assert not readers.read_seattle(seattle, tz=LA).incidents, "the excerpt holds MVA calls only"
    mva = readers.read_seattle(seattle, tz=LA, call_types=["Motor Vehicle Accident*"])
    assert len(mva.incidents) > 1000
    assert all(-123 < i.lon < -122 and 47 < i.lat < 48 for i in mva.incidents)


def test_a_density_draws_a_poisson_number_inside_the_served_cells() -> None:
    cells = served_cells([(52.37, 4.89)])
    assert len(cells) == 7, "the incident's res-7 cell and its ring"
    population = uniform_density(30, cells)
    expected = population.expected_count()
    counts = [len(population.draw(np.random.default_rng(s))) for s in range(20)]
    assert abs(np.mean(counts) - expected) < 4 * np.sqrt(expected / 20)
    drawn = population.draw(np.random.default_rng(1))
    cell_of = {latlng_to_cell(a, b, 7) for a, b in zip(drawn.lat, drawn.lon, strict=True)}
    assert cell_of <= set(cells)
    assert len(population.scaled(2).draw(np.random.default_rng(1))) > 1.6 * len(drawn)


def test_density_files_and_positions(tmp_path: Path) -> None:
    cell = latlng_to_cell(52.37, 4.89, 8)
    areas = areas_from_csv(f"h3_cell,density_per_km2\n{cell:x},100\n")
    drawn = areas.draw(np.random.default_rng(2))
    ring = cell_ring(cell)
    assert inside(ring, drawn.lat, drawn.lon).all()
    square = [[4.88, 52.36], [4.90, 52.36], [4.90, 52.38], [4.88, 52.38], [4.88, 52.36]]
    geo = areas_from_geojson(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"density_per_km2": 1000},
                    "geometry": {"type": "Polygon", "coordinates": [square]},
                }
            ],
        }
    )
    pts = geo.draw(np.random.default_rng(3))
    assert ((pts.lat >= 52.36) & (pts.lat <= 52.38) & (pts.lon >= 4.88) & (pts.lon <= 4.90)).all()
    assert 0.7 * geo.expected_count() < len(pts) < 1.3 * geo.expected_count()
    positions = positions_from_csv("lat,lon,tier\n52.37,4.89,lay\n52.38,4.90,professional\n")
    fixed = positions.draw(np.random.default_rng(4))
    assert fixed.professional.tolist() == [False, True]
    assert load_population_file("p.csv", "lat,lon\n52.37,4.89\n").tiers is None


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("d.csv", "h3_cell,density_per_km2\nnot-a-cell,3\n", "line 2"),
        ("d.csv", "h3_cell,density_per_km2\n881f1d4887fffff,NaN\n", "line 2"),
        ("p.csv", "lat,lon\n0,0\n", "line 2"),
        ("p.csv", "lat,lon,tier\n52,4,boss\n", "line 2"),
        ("a.geojson", '{"features": [{"geometry": {"type": "Point"}, "properties": {}}]}', "/0"),
        ("a.geojson", "[1,", "not JSON"),
    ],
)
def test_bad_population_files_are_refused_naming_where(name: str, text: str, where: str) -> None:
    with pytest.raises(PopulationError, match=where):
        load_population_file(name, text)


def test_every_behaviour_default_names_its_source_and_overrides_say_who_set_them() -> None:
    model = Behaviour()
    described = model.describe()
    assert {p["name"] for p in described} == set(DEFAULT_SOURCES)
    assert all(p["source"] for p in described)
    assert model.acceptance(3) < model.acceptance(10) < model.acceptance(20), (
        "night < day < evening"
    )
    assert [period(h) for h in (0, 8, 16, 23)] == ["night", "day", "evening", "evening"]
    changed = model.with_overrides({"accept_night": 0.1, "availability": 0.5}, "the user")
    assert changed.accept_night == 0.1
    assert changed.availability == (0.5,) * 24
    assert changed.source_of("accept_night") == "the user"
    assert changed.source_of("accept_day") == DEFAULT_SOURCES["accept_day"]
    with pytest.raises(ValueError, match="unknown behaviour parameter"):
        model.with_overrides({"speed": 2}, "x")
    with pytest.raises(ValueError, match="between 0 and 1"):
        model.with_overrides({"dropout": 1.5}, "x")
    with pytest.raises(ValueError, match="must not exceed 1"):
        model.with_overrides({"accept_day": 0.9}, "x")


def test_eido_and_cap_documents_in_a_folder(tmp_path: Path) -> None:
    """EIDO and CAP go through their cad_adapters parsers; their call types meet the shipped
    cardiac-arrest rules; EIDO's units give the EMS time, its dispatch the alert delay."""
    eido = Path(__file__).parents[1] / "cad_adapters" / "fixtures" / "eido_cardiac_arrest.json"
    (tmp_path / "a.json").write_bytes(eido.read_bytes())
    (tmp_path / "b.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        "<identifier>CA-9</identifier><sender>cad@psap.example.org</sender>"
        "<sent>2024-03-05T10:00:00Z</sent><status>Actual</status><msgType>Alert</msgType>"
        "<scope>Private</scope><info><category>Health</category><event>Cardiac arrest</event>"
        "<urgency>Immediate</urgency><severity>Extreme</severity><certainty>Observed</certainty>"
        "<eventCode><valueName>APCO</valueName><value>NCRCPRF</value></eventCode>"
        "<area><areaDesc>Dam</areaDesc><circle>52.3731,4.8926 0.05</circle></area></info></alert>"
    )
    found = readers.read_documents(
        readers.document_paths(tmp_path), agency=readers.default_agency("UTC"), tz=UTC
    )
    by_source = {i.incident_id.split(":")[0]: i for i in found.incidents}
    assert set(by_source) == {"eido", "cap"}
    eido_call = by_source["eido"]
    assert eido_call.ems_s == pytest.approx(227.75), "first unit on scene 09:04:00"
    assert eido_call.alert_delay_s == pytest.approx(117.75), "dispatched 09:02:10"
    assert eido_call.uncertainty_m == 15.0
    assert by_source["cap"].uncertainty_m == pytest.approx(50.0)
    (tmp_path / "c.xml").write_text("<!DOCTYPE x [<!ENTITY a 'b'>]><alert/>")
    with pytest.raises(readers.IncidentsError, match=r"c\.xml"):
        readers.read_documents(
            readers.document_paths(tmp_path), agency=readers.default_agency("UTC"), tz=UTC
        )
