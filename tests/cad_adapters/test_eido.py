"""NENA EIDO 1.0 JSON → IncidentReport."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cad_adapters.eido import parse_eido, unit_status
from cad_adapters.errors import CadParseError
from cad_adapters.models import IncidentStatus, PlaceType, UnitStatus
from tests.cad_adapters.conftest import parsed_point

from .conftest import fixture_json, sample_bytes

FIXTURE = "eido_cardiac_arrest.json"


def base() -> dict[str, Any]:
    return fixture_json(FIXTURE)


def test_fixture_parses_to_expected_report() -> None:
    """The hand-written cardiac-arrest EIDO maps every field we use."""
    report = parse_eido(base())
    assert report.source == "eido"
    assert report.source_incident_id == "urn:emergency:uid:incidentid:ca0001:psap.example.org"
    assert report.call_type.code == "NCRCPRF"
    assert report.call_type.internal_code == "09-E-01"
    assert report.call_type.text == "CARDIAC/RESP ARREST - NOT BREATHING"
    assert report.call_type.scheme == "EIDO-IncidentType-Common"
    assert report.is_cardiac_arrest is None  # agency rules decide
    assert report.local_incident_number == "2024-000123"
    assert report.received_at == datetime(2024, 3, 5, 9, 0, 12, 250000, UTC)
    assert report.dispatched_at == datetime(2024, 3, 5, 9, 2, 10, tzinfo=UTC)
    assert report.source_updated_at == datetime(2024, 3, 5, 9, 4, 30, 500000, UTC)
    assert report.status is IncidentStatus.ACTIVE
    assert report.closed_at is None
    assert report.is_test is False
    assert report.location is not None
    assert (report.location.lat, report.location.lon) == (52.370216, 4.895168)
    assert report.location.uncertainty_m == 15.0
    assert report.location_source == "eido:CurrentIncident"
    assert report.address is not None
    assert report.address.text == ("Public Library, 143 Oosterdokskade, Amsterdam, NH, 1011 DL, NL")
    assert report.address.civic["PC"] == "1011 DL"
    assert report.place_type is PlaceType.PUBLIC
    assert report.place_detail == "library"
    assert report.agency_id == "psap.example.org"
    assert report.agency_name == "Example County 911"
    assert [(u.unit_id, u.status) for u in report.units] == [
        ("M12", UnitStatus.EN_ROUTE),
        ("E4", UnitStatus.ON_SCENE),
    ]
    assert report.units[0].status_raw == "primary=NotAvailable; secondary=EnRoute; internal=ER"
    assert report.units[1].at == datetime(2024, 3, 5, 9, 4, tzinfo=UTC)


def test_bytes_and_mapping_agree() -> None:
    """Raw bytes and an already-decoded mapping give the same report."""
    document = base()
    assert parse_eido(json.dumps(document).encode()) == parse_eido(document)


def test_incident_component_array_form() -> None:
    """Drafts send incidentComponent as an array; pointers then carry the index."""
    document = base()
    document["incidentComponent"] = [document["incidentComponent"]]
    assert parse_eido(document).call_type.code == "NCRCPRF"
    del document["incidentComponent"][0]["incidentTypeCommonRegistryText"]
    with pytest.raises(CadParseError) as info:
        parse_eido(document)
    assert info.value.pointer == "/incidentComponent/0/incidentTypeCommonRegistryText"


def _without(path: tuple[str | int, ...]) -> dict[str, Any]:
    document = base()
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return document


def _with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    document = base()
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return document


BAD_LOCATION = (
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
    'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" xmlns:gml="http://www.opengis.net/gml">'
    "<tuple><status><gp:geopriv><gp:location-info><gml:Point><gml:pos>{pos}</gml:pos></gml:Point>"
    "</gp:location-info></gp:geopriv></status></tuple></presence>"
)
LOC = ("locationComponent", 1, "locationByValue")


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        (_without(("incidentComponent",)), "/incidentComponent"),
        (_without(("incidentComponent", "incidentTypeCommonRegistryText")),
         "/incidentComponent/incidentTypeCommonRegistryText"),
        (_with(("incidentComponent", "incidentTypeCommonRegistryText"), "  "),
         "/incidentComponent/incidentTypeCommonRegistryText"),
        (_with(("incidentComponent", "incidentTypeCommonRegistryText"), 7),
         "/incidentComponent/incidentTypeCommonRegistryText"),
        (_without(("eidoVersion",)), "/eidoVersion"),
        (_with(("eidoVersion",), "2.0"), "/eidoVersion"),
        (_without(("$id",)), "/$id"),
        (_without(("lastUpdateTimeStamp",)), "/lastUpdateTimeStamp"),
        (_with(("lastUpdateTimeStamp",), "2024-13-01T00:00:00Z"), "/lastUpdateTimeStamp"),
        (_with(("callComponent", 1, "callStartTimestamp"), "soon"),
         "/callComponent/1/callStartTimestamp"),
        (_with(("incidentComponent", "incidentStatusCommonRegistryText"), [1]),
         "/incidentComponent/incidentStatusCommonRegistryText/0"),
        (_with(("incidentComponent", "incidentStatusCommonRegistryText"), {"a": 1}),
         "/incidentComponent/incidentStatusCommonRegistryText"),
        (_with(("locationComponent",), {"a": 1}),
         "/locationComponent/locationTypeDescriptionRegistryText"),
        (_with(("locationComponent",), "x"), "/locationComponent"),
        (_with(("locationComponent", 0), "x"), "/locationComponent/0"),
        (_with(LOC, BAD_LOCATION.format(pos="95 10")), "/locationComponent/1/locationByValue"),
        (_with(LOC, BAD_LOCATION.format(pos="NaN 1")), "/locationComponent/1/locationByValue"),
        (_with(LOC, "<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"),
         "/locationComponent/1/locationByValue"),
        (_with(LOC, "not xml"), "/locationComponent/1/locationByValue"),
        (_with(("emergencyResourceComponent", 0), {"primaryUnitStatusRegistryText": "Available"}),
         "/emergencyResourceComponent/0/emergencyResourceName"),
        (_with(("emergencyResourceComponent", 1, "secondaryUnitStatusRegistryText"), [None]),
         "/emergencyResourceComponent/1/secondaryUnitStatusRegistryText/0"),
    ],
)  # fmt: skip
def test_refusals_name_the_field(document: dict[str, Any], pointer: str) -> None:
    """Missing or invalid fields raise CadParseError whose JSON Pointer names the field."""
    with pytest.raises(CadParseError) as info:
        parse_eido(document)
    assert info.value.pointer.startswith(pointer), info.value


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b'"x"', b"{", b"\xff\xfe\xfa", b'{"eidoVersion": NaN}', b"[" * 100_000,
     b'{"a":' * 70 + b"1" + b"}" * 70],
)  # fmt: skip
def test_bad_json_refused(data: bytes) -> None:
    """Non-JSON, non-object roots, NaN constants and deep nesting are refused as a whole."""
    with pytest.raises(CadParseError) as info:
        parse_eido(data)
    assert info.value.pointer == ""


def test_size_limit() -> None:
    """Oversize byte documents are refused before decoding."""
    with pytest.raises(CadParseError, match="larger"):
        parse_eido(b" " * (3 * 1024 * 1024))


@pytest.mark.parametrize(
    ("statuses", "expected", "closed"),
    [
        (["Active"], IncidentStatus.ACTIVE, False),
        (["ResourcesOnscene"], IncidentStatus.ACTIVE, False),
        (["Closed"], IncidentStatus.CLOSED, True),
        (["Closed", "ReOpened"], IncidentStatus.ACTIVE, False),
        (["Cancelled"], IncidentStatus.CANCELLED, True),
        ([], IncidentStatus.ACTIVE, False),
    ],
)
def test_incident_status(statuses: list[str], expected: IncidentStatus, closed: bool) -> None:
    """The incident status registry maps to active / closed / cancelled."""
    report = parse_eido(_with(("incidentComponent", "incidentStatusCommonRegistryText"), statuses))
    assert report.status is expected
    assert report.closed_at == (datetime(2024, 3, 5, 9, 4, tzinfo=UTC) if closed else None)


@pytest.mark.parametrize(
    ("primary", "secondary", "internal", "expected"),
    [
        ("NotAvailable", ["Dispatched"], [], UnitStatus.DISPATCHED),
        ("NotAvailable", ["Assigned"], [], UnitStatus.DISPATCHED),
        ("NotAvailable", ["AcknowledgedTransmission"], [], UnitStatus.ACKNOWLEDGED),
        ("NotAvailable", ["Dispatched", "EnRoute"], [], UnitStatus.EN_ROUTE),
        ("NotAvailable", ["Staging"], [], UnitStatus.STAGED),
        ("NotAvailable", ["Arrived"], [], UnitStatus.ON_SCENE),
        ("NotAvailable", ["OnScene", "PatientContact"], [], UnitStatus.PATIENT_CONTACT),
        ("NotAvailable", ["EnRoute", "Hospital"], [], UnitStatus.TRANSPORTING),
        ("NotAvailable", ["Arrived", "Hospital"], [], UnitStatus.AT_HOSPITAL),
        ("Available", ["Cleared"], [], UnitStatus.AVAILABLE),
        ("ConditionallyAvailable", ["InService"], [], UnitStatus.AVAILABLE),
        ("NotAvailable", ["AssignmentCancelled", "EnRoute"], [], UnitStatus.CANCELLED),
        ("Available", [], [], UnitStatus.AVAILABLE),
        ("NotAvailable", ["Meal"], ["TA"], UnitStatus.AT_HOSPITAL),
        (None, [], ["os"], UnitStatus.ON_SCENE),
        (None, [], ["ZZ"], UnitStatus.UNKNOWN),
        ("NotAvailable", ["Training"], [], UnitStatus.UNKNOWN),
        ("notavailable", ["enroute"], [], UnitStatus.EN_ROUTE),
    ],
)
def test_unit_status_table(
    primary: str | None, secondary: list[str], internal: list[str], expected: UnitStatus
) -> None:
    """Primary + secondary registry values (then internal codes) map to UnitStatus."""
    assert unit_status(primary, secondary, internal) is expected


def test_location_priority_and_no_mixing() -> None:
    """InitialIncident beats Caller; a by-reference-only location gives no coordinates."""
    document = base()
    document["locationComponent"][1]["locationTypeDescriptionRegistryText"] = "InitialIncident"
    assert parse_eido(document).location_source == "eido:InitialIncident"

    document["locationComponent"][1]["locationTypeDescriptionRegistryText"] = "Staging"
    report = parse_eido(document)
    assert report.location is not None
    assert (report.location.lat, report.location.lon) == (52.0, 5.0)
    assert report.location_source == "eido:Caller"
    assert report.address is None

    document = base()
    current = document["locationComponent"][1]
    del current["locationByValue"]
    current["locationByReferenceUrl"] = "https://lis.example.org/abc"
    report = parse_eido(document)
    assert report.location is None  # never falls back to the caller's position
    assert report.address is not None
    assert report.address.text == "front entrance of the library"


def test_latest_location_of_same_type_wins() -> None:
    """Two CurrentIncident components: the one updated last is used."""
    document = base()
    newer = copy.deepcopy(document["locationComponent"][0])
    newer["locationTypeDescriptionRegistryText"] = "CurrentIncident"
    newer["lastUpdateTimeStamp"] = "2024-03-05T10:03:00+01:00"
    document["locationComponent"].append(newer)
    report = parse_eido(document)
    assert report.location is not None
    assert (report.location.lat, report.location.lon) == (52.0, 5.0)


def test_no_location_at_all() -> None:
    """An EIDO without usable location components still parses, with location None."""
    document = _without(("locationComponent",))
    report = parse_eido(document)
    assert report.location is None
    assert report.address is None


@pytest.mark.parametrize(
    ("key", "value", "is_test"),
    [
        ("incidentTypeCommonRegistryText", "NCRTESTF", True),
        ("incidentTypeInternalCode", "test", True),
        ("incidentTypeInternalText", "TEST - MIS TEST", True),
        ("incidentTypeInternalText", "TESTICULAR PAIN", False),
        ("incidentTypeInternalText", "STRESS TEST COLLAPSE", False),
    ],
)
def test_is_test(key: str, value: str, is_test: bool) -> None:
    """Test calls are recognised by the registry's test code or a leading TEST word only."""
    assert parse_eido(_with(("incidentComponent", key), value)).is_test is is_test


