"""PIDF-LO location documents: geodetic shapes, civic addresses and their validation."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cad_adapters.errors import CadParseError
from cad_adapters.models import PlaceType
from cad_adapters.pidf import (
    checked_coordinates,
    civic_address_text,
    parse_pidf_lo,
    polygon_centre,
)

from .conftest import sample_path

HEAD = (
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
    'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
    'xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0" '
    'xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr" entity="pres:x@example.org">'
    '<tuple id="t"><status><gp:geopriv><gp:location-info>'
)
TAIL = "</gp:location-info><gp:method>GPS</gp:method></gp:geopriv></status></tuple></presence>"
M = 'uom="urn:ogc:def:uom:EPSG::9001"'
WGS84 = 'srsName="urn:ogc:def:crs:EPSG::4326"'
WGS84_3D = 'srsName="urn:ogc:def:crs:EPSG::4979"'


def pidf(body: str) -> str:
    return HEAD + body + TAIL


@pytest.mark.parametrize(
    ("body", "lat", "lon", "uncertainty", "shape"),
    [
        (f'<gml:Point {WGS84}><gml:pos>-33.8688 151.2093</gml:pos></gml:Point>',
         -33.8688, 151.2093, None, "Point"),
        ("<gml:Point><gml:pos>40.1 -80.2 120.5</gml:pos></gml:Point>", 40.1, -80.2, None, "Point"),
        (f"<gs:Circle {WGS84}><gml:pos>42.5463 -73.2512</gml:pos>"
         f"<gs:radius {M}>850.24</gs:radius></gs:Circle>", 42.5463, -73.2512, 850.24, "Circle"),
        (f"<gs:Sphere {WGS84_3D}><gml:pos>42.5 -73.2 26.3</gml:pos>"
         f"<gs:radius {M}>30</gs:radius></gs:Sphere>", 42.5, -73.2, 30.0, "Sphere"),
        (f"<gs:Ellipse {WGS84}><gml:pos>42.5 -73.2</gml:pos>"
         f"<gs:semiMajorAxis {M}>1275</gs:semiMajorAxis>"
         f"<gs:semiMinorAxis {M}>670</gs:semiMinorAxis>"
         '<gs:orientation uom="urn:ogc:def:uom:EPSG::9102">43.2</gs:orientation></gs:Ellipse>',
         42.5, -73.2, 1275.0, "Ellipse"),
        (f"<gs:Ellipsoid {WGS84_3D}><gml:pos>40.441345 -80.000266 34</gml:pos>"
         f"<gs:semiMajorAxis {M}>7.7156</gs:semiMajorAxis>"
         f"<gs:semiMinorAxis {M}>3.31</gs:semiMinorAxis>"
         f"<gs:verticalAxis {M}>28.7</gs:verticalAxis></gs:Ellipsoid>",
         40.441345, -80.000266, 7.7156, "Ellipsoid"),
    ],
)  # fmt: skip
def test_point_shapes(
    body: str, lat: float, lon: float, uncertainty: float | None, shape: str
) -> None:
    """Point-like shapes give their centre (lat lon axis order) and the right uncertainty."""
    location = parse_pidf_lo(pidf(body))
    assert location.coordinates is not None
    assert location.coordinates.lat == pytest.approx(lat)
    assert location.coordinates.lon == pytest.approx(lon)
    assert location.coordinates.uncertainty_m == pytest.approx(uncertainty)
    assert location.shape == shape
    assert location.method == "GPS"


def test_polygon_centroid() -> None:
    """A gml:Polygon gives its area centroid and the distance to the farthest vertex."""
    body = (
        '<gml:Polygon srsName="urn:ogc:def:crs:EPSG::4326"><gml:exterior><gml:LinearRing>'
        "<gml:posList>10.0 20.0 10.0 20.002 10.002 20.002 10.002 20.0 10.0 20.0</gml:posList>"
        "</gml:LinearRing></gml:exterior></gml:Polygon>"
    )
    coords = parse_pidf_lo(pidf(body)).coordinates
    assert coords is not None
    assert (coords.lat, coords.lon) == pytest.approx((10.001, 20.001))
    assert coords.uncertainty_m == pytest.approx(156.3, abs=1.0)


def test_prism_with_pos_elements() -> None:
    """A gs:Prism base polygon written with gml:pos elements (3-D) is handled."""
    ring = "".join(
        f"<gml:pos>{lat} {lon} 10</gml:pos>"
        for lat, lon in [(1, 1), (1, 2), (2, 2), (2, 1), (1, 1)]
    )
    body = (
        f'<gs:Prism srsName="urn:ogc:def:crs:EPSG::4979"><gs:base><gml:Polygon><gml:exterior>'
        f"<gml:LinearRing>{ring}</gml:LinearRing></gml:exterior></gml:Polygon></gs:base>"
        f"<gs:height {M}>5</gs:height></gs:Prism>"
    )
    coords = parse_pidf_lo(pidf(body)).coordinates
    assert coords is not None
    assert (coords.lat, coords.lon) == pytest.approx((1.5, 1.5))


def test_civic_address_and_place_type() -> None:
    """Civic CAtypes are kept by local name, joined into a display line, PLC mapped."""
    body = (
        "<ca:civicAddress><ca:country>US</ca:country><ca:A1>DE</ca:A1><ca:A3>Wilmington</ca:A3>"
        "<ca:PRD>W</ca:PRD><ca:RD>Cellular</ca:RD><ca:STS>Street</ca:STS><ca:HNO>42</ca:HNO>"
        "<ca:UNIT>3B</ca:UNIT><ca:PLC>residence</ca:PLC><ca:PC> </ca:PC></ca:civicAddress>"
    )
    location = parse_pidf_lo(pidf(body))
    assert location.coordinates is None
    assert location.civic["A3"] == "Wilmington"
    assert "PC" not in location.civic
    assert location.address_text == "42 W Cellular Street, 3B, Wilmington, DE, US"
    assert location.place_type is PlaceType.RESIDENTIAL


@pytest.mark.parametrize(
    ("plc", "expected"),
    [("residence", PlaceType.RESIDENTIAL), ("stadium", PlaceType.PUBLIC),
     ("Street", PlaceType.PUBLIC), ("", PlaceType.UNKNOWN), ("spaceship", PlaceType.UNKNOWN)],
)  # fmt: skip
def test_place_types(plc: str, expected: PlaceType) -> None:
    """RFC 4589 place types map to residential / public / unknown."""
    body = f"<ca:civicAddress><ca:PLC>{plc}</ca:PLC></ca:civicAddress>"
    assert parse_pidf_lo(pidf(body)).place_type is expected


def test_empty_civic_gives_no_text() -> None:
    """Nothing usable means no display text."""
    assert civic_address_text({}) is None


@pytest.mark.parametrize(
    "body",
    [
        "<gml:Point><gml:pos>91 10</gml:pos></gml:Point>",
        "<gml:Point><gml:pos>10 181</gml:pos></gml:Point>",
        "<gml:Point><gml:pos>NaN 10</gml:pos></gml:Point>",
        "<gml:Point><gml:pos>inf 10</gml:pos></gml:Point>",
        "<gml:Point><gml:pos>0x10 10</gml:pos></gml:Point>",
        "<gml:Point><gml:pos>10</gml:pos></gml:Point>",
        "<gml:Point><gml:pos>1 2 3 4</gml:pos></gml:Point>",
        "<gml:Point></gml:Point>",
        '<gml:Point srsName="urn:ogc:def:crs:EPSG::3857"><gml:pos>10 10</gml:pos></gml:Point>',
        "<gs:Circle><gml:pos>10 10</gml:pos>"
        '<gs:radius uom="urn:ogc:def:uom:EPSG::9002">5</gs:radius></gs:Circle>',
        "<gs:Circle><gml:pos>10 10</gml:pos></gs:Circle>",
        "<gs:Circle><gml:pos>10 10</gml:pos><gs:radius>-5</gs:radius></gs:Circle>",
        "<gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>1 1 1 2 1 1</gml:posList>"
        "</gml:LinearRing></gml:exterior></gml:Polygon>",
        "<gml:Polygon></gml:Polygon>",
    ],
)
def test_invalid_geodetic_refused(body: str) -> None:
    """Out-of-range, non-finite, (0,0), malformed, foreign-CRS or -unit shapes are refused."""
    with pytest.raises(CadParseError) as info:
        parse_pidf_lo(pidf(body), pointer="/locationComponent/0/locationByValue")
    assert info.value.pointer.startswith("/locationComponent/0/locationByValue")


def test_null_island_point_means_unknown_location() -> None:
    """(0, 0) is the "unknown" placeholder: no coordinates, not a refusal of the document."""
    body = "<gml:Point><gml:pos>0 0</gml:pos></gml:Point>"
    assert parse_pidf_lo(pidf(body)).coordinates is None


def test_unknown_shape_ignored() -> None:
    """An ArcBand (no usable centre) gives no coordinates rather than a guess."""
    body = "<gs:ArcBand><gml:pos>10 10</gml:pos></gs:ArcBand>"
    assert parse_pidf_lo(pidf(body)).coordinates is None


def test_wrong_root_refused() -> None:
    """Only a pidf:presence document is PIDF-LO."""
    with pytest.raises(CadParseError, match="presence"):
        parse_pidf_lo("<presence/>")


def test_nena_sample_civic() -> None:
    """The official NENA sample's routing location is a civic address in Wilmington, DE."""
    document = json.loads(sample_path("eido/nena_sample_call_transfer_eido.json").read_text())
    location = parse_pidf_lo(document["locationComponent"][0]["locationByValue"])
    assert location.coordinates is None
    assert dict(location.civic) == {
        "country": "US", "A1": "DE", "A3": "Wilmington", "PRD": "W", "RD": "Cellular",
        "STS": "Street", "HNO": "42",
    }  # fmt: skip
    assert location.address_text == "42 W Cellular Street, Wilmington, DE, US"
    assert location.method == "Manual"


