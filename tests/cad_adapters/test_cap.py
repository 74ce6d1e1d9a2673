"""OASIS CAP (1.2, 1.1, 1.0) XML → IncidentReport."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cad_adapters.cap import parse_cap
from cad_adapters.errors import CadParseError
from cad_adapters.models import IncidentStatus
from tests.cad_adapters.conftest import parsed_point

from .conftest import FIXTURES_DIR, SAMPLES_DIR, sample_bytes

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"


def alert(
    *,
    status: str = "Actual",
    msg_type: str = "Alert",
    references: str | None = None,
    sent: str = "2024-03-05T10:00:00+01:00",
    info: str | None = None,
    ns: str = CAP12,
    identifier: str = "CA-0001",
    extra: str = "",
) -> bytes:
    """A small CAP document; ``info`` defaults to one cardiac-arrest info with a circle."""
    if info is None:
        info = area_info("<circle>52.370216,4.895168 0.05</circle>")
    refs = f"<references>{references}</references>" if references is not None else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="{ns}">'
        f"<identifier>{identifier}</identifier><sender>cad@psap.example.org</sender>"
        f"<sent>{sent}</sent><status>{status}</status><msgType>{msg_type}</msgType>"
        f"<scope>Private</scope>{refs}{extra}{info}</alert>"
    ).encode()


def area_info(shapes: str, *, event_code: str = "<eventCode><valueName>APCO</valueName>"
              "<value>NCRCPRF</value></eventCode>") -> str:  # fmt: skip
    return (
        "<info><category>Health</category><event>Cardiac arrest</event>"
        "<urgency>Immediate</urgency><severity>Extreme</severity><certainty>Observed</certainty>"
        f"{event_code}<senderName>Example County 911</senderName>"
        f"<area><areaDesc>Oosterdokskade 143</areaDesc>{shapes}</area></info>"
    )


def test_alert_with_circle() -> None:
    """A CAP Alert maps identity, type, time, circle location, agency."""
    report = parse_cap(alert(extra="<incidents>2024-000123</incidents>"))
    assert report.source == "cap"
    assert report.source_incident_id == "cad@psap.example.org/CA-0001"
    assert (report.call_type.code, report.call_type.text) == ("NCRCPRF", "Cardiac arrest")
    assert report.call_type.scheme == "APCO"
    assert report.is_cardiac_arrest is None
    assert report.received_at == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
    assert report.source_updated_at == report.received_at
    assert report.location is not None
    assert (report.location.lat, report.location.lon) == (52.370216, 4.895168)
    assert report.location.uncertainty_m == pytest.approx(50.0)
    assert report.location_source == "cap:circle"
    assert report.address is not None
    assert report.address.text == "Oosterdokskade 143"
    assert report.status is IncidentStatus.ACTIVE
    assert report.is_test is False
    assert report.references == ()
    assert report.agency_id == "cad@psap.example.org"
    assert report.agency_name == "Example County 911"
    assert report.local_incident_number == "2024-000123"


@pytest.mark.parametrize(
    ("status", "is_test"),
    [("Actual", False), ("Exercise", True), ("Test", True), ("System", True), ("Draft", True)],
)
def test_status_gate(status: str, is_test: bool) -> None:
    """Only status Actual is real; every other status is a test."""
    assert parse_cap(alert(status=status)).is_test is is_test


@pytest.mark.parametrize("ns", [CAP12, "urn:oasis:names:tc:emergency:cap:1.1",
                                "http://www.incident.com/cap/1.0"])  # fmt: skip
def test_cap_versions(ns: str) -> None:
    """CAP 1.0, 1.1 and 1.2 namespaces are accepted."""
    assert parse_cap(alert(ns=ns)).call_type.code == "NCRCPRF"


def test_prefixed_namespace() -> None:
    """Elements are matched by namespace URI, not by prefix."""
    document = alert().replace(b"<", b"<cap:").replace(b"<cap:/", b"</cap:")
    document = document.replace(b"<cap:?xml", b"<?xml").replace(b'xmlns="', b'xmlns:cap="')
    assert parse_cap(document).source_incident_id == "cad@psap.example.org/CA-0001"


def test_update_attaches_to_earliest_reference() -> None:
    """An Update's incident id is the earliest-sent referenced message, all refs exposed."""
    refs = (
        "cad@psap.example.org,CA-0002,2024-03-05T10:05:00+01:00 "
        "cad@psap.example.org,CA-0001,2024-03-05T10:00:00+01:00"
    )
    report = parse_cap(alert(msg_type="Update", identifier="CA-0003", references=refs))
    assert report.source_incident_id == "cad@psap.example.org/CA-0001"
    assert report.references == ("cad@psap.example.org/CA-0002", "cad@psap.example.org/CA-0001")
    assert report.status is IncidentStatus.ACTIVE