def test_naive_timestamps_use_default_tz() -> None:
    """Stamps without offset are local time in default_tz."""
    document = _with(("callComponent", 0, "callStartTimestamp"), "2024-03-05T09:59:00")
    report = parse_eido(document, default_tz=ZoneInfo("Europe/Amsterdam"))
    assert report.received_at == datetime(2024, 3, 5, 8, 59, tzinfo=UTC)


def test_received_at_fallbacks() -> None:
    """Without calls, received_at is the incident's, then the root's update time."""
    document = _without(("callComponent",))
    assert parse_eido(document).received_at == datetime(2024, 3, 5, 9, 4, tzinfo=UTC)
    del document["incidentComponent"]["lastUpdateTimeStamp"]
    assert parse_eido(document).received_at == datetime(2024, 3, 5, 9, 4, 30, 500000, UTC)


def test_agency_fallbacks() -> None:
    """Without an owning agency, the Dispatching one is used; without agencies, None."""
    document = base()
    del document["agencyComponent"][1]["incidentOwningAgencyIndicator"]
    document["agencyComponent"].reverse()
    assert parse_eido(document).agency_id == "psap.example.org"
    document["agencyComponent"][0]["agencyJcard"] = "{not json"
    assert parse_eido(document).agency_name is None
    assert parse_eido(_without(("agencyComponent",))).agency_id is None


