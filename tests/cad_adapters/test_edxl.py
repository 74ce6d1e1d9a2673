"""EDXL-DE 1.0 envelopes: the CAP alerts inside are read, anything else is refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cad_adapters.cap_document import read_cap
from cad_adapters.errors import CadParseError

from .conftest import FIXTURES_DIR, sample_bytes

FIXTURE = FIXTURES_DIR / "edxlde_two_alerts.xml"
DE = "urn:oasis:names:tc:emergency:EDXL:DE:1.0"
CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
ALERT = (
    f'<alert xmlns="{CAP12}"><identifier>E-1</identifier><sender>s@example.org</sender>'
    "<sent>2026-02-03T14:04:00+11:00</sent><status>Actual</status><msgType>Alert</msgType>"
    "<scope>Public</scope><info><event>Cardiac arrest</event><area><areaDesc>Here</areaDesc>"
    "<circle>-33.86,151.2 0.01</circle></area></info></alert>"
)


def envelope(*contents: str, status: str = "Actual", ns: str = DE) -> bytes:
    objects = "".join(f"<contentObject>{c}</contentObject>" for c in contents)
    return (
        f'<EDXLDistribution xmlns="{ns}"><distributionID>D-1</distributionID>'
        f"<distributionStatus>{status}</distributionStatus>{objects}</EDXLDistribution>"
    ).encode()


def embedded(xml: str) -> str:
    return f"<xmlContent><embeddedXMLContent>{xml}</embeddedXMLContent></xmlContent>"


def test_fixture_envelope_gives_one_report_per_alert() -> None:
    """The NSW-RFS-layout fixture: both alerts, in order, each its own incident; the envelope's
    processing instruction, comment and prefixes change nothing."""
    document = read_cap(FIXTURE.read_bytes(), default_tz=UTC)
    assert document.envelope == "EDXL-DE"
    assert document.distribution_id == "fixture-distribution-0001"
    assert document.signature == "not_checked"
    first, second = document.reports
    assert first.source_incident_id == "alerts@fire.example.org/fixture-2026-0203-001"
    assert (first.call_type.code, first.call_type.scheme) == ("cardiacArrest", "CDNevent")
    assert first.location is not None
    assert (first.location.lat, first.location.lon) == (-33.8688, 151.2093)
    assert first.received_at == datetime(2026, 2, 3, 3, 4, tzinfo=UTC)
    assert second.source_incident_id == "alerts@fire.example.org/fixture-2026-0203-002"
    assert second.location_source == "cap:polygon-centroid"
    assert (first.is_test, second.is_test) == (False, False)


def test_bare_alert_is_not_an_envelope() -> None:
    document = read_cap(ALERT.encode(), default_tz=UTC)
    assert (document.envelope, len(document.reports)) == (None, 1)


@pytest.mark.parametrize("status", ["Exercise", "System", "Test"])
def test_non_actual_envelope_makes_every_alert_a_test(status: str) -> None:
    """An exercise envelope never alerts, even around alerts marked Actual."""
    document = read_cap(envelope(embedded(ALERT), status=status), default_tz=UTC)
    assert [r.is_test for r in document.reports] == [True]


BAD_ALERT = ALERT.replace("<sent>2026-02-03T14:04:00+11:00</sent>", "<sent>soon</sent>")
OBJ2 = "/EDXLDistribution/contentObject[2]"


@pytest.mark.parametrize(
    ("document", "pointer", "detail"),
    [
        (envelope(embedded(ALERT), "<nonXMLContent><uri>http://x</uri></nonXMLContent>"),
         f"{OBJ2}/nonXMLContent", "only CAP alerts embedded as XML"),
        (envelope(embedded(ALERT), "<xmlContent><keyXMLContent>x</keyXMLContent>"
                  f"<embeddedXMLContent>{ALERT}</embeddedXMLContent></xmlContent>"),
         f"{OBJ2}/xmlContent/keyXMLContent", "whole embedded CAP alert"),
        (envelope(embedded(ALERT), embedded('<feed xmlns="http://www.w3.org/2005/Atom"/>')),
         f"{OBJ2}/xmlContent/embeddedXMLContent", "only CAP alerts"),
        (envelope(embedded(ALERT + ALERT)), "/EDXLDistribution/contentObject[1]/xmlContent/"
         "embeddedXMLContent", "exactly one embedded document, found 2"),
        (envelope(embedded("")), "/EDXLDistribution/contentObject[1]/xmlContent/"
         "embeddedXMLContent", "found 0"),
        (envelope("<contentDescription>nothing</contentDescription>"),
         "/EDXLDistribution/contentObject[1]", "one xmlContent"),
        (envelope(), "/EDXLDistribution", "no contentObject"),
        (envelope(embedded(ALERT), status="Rumour"), "/EDXLDistribution/distributionStatus",
         "Actual"),
        (envelope(embedded(ALERT), ns="urn:oasis:names:tc:emergency:EDXL:DE:2.0"), "",
         "only EDXL-DE 1.0"),
        (envelope(embedded(ALERT), embedded(BAD_ALERT)),
         f"{OBJ2}/xmlContent/embeddedXMLContent/alert/sent", ""),
    ],
)  # fmt: skip
def test_anything_but_embedded_cap_is_refused(document: bytes, pointer: str, detail: str) -> None:
    """Links, keyed content, other documents, empty or broken envelopes are refused whole,
    with a pointer naming the content object."""
    with pytest.raises(CadParseError) as info:
        read_cap(document, default_tz=UTC)
    assert info.value.pointer == pointer
    assert detail in info.value.detail


def test_too_many_alerts_are_refused() -> None:
    with pytest.raises(CadParseError, match="at most 250"):
        read_cap(envelope(*[embedded(ALERT)] * 251), default_tz=UTC)


def test_hostile_envelope_is_refused_before_unwrapping() -> None:
    """An entity declared in the envelope never reaches an embedded alert."""
    hostile = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + envelope(embedded(ALERT.replace("E-1", "&x;")))
    )
    with pytest.raises(CadParseError, match="DTD"):
        read_cap(hostile, default_tz=UTC)


def test_shared_nsw_rfs_envelope() -> None:
    """The published NSW RFS envelope (shared sample): all seven alerts are read."""
    document = read_cap(sample_bytes("cap/google_bushfire_valid.edxlde"), default_tz=UTC)
    assert len(document.reports) == 7
    assert document.distribution_id == "RFSuniqueID12345"
    assert len({r.source_incident_id for r in document.reports}) == 7
    assert all(r.agency_id == "webmaster@rfs.nsw.gov.au" for r in document.reports)


def test_shared_invalid_nsw_rfs_envelope_names_the_broken_alert() -> None:
    """The invalid variant (second alert cut short) is refused whole, naming that alert."""
    with pytest.raises(CadParseError) as info:
        read_cap(sample_bytes("cap/google_bushfire_invalid.edxlde"), default_tz=UTC)
    assert info.value.pointer.startswith(f"{OBJ2}/xmlContent/embeddedXMLContent/alert/")
