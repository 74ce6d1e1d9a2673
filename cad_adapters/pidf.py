"""PIDF-LO (RFC 4119 / 5139 / 5491) location documents, and the coordinate checks every parser uses.

EIDO carries PIDF-LO *as an XML string inside its JSON*; :func:`parse_pidf_lo`
parses it with the hardened parser in :mod:`cad_adapters._xml` and returns the
first geodetic shape's centre and the first civic address.

Geodetic shapes (GML axis order is ``lat lon [alt]``, EPSG:4326 / 4979):
``gml:Point`` → the point; ``gs:Circle`` / ``gs:Sphere`` → centre, uncertainty =
radius; ``gs:Ellipse`` / ``gs:Ellipsoid`` → centre, uncertainty = semi-major axis;
``gml:Polygon`` / ``gs:Prism`` → area centroid, uncertainty = farthest vertex.
``gs:ArcBand`` (a ring sector around a cell tower) has no usable centre and is ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from cad_adapters._xml import first_child, parse_xml, split_tag, text_of
from cad_adapters.errors import CadParseError, UnknownLocation
from cad_adapters.models import Coordinates, PlaceType

NS_PIDF = "urn:ietf:params:xml:ns:pidf"
NS_GEOPRIV = "urn:ietf:params:xml:ns:pidf:geopriv10"
NS_CIVIC = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
NS_GML = "http://www.opengis.net/gml"
NS_GS = "http://www.opengis.net/pidflo/1.0"

_GML = frozenset({NS_GML})
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
_EARTH_RADIUS_M = 6_371_008.8
_METRE_UOMS = frozenset({"urn:ogc:def:uom:EPSG::9001", "EPSG:9001", "m", "metre", "meter"})
_MAX_UNCERTAINTY_M = 20_037_509.0  # half the Earth's circumference

# RFC 4589 place types that are public places; ``residence`` is the only residential one.
_PUBLIC_PLACE_TYPES = frozenset(
    {
        "airport", "arena", "bank", "bar", "bus-station", "cafe", "classroom", "club",
        "construction", "convention-center", "government", "hospital", "hotel",
        "industrial", "library", "office", "outdoors", "parking", "place-of-worship",
        "public", "restaurant", "school", "shopping-area", "stadium", "store", "street",
        "theater", "train-station", "water",
    }
)  # fmt: skip

# Civic address parts (RFC 5139 CAtypes) in the order a postal line is written.
_STREET_PARTS = ("HNO", "HNS", "PRD", "RD", "STS", "POD")
_DETAIL_PARTS = ("LOC", "BLD", "FLR", "UNIT", "ROOM")
_AREA_PARTS = ("A3", "A1", "PC", "country")


def parse_number(text: str | None, *, pointer: str, what: str) -> float:
    """A finite decimal number (no NaN, infinity, hex or ``_`` separators)."""
    if text is None or _NUMBER.fullmatch(text.strip()) is None:
        raise CadParseError(pointer, f"{what} is not a decimal number: {str(text)[:40]!r}")
    value = float(text)
    if not math.isfinite(value):
        raise CadParseError(pointer, f"{what} is not finite")
    return value


def checked_coordinates(
    lat: float, lon: float, uncertainty_m: float | None = None, *, pointer: str
) -> Coordinates:
    """Range-check a WGS84 position; (0, 0) is refused as an unknown location ("Null Island")."""
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise CadParseError(pointer, "coordinates must be finite numbers")
    if not -90.0 <= lat <= 90.0:
        raise CadParseError(pointer, f"latitude {lat} outside -90..90")
    if not -180.0 <= lon <= 180.0:
        raise CadParseError(pointer, f"longitude {lon} outside -180..180")
    if abs(lat) < 1e-9 and abs(lon) < 1e-9:
        raise UnknownLocation(pointer, "coordinates (0, 0) mean an unknown location")
    if uncertainty_m is not None and (
        not math.isfinite(uncertainty_m) or not 0.0 <= uncertainty_m <= _MAX_UNCERTAINTY_M
    ):
        raise CadParseError(pointer, f"uncertainty {uncertainty_m} m is not a valid distance")
    return Coordinates(lat=lat, lon=lon, uncertainty_m=uncertainty_m)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def polygon_centre(points: Sequence[tuple[float, float]], *, pointer: str) -> Coordinates:
    """Area centroid of a ``(lat, lon)`` ring, uncertainty = distance to its farthest vertex.

    Every vertex is range-checked first. A ring crossing the antimeridian is
    unwrapped before the centroid is taken. A degenerate ring (zero area) or a centroid outside the
    ring's bounding box (self-intersection) gives the mean of its vertices.
    """
    for lat, lon in points:
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
            raise CadParseError(pointer, f"polygon vertex ({lat}, {lon}) out of range")
    ring = list(points)
    if len(ring) > 1 and ring[0] == ring[-1]:
        ring.pop()
    if len(ring) < 3:
        raise CadParseError(pointer, "a polygon needs at least 3 distinct vertices")
    lons = [lon for _, lon in ring]
    if max(lons) - min(lons) > 180.0:
        ring = [(lat, lon + 360.0 if lon < 0 else lon) for lat, lon in ring]
    area2 = cx = cy = 0.0
    for (y0, x0), (y1, x1) in zip(ring, ring[1:] + ring[:1], strict=True):
        cross = x0 * y1 - x1 * y0
        area2 += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    lat = sum(p[0] for p in ring) / len(ring)
    lon = sum(p[1] for p in ring) / len(ring)
    if abs(area2) > 1e-12:
        area_lat, area_lon = cy / (3 * area2), cx / (3 * area2)
        # A self-intersecting ring can put the "centroid" anywhere: keep the vertex mean then.
        if min(p[0] for p in ring) <= area_lat <= max(p[0] for p in ring) and min(
            p[1] for p in ring
        ) <= area_lon <= max(p[1] for p in ring):
            lat, lon = area_lat, area_lon
    if lon > 180.0:
        lon -= 360.0
    radius = max(distance_m(lat, lon, p[0], p[1]) for p in ring)
    return checked_coordinates(lat, lon, min(radius, _MAX_UNCERTAINTY_M), pointer=pointer)


@dataclass(frozen=True, slots=True)
class PidfLocation:
    """What a PIDF-LO document says about one location."""

    coordinates: Coordinates | None
    civic: Mapping[str, str] = field(default_factory=dict)
    shape: str | None = None
    """Local name of the geodetic shape used (``Point``, ``Circle``, …)."""
    method: str | None = None
    """``gp:method`` (``GPS``, ``Cell``, ``Manual`` …) when present."""

    @property
    def address_text(self) -> str | None:
        return civic_address_text(self.civic)

    @property
    def place_type(self) -> PlaceType:
        return civic_place_type(self.civic)


def civic_address_text(civic: Mapping[str, str]) -> str | None:
    """A one-line display address from RFC 5139 civic parts (``None`` if nothing usable)."""
    street = " ".join(civic[k] for k in _STREET_PARTS if civic.get(k))
    parts = [civic.get("NAM", ""), street]
    parts += [civic.get(k, "") for k in _DETAIL_PARTS]
    parts += [civic.get(k, "") for k in _AREA_PARTS]
    text = ", ".join(p for p in parts if p)
    return text or None


def civic_place_type(civic: Mapping[str, str]) -> PlaceType:
    """RFC 4589 ``PLC``: ``residence`` → residential, known public types → public."""
    plc = civic.get("PLC", "").strip().lower()
    if plc == "residence":
        return PlaceType.RESIDENTIAL
    if plc in _PUBLIC_PLACE_TYPES:
        return PlaceType.PUBLIC
    return PlaceType.UNKNOWN


def _check_srs(element: Element, pointer: str) -> int:
    """Return the coordinate dimension (2 or 3) for ``srsName``; refuse other systems."""
    srs = element.get("srsName")
    if srs is None:
        return 2
    code = re.split(r"[:/]", srs.strip())[-1]
    if code == "4326":
        return 2
    if code == "4979":
        return 3
    raise CadParseError(pointer, f"unsupported coordinate reference system {srs[:80]!r}")


def _positions(text: str | None, dims: int, pointer: str) -> list[tuple[float, float]]:
    values = [parse_number(v, pointer=pointer, what="coordinate") for v in (text or "").split()]
    if dims == 2 and len(values) == 3 and "posList" not in pointer:
        dims = 3  # a lone gml:pos "lat lon alt"
    if not values or len(values) % dims:
        raise CadParseError(pointer, f"expected groups of {dims} numbers (lat lon [alt])")
    return [(values[i], values[i + 1]) for i in range(0, len(values), dims)]


def _length_m(shape: Element, name: str, pointer: str) -> float:
    element = first_child(shape, name, frozenset({NS_GS}))
    if element is None:
        raise CadParseError(f"{pointer}/{name}", "missing")
    uom = element.get("uom")
    if uom is not None and uom.strip() not in _METRE_UOMS:
        raise CadParseError(f"{pointer}/{name}", f"unsupported unit {uom[:60]!r}")
    value = parse_number(text_of(element), pointer=f"{pointer}/{name}", what=name)
    if not 0.0 <= value <= _MAX_UNCERTAINTY_M:
        raise CadParseError(f"{pointer}/{name}", f"{value} m is not a valid distance")
    return value


def _centre(shape: Element, dims: int, pointer: str) -> tuple[float, float]:
    pos = first_child(shape, "pos", _GML)
    if pos is None:
        point = first_child(shape, "Point", _GML)
        pos = first_child(point, "pos", _GML) if point is not None else None
    if pos is None:
        raise CadParseError(f"{pointer}/pos", "missing")
    points = _positions(text_of(pos), dims, f"{pointer}/pos")
    if len(points) != 1:
        raise CadParseError(f"{pointer}/pos", "expected one position")
    return points[0]


def _polygon(shape: Element, dims: int, pointer: str) -> Coordinates:
    polygon: Element | None = shape
    if split_tag(shape.tag)[1] == "Prism":  # gs:Prism/gs:base/gml:Polygon
        base = first_child(shape, "base", frozenset({NS_GS}))
        polygon = first_child(base, "Polygon", _GML) if base is not None else None
    exterior = first_child(polygon, "exterior", _GML) if polygon is not None else None
    ring = first_child(exterior, "LinearRing", _GML) if exterior is not None else None
    if ring is None:
        raise CadParseError(f"{pointer}/exterior/LinearRing", "missing")
    pos_list = first_child(ring, "posList", _GML)
    if pos_list is not None:
        if pos_list.get("srsDimension") == "3":
            dims = 3
        points = _positions(text_of(pos_list), dims, f"{pointer}/exterior/LinearRing/posList")
    else:
        points = []
        for pos in ring:
            if split_tag(pos.tag) == (NS_GML, "pos"):
                points += _positions(text_of(pos), dims, f"{pointer}/exterior/LinearRing/pos")
    return polygon_centre(points, pointer=f"{pointer}/exterior/LinearRing")


def _shape_coordinates(shape: Element, pointer: str) -> Coordinates | None:
    ns, name = split_tag(shape.tag)
    if (ns, name) not in {
        (NS_GML, "Point"), (NS_GML, "Polygon"), (NS_GS, "Circle"), (NS_GS, "Sphere"),
        (NS_GS, "Ellipse"), (NS_GS, "Ellipsoid"), (NS_GS, "Prism"),
    }:  # fmt: skip
        return None
    here = f"{pointer}/{name}"
    dims = _check_srs(shape, here)
    if name in ("Polygon", "Prism"):
        return _polygon(shape, dims, here)
    lat, lon = _centre(shape, dims, here)
    uncertainty: float | None = None
    if name in ("Circle", "Sphere"):
        uncertainty = _length_m(shape, "radius", here)
    elif name in ("Ellipse", "Ellipsoid"):
        uncertainty = _length_m(shape, "semiMajorAxis", here)
    return checked_coordinates(lat, lon, uncertainty, pointer=here)


def parse_pidf_lo(document: str | bytes, *, pointer: str = "") -> PidfLocation:
    """Parse a PIDF-LO document (string or bytes) into a :class:`PidfLocation`.

    The first ``gp:location-info`` holding a supported geodetic shape gives the
    coordinates; the first ``civicAddress`` gives the civic parts (keyed by their
    CAtype local names: ``country``, ``A1``…``A6``, ``RD``, ``HNO``, ``PC``, ``LOC``,
    ``NAM``, ``PLC`` …). A document with neither gives ``coordinates=None`` and an
    empty ``civic``. Errors carry ``pointer`` followed by an element path.
    """
    root = parse_xml(document, pointer=pointer)
    root_ns, root_name = split_tag(root.tag)
    if (root_ns, root_name) != (NS_PIDF, "presence"):
        raise CadParseError(pointer, f"PIDF-LO root must be pidf:presence, got {root_name!r}")
    coordinates: Coordinates | None = None
    shape_name: str | None = None
    civic: dict[str, str] = {}
    method: str | None = None
    for geopriv in root.iter(f"{{{NS_GEOPRIV}}}geopriv"):
        if method is None:
            method = text_of(first_child(geopriv, "method", frozenset({NS_GEOPRIV})))
        info = first_child(geopriv, "location-info", frozenset({NS_GEOPRIV}))
        if info is None:
            continue
        here = f"{pointer}/presence/geopriv/location-info"
        for element in info:
            ns, name = split_tag(element.tag)
            if coordinates is None:
                try:
                    found = _shape_coordinates(element, here)
                except UnknownLocation:
                    found = None
                if found is not None:
                    coordinates, shape_name = found, name
            if (ns, name) == (NS_CIVIC, "civicAddress") and not civic:
                for part in element:
                    part_ns, part_name = split_tag(part.tag)
                    value = text_of(part)
                    if part_ns == NS_CIVIC and value is not None:
                        civic.setdefault(part_name, value)
    return PidfLocation(coordinates=coordinates, civic=civic, shape=shape_name, method=method)