def test_nena_call_transfer_sample_has_no_incident() -> None:
    """The official NENA sample is a call-transfer EIDO: refused at /incidentComponent."""
    with pytest.raises(CadParseError) as info:
        parse_eido(sample_bytes("eido/nena_sample_call_transfer_eido.json"))
    assert info.value.pointer == "/incidentComponent"


def test_nena_2020_draft_sample_tolerated() -> None:
    """The 2020 draft (PascalCase keys, array incidentComponent) parses; its malformed
    PIDF-LO sits in a RoutingLocation, which is never used for dispatch."""
    report = parse_eido(sample_bytes("eido/nena_sample_eido_2020_draft.json"))
    assert report.source_incident_id == "urn:emergency:uid:incidentid:0:psap.allegheny.pa.us"
    assert (report.call_type.code, report.call_type.internal_code) == ("CU1", "10-101")
    assert report.call_type.text == "CIVIL UNREST; REQUEST MUTUAL AID"
    assert report.received_at == datetime(2020, 10, 29, 18, 40, 4, 337000, UTC)
    assert report.dispatched_at == datetime(2020, 10, 29, 18, 40, 4, 338000, UTC)
    assert report.agency_id == "psap.allegheny.pa.us"
    assert report.location is None
    assert report.units == ()


def test_draft_sample_current_location_malformed() -> None:
    """Were the draft's malformed PIDF-LO the incident location, the pointer would name it."""
    document = json.loads(sample_bytes("eido/nena_sample_eido_2020_draft.json"))
    document["locationInformationComponent"][0]["locationTypeDescriptionRegistryText"] = (
        "CurrentIncident"
    )
    with pytest.raises(CadParseError) as info:
        parse_eido(document)
    assert info.value.pointer == "/locationInformationComponent/0/locationByValue"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = [
    "eidoVersion", "$id", "lastUpdateTimeStamp", "incidentComponent", "callComponent",
    "locationComponent", "agencyComponent", "emergencyResourceComponent", "dispatchComponent",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_arbitrary_field_values_only_raise_cad_parse_error(field: str, value: Any) -> None:
    """Replacing any top-level field with arbitrary JSON never raises anything but CadParseError."""
    document = base()
    document[field] = value
    with contextlib.suppress(CadParseError):
        parse_eido(document)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bytes_only_raise_cad_parse_error(data: bytes) -> None:
    """Arbitrary bytes or JSON never raise anything but CadParseError."""
    with contextlib.suppress(CadParseError):
        parse_eido(data)


@settings(max_examples=100, deadline=None)
@given(
    lat=st.floats(allow_nan=False, allow_infinity=False),
    lon=st.floats(allow_nan=False, allow_infinity=False),
)
def test_out_of_range_pos_property(lat: float, lon: float) -> None:
    """Any gml:pos out of range in the incident location is a CadParseError at that location."""
    document = _with(LOC, BAD_LOCATION.format(pos=f"{lat!r} {lon!r}"))
    point = parsed_point(parse_eido, document, lat, lon)
    if isinstance(point, CadParseError):
        assert point.pointer.startswith("/locationComponent/1/locationByValue")