def test_cancel_without_info() -> None:
    """A Cancel needs no info; it cancels the referenced incident."""
    report = parse_cap(
        alert(msg_type="Cancel", info="", identifier="CA-0009",
              references="cad@psap.example.org,CA-0001,2024-03-05T10:00:00+01:00")
    )  # fmt: skip
    assert report.source_incident_id == "cad@psap.example.org/CA-0001"
    assert report.status is IncidentStatus.CANCELLED
    assert report.closed_at == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
    assert report.call_type.code == ""
    assert report.location is None


def test_polygon_centroid_and_geocode() -> None:
    """Without a circle the polygon centroid is used; a geocode alone gives no location."""
    polygon = "<polygon>10,20 10,20.002 10.002,20.002 10.002,20 10,20</polygon>"
    report = parse_cap(alert(info=area_info(polygon)))
    assert report.location is not None
    assert (report.location.lat, report.location.lon) == pytest.approx((10.001, 20.001))
    assert report.location_source == "cap:polygon-centroid"

    geocode = "<geocode><valueName>SAME</valueName><value>006109</value></geocode>"
    report = parse_cap(alert(info=area_info(geocode)))
    assert report.location is None
    assert report.location_source is None
    assert report.address is not None
    assert report.address.text == "Oosterdokskade 143"


GEOCODES = (
    "<geocode><valueName>SAME</valueName><value>038001</value></geocode>"
    "<geocode><valueName>UGC</valueName><value>NDZ001</value></geocode>"
)


@pytest.mark.parametrize(
    "empty", ["<polygon></polygon>", "<polygon/>", "<polygon> \n </polygon>", "<circle></circle>"]
)
def test_empty_shapes_are_absent(empty: str) -> None:
    """An empty polygon or circle is an absent one: the alert with its geocodes is kept
    (no location, so it never alerts) instead of being refused whole."""
    report = parse_cap(alert(info=area_info(empty + GEOCODES)))
    assert report.location is None
    assert report.location_source is None
    assert report.address is not None
    assert report.address.text == "Oosterdokskade 143"


def test_empty_polygon_beside_a_circle_keeps_the_circle() -> None:
    """An empty polygon next to a valid circle changes nothing about the circle."""
    report = parse_cap(alert(info=area_info("<polygon></polygon><circle>52.37,4.89 0.05</circle>")))
    assert report.location is not None
    assert (report.location.lat, report.location.lon) == (52.37, 4.89)
    assert report.location_source == "cap:circle"


def test_blizzard_warning_with_empty_polygon_fixture() -> None:
    """The NWS-layout Blizzard Warning (empty <polygon></polygon>, valid SAME/UGC geocodes)
    is read: type from its SAME code, area from areaDesc, no location."""
    report = parse_cap((FIXTURES_DIR / "cap_blizzard_empty_polygon.xml").read_bytes())
    assert report.source_incident_id == (
        "w-nws.webmaster@noaa.gov/urn:oid:2.49.0.1.840.0.fixture-blizzard.001.1"
    )
    assert (report.call_type.code, report.call_type.scheme) == ("BZW", "SAME")
    assert report.location is None
    assert report.address is not None
    assert report.address.text == "North Fixture; South Fixture"
    assert report.received_at == datetime(2026, 1, 12, 9, 47, tzinfo=UTC)


def test_event_without_event_code() -> None:
    """Without an eventCode the event text is the code."""
    report = parse_cap(alert(info=area_info("", event_code="")))
    assert (report.call_type.code, report.call_type.scheme) == ("Cardiac arrest", "CAP-event")


