"""The one time-zone reader: known zones as themselves, anything else refused by name."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from dispatch.domain.agency_settings import validate_settings
from dispatch.domain.field_error import FieldError
from dispatch.domain.time_zones import (
    AgencyZoneUnknown,
    UnknownTimeZone,
    agency_time_zone,
    time_zone,
)
from dispatch.domain.volunteer_settings import validate_volunteer_settings


def test_a_known_zone_is_that_zone() -> None:
    summer = datetime(2026, 7, 1, 12, tzinfo=UTC)
    assert summer.astimezone(time_zone("Europe/Amsterdam")).hour == 14


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd", "/abs", "Europe", 7, None])
def test_anything_else_is_refused_never_read_as_utc(name: object) -> None:
    with pytest.raises(UnknownTimeZone) as refused:
        time_zone(name, pointer="/agency/time_zone")
    assert refused.value.pointer == "/agency/time_zone"
    assert "IANA" in refused.value.detail


def test_agency_and_volunteer_settings_refuse_with_the_same_field_error() -> None:
    for validate in (validate_settings, validate_volunteer_settings):
        with pytest.raises(FieldError) as agency:
            validate({"time_zone": "Mars/Olympus"})
        assert agency.value.pointer == "/time_zone"


def test_a_stored_agency_zone_unknown_here_is_refused_naming_the_agency_and_value() -> None:
    agency_id = uuid4()
    assert agency_time_zone(agency_id, "Europe/Amsterdam").key == "Europe/Amsterdam"
    for stored in ("Mars/Olympus", None):
        with pytest.raises(AgencyZoneUnknown) as refused:
            agency_time_zone(agency_id, stored)
        assert (refused.value.agency_id, refused.value.name) == (agency_id, stored)
        # Not an input error: no handler may answer it as a 422 on the request's fields.
        assert not isinstance(refused.value, FieldError)