def test_draft_sample_malformed_pidf() -> None:
    """The 2020 draft's PIDF-LO (unbound gs:/con: prefixes, missing '>') is refused cleanly."""
    document = json.loads(sample_path("eido/nena_sample_eido_2020_draft.json").read_text())
    xml = document["locationInformationComponent"][0]["locationByValue"]
    with pytest.raises(CadParseError, match="malformed"):
        parse_pidf_lo(xml, pointer="/locationInformationComponent/0/locationByValue")


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(lat=finite, lon=finite)
def test_coordinate_ranges_property(lat: float, lon: float) -> None:
    """Any pair out of range (or exactly 0,0) is refused; every other pair is accepted."""
    in_range = -90 <= lat <= 90 and -180 <= lon <= 180 and not (lat == 0 and lon == 0)
    if in_range and (abs(lat) >= 1e-9 or abs(lon) >= 1e-9):
        coords = checked_coordinates(lat, lon, pointer="/p")
        assert (coords.lat, coords.lon) == (lat, lon)
    else:
        with pytest.raises(CadParseError):
            checked_coordinates(lat, lon, pointer="/p")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-89, 89), st.floats(-179, 179)), min_size=3, max_size=12))
def test_polygon_centre_property(points: list[tuple[float, float]]) -> None:
    """A polygon centre is always a valid coordinate or a CadParseError, never a crash."""
    try:
        coords = polygon_centre(points, pointer="/p")
    except CadParseError:
        return
    assert -90 <= coords.lat <= 90
    assert -180 <= coords.lon <= 180
    assert coords.uncertainty_m is not None
    assert math.isfinite(coords.uncertainty_m)