def test_naive_sent_uses_default_tz() -> None:
    """A sent stamp without offset (invalid CAP, seen in the wild) is read in default_tz."""
    report = parse_cap(alert(sent="2024-03-05T10:00:00"), default_tz=ZoneInfo("Europe/Amsterdam"))
    assert report.received_at == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        (alert().replace(b"<identifier>CA-0001</identifier>", b""), "/alert/identifier"),
        (alert(identifier="CA 1"), "/alert/identifier"),
        (alert().replace(b"<sender>cad@psap.example.org</sender>", b"<sender/>"), "/alert/sender"),
        (alert(sent="yesterday"), "/alert/sent"),
        (alert(status="Real"), "/alert/status"),
        (alert(msg_type="Ack"), "/alert/msgType"),
        (alert(msg_type="Error"), "/alert/msgType"),
        (alert(msg_type="Update"), "/alert/references"),
        (alert(msg_type="Cancel", references=""), "/alert/references"),
        (alert(msg_type="Update", references="a,b"), "/alert/references"),
        (alert(msg_type="Update", references="a,b,notatime"), "/alert/references"),
        (alert(info=""), "/alert/info"),
        (alert(info="<info><category>Met</category></info>"), "/alert/info/event"),
        (alert(info=area_info("<circle>91,10 1</circle>")), "/alert/info/area/circle"),
        (alert(info=area_info("<circle>10,181 1</circle>")), "/alert/info/area/circle"),
        (alert(info=area_info("<circle>NaN,10 1</circle>")), "/alert/info/area/circle"),
        (alert(info=area_info("<circle>10,10 -1</circle>")), "/alert/info/area/circle"),
        (alert(info=area_info("<circle>10 10 1</circle>")), "/alert/info/area/circle"),
        (alert(info=area_info("<polygon>1,1 1,2</polygon>")), "/alert/info/area/polygon"),
        (alert(info=area_info("<polygon>1,1 1,2, 2,2 1,1</polygon>")), "/alert/info/area/polygon"),
        (alert(info=area_info("<polygon>1,1 1,200 2,2 1,1</polygon>")), "/alert/info/area/polygon"),
        # A bad polygon is refused even when a valid circle would be used.
        (alert(info=area_info("<circle>10,10 1</circle><polygon>x</polygon>")),
         "/alert/info/area/polygon"),
        (b"<feed xmlns='http://www.w3.org/2005/Atom'/>", ""),
        (b"<alert/>", ""),
    ],
)  # fmt: skip
def test_refusals_name_the_element(document: bytes, pointer: str) -> None:
    """Invalid or missing elements raise CadParseError naming the element path."""
    with pytest.raises(CadParseError) as info:
        parse_cap(document)
    assert info.value.pointer == pointer, info.value


# --- the shared public samples ----------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    incident_id: str
    code: str
    status: IncidentStatus = IncidentStatus.ACTIVE
    lat_lon: tuple[float, float] | None = None
    uncertainty_m: float | None = None
    references: int = 0


@dataclass(frozen=True)
class Refused:
    pointer: str
    detail: str


NWS = "w-nws.webmaster@noaa.gov"
USGS = "http://earthquake.usgs.gov/research/monitoring/anss/neic/"
NOT_CAP = Refused("", "not a CAP alert")
CAP_SAMPLES: dict[str, Parsed | Refused] = {
    "google_43b080713727.cap": Parsed("hsas@dhs.gov/43b080713727",
                                      "Homeland Security Advisory System Update"),
    "google_KAR0-0306112239-SW.cap": Parsed("KARO@CLETS.DOJ.CA.GOV/KAR0-0306112239-SW", "CAE"),
    "google_australia.cap": Parsed(
        "webmaster@rfs.nsw.gov.au/tag:www.rfs.nsw.gov.au2011-10-06:40184", "fire",
        lat_lon=(-35.3888, 147.0598), uncertainty_m=25_000.0),
    "google_canada.cap": Parsed("cap@ec.gc.ca/2.49.0.1.124.a3f342a4.2012", "thunderstorm",
                                lat_lon=(42.0504, -82.7272), references=2),
    "google_canada_errors.cap": Refused("/alert/references", "must reference"),
    "google_canada_signed.cap": Parsed("cap-pac@ec.gc.ca/2.49.0.1.124.726d2331.2013", "snowfall",
                                       lat_lon=(54.9566, -105.4961), references=9),
    "google_earthquake-iso8859-1.cap": Parsed(
        f"{USGS}/USGS-earthquakes-usB000D5T4.3947362.7.20121014T225304.360Z.0", "EQW",
        lat_lon=(12.747, -88.783), uncertainty_m=0.0),
    "google_earthquake.cap": Parsed(
        f"{USGS}/USGS-earthquakes-us2010apcd.6.20100831T000925.496Z", "EQW",
        lat_lon=(-16.053, -173.274), uncertainty_m=0.0),
    "google_earthquake_signed.cap": Parsed(
        "http://www.cisn.org/ncmc.html/USGS-earthquakes-nc71635010.28103893.20110906T171538.586Z",
        "EQW", lat_lon=(38.82, -122.812), uncertainty_m=0.0),
    # Missing <scope>: tolerated, we do not use it.
    "google_invalid.cap": Parsed("sender/12345", "Storm"),
    "google_no_optional_fields.cap": Refused("/alert/info", "without info"),
    # Trailing comma in a polygon pair ("+40.85,-118.09,") and an empty <polygon>.
    "google_noaa_errors.cap": Refused("/alert/info/area/polygon", "lat,lon"),
    # The reference's sender is "PAAQ", not the message's sender URL.
    "google_wcatwc-warning.cap": Parsed("PAAQ/PAAQ-1-lqw6d6", "Tsunami Warning", references=1),
    "google_weather.cap": Parsed(
        f"{NWS}/NOAA-NWS-ALERTS-MT20100830100700TFXFlashFloodWatchTFX20100830180000MT", "FFA"),
    "google_xee.cap": Refused("", "DTD"),
    "google_xee.atom": Refused("", "DTD"),
    "google_amber.atom": NOT_CAP,
    "google_earthquake.atom": NOT_CAP,
    "google_weather.atom": NOT_CAP,
    "google_bushfire_valid.edxlde": NOT_CAP,
    "google_bushfire_invalid.edxlde": NOT_CAP,
    "oasis_cap11.xsd": NOT_CAP,
    "oasis_cap12.xsd": NOT_CAP,
    "tannerryan_NWS_FireWeatherWatchCancel.xml": Parsed(
        f"{NWS}/urn:oid:2.49.0.1.840.0.1b30bfeb3d4f67abd849b064811d657a163f2249.001.1", "NWS",
        status=IncidentStatus.CANCELLED, references=1),
    "tannerryan_Oasis_AmberAlert.xml": Parsed("KARO@CLETS.DOJ.CA.GOV/KAR0-0306112239-SW", "CAE"),
    "tannerryan_Oasis_EarthquakeReport.xml": Parsed(
        "trinet@caltech.edu/TRI13970876.1", "Earthquake", lat_lon=(32.9525, -115.5527),
        uncertainty_m=0.0, references=1),
    "tannerryan_Oasis_HomelandAlert.xml": Parsed("hsas@dhs.gov/43b080713727",
                                                 "Homeland Security Advisory System Update"),
    "tannerryan_Oasis_ThunderstormWarning.xml": Parsed(
        "KSTO@NWS.NOAA.GOV/KSTO1055887203", "SVR", lat_lon=(38.4840, -119.9346)),
    "tannerryan_PelmorexNAADS_WindWarning.xml": Parsed(
        "cap-pac@canada.ca/urn:oid:2.49.0.1.124.0642871265.2019", "wind",
        lat_lon=(47.4994, -61.6872), references=3),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CAP_SAMPLES))
def test_shared_cap_sample(name: str) -> None:
    """Each shared CAP sample parses to the expected values or fails with CadParseError."""
    data = sample_bytes(f"cap/{name}")
    expected = CAP_SAMPLES[name]
    if isinstance(expected, Refused):
        with pytest.raises(CadParseError) as info:
            parse_cap(data)
        assert info.value.pointer == expected.pointer
        assert expected.detail in info.value.detail
        return
    report = parse_cap(data)
    assert report.source_incident_id == expected.incident_id
    assert report.call_type.code == expected.code
    assert report.status is expected.status
    assert len(report.references) == expected.references
    assert report.is_test is False
    assert report.received_at.tzinfo is UTC
    if expected.lat_lon is None:
        assert report.location is None
    else:
        assert report.location is not None
        assert (report.location.lat, report.location.lon) == pytest.approx(
            expected.lat_lon, abs=1e-3
        )
        if expected.uncertainty_m is not None:
            assert report.location.uncertainty_m == pytest.approx(expected.uncertainty_m)


def test_every_cap_sample_has_an_expectation() -> None:
    """A sample added to the shared cap/ folder must get a row in CAP_SAMPLES."""
    folder = SAMPLES_DIR / "cap"
    if not folder.is_dir():
        pytest.skip(f"shared CAD samples not found under {SAMPLES_DIR}")
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != "SOURCES.md"}
    assert present == set(CAP_SAMPLES)


def test_update_and_cancel_samples_chain() -> None:
    """The OASIS earthquake Update attaches to the Alert it references (TRI13970876.1)."""
    report = parse_cap(sample_bytes("cap/tannerryan_Oasis_EarthquakeReport.xml"))
    assert report.references == ("trinet@caltech.edu/TRI13970876.1",)
    assert report.received_at == datetime(2003, 6, 12, 3, 56, tzinfo=UTC)


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(lat=finite, lon=finite, radius=st.floats(0, 1000))
def test_circle_range_property(lat: float, lon: float, radius: float) -> None:
    """Out of range is a CadParseError at /alert/info/area/circle; (0, 0) means unknown."""
    document = alert(info=area_info(f"<circle>{lat!r},{lon!r} {radius!r}</circle>"))
    point = parsed_point(parse_cap, document, lat, lon)
    if isinstance(point, CadParseError):
        assert point.pointer == "/alert/info/area/circle"
    elif point is not None:
        assert point.uncertainty_m == pytest.approx(radius * 1000)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: alert(info=t)))
def test_arbitrary_input_only_raises_cad_parse_error(data: bytes) -> None:
    """Arbitrary bytes, or arbitrary text where info goes, only ever raise CadParseError."""
    with contextlib.suppress(CadParseError):
        parse_cap(data)


def test_null_island_circle_means_unknown_location() -> None:
    """A (0, 0) circle is the "unknown" placeholder: the alert parses with no location."""
    report = parse_cap(alert(info=area_info("<circle>0,0 0</circle>")))
    assert report.location is None
