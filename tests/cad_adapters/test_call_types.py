"""Default and agency-specific cardiac-arrest call-type rules."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cad_adapters.call_types import (
    DEFAULT,
    DEFAULT_CARDIAC_ARREST_CODES,
    CallTypeRules,
    is_cardiac_arrest_call,
)

from .conftest import sample_path


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        ("NCRCPRF", None, True),
        (" ncrcprf ", None, True),
        ("RESPARR", "Respiratory Arrest", True),
        ("MEDICAL||ILLNESS||CARDIAC_ARREST", None, True),
        ("medical||illness||cardiac_arrest", None, True),
        ("09-E-01", None, True),
        ("09-D-01", None, True),
        ("09E01", None, True),
        ("9-E-1", None, True),
        ("09D1", None, True),
        ("09-E-02A", None, True),
        ("ME", "EMD 09-E-01 not breathing", True),
        ("ME", "determinant 09E01", True),
        ("ME", "det:09-d-1", True),
        # Not matched: chest pain, AICD/AED alarms, other MPDS levels, look-alikes.
        ("CARDIAC", "Cardiac Related Event, Heart Attack, Chest Pain", None),
        ("ALRDEFIB", None, None),
        ("AED", "AED Alarm", None),
        ("ME", "Medical Emergency", None),
        ("09-B-01", None, None),
        ("09-O-01", None, None),
        ("10-D-01", None, None),
        ("ME", "unit 109E01 responding", None),
        ("ME", "9E1 MAIN ST", None),
        ("ME", "09E01X2 apt", None),
        ("", None, None),
        ("", "", None),
    ],
)
def test_default_rules(code: str, text: str | None, expected: bool | None) -> None:
    """Default codes and MPDS 09-D/09-E match; everything else is unknown (None), never False."""
    assert is_cardiac_arrest_call(code, text) is expected


def test_agency_rules_extend_defaults() -> None:
    """An agency can add exact codes, globs and text globs, and exclude codes (→ False)."""
    rules = DEFAULT.extend(
        codes=["CA", "arrest"],
        patterns=["CPR*", "32-D-?"],
        text_patterns=["*CARDIAC ARREST*"],
        excluded_codes=["RESPARR"],
        excluded_patterns=["09-D-*"],
    )
    assert is_cardiac_arrest_call("ca", None, rules) is True
    assert is_cardiac_arrest_call("ARREST", None, rules) is True
    assert is_cardiac_arrest_call("cpr-1", None, rules) is True
    assert is_cardiac_arrest_call("32-D-1", None, rules) is True
    assert is_cardiac_arrest_call("ME", "possible cardiac arrest", rules) is True
    assert is_cardiac_arrest_call("RESPARR", None, rules) is False
    assert is_cardiac_arrest_call("09-D-01", None, rules) is False
    assert is_cardiac_arrest_call("NCRCPRF", None, rules) is True
    assert is_cardiac_arrest_call("CARDIAC", None, rules) is None
    # The defaults themselves are unchanged.
    assert is_cardiac_arrest_call("CA", None) is None


def test_rules_without_defaults_or_mpds() -> None:
    """Rules built from scratch match only what they list."""
    rules = CallTypeRules(codes=frozenset({"CPR"}), mpds=False)
    assert is_cardiac_arrest_call("cpr", None, rules) is True
    assert is_cardiac_arrest_call("NCRCPRF", None, rules) is None
    assert is_cardiac_arrest_call("09-E-01", "09E01", rules) is None


def test_default_codes_constant() -> None:
    """The exported default code set holds the three standard codes."""
    assert frozenset({"NCRCPRF", "RESPARR", "MEDICAL||ILLNESS||CARDIAC_ARREST"}) == (
        DEFAULT_CARDIAC_ARREST_CODES
    )


def test_eido_registry_matches_only_cpr_and_respiratory_arrest() -> None:
    """Of the 247 EIDO/APCO common incident types, exactly NCRCPRF and RESPARR match."""
    path = sample_path("eido/eido_incident_type_common_registry_apco_2.103.2.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 247
    matched = {r["code"] for r in rows if is_cardiac_arrest_call(r["code"], r["description"])}
    assert matched == {"NCRCPRF", "RESPARR"}


def test_neris_value_set_matches_only_cardiac_arrest() -> None:
    """Of the NERIS incident types, only MEDICAL||ILLNESS||CARDIAC_ARREST matches."""
    path = sample_path("neris/type_incident.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert header[1:4] == ["value_1", "value_2", "value_3"]
    codes = {"||".join(v for v in row[1:4] if v) for row in body}
    matched = {c for c in codes if is_cardiac_arrest_call(c, None)}
    assert matched == {"MEDICAL||ILLNESS||CARDIAC_ARREST"}


@given(code=st.text(max_size=20), text=st.none() | st.text(max_size=40))
def test_never_false_by_default(code: str, text: str | None) -> None:
    """With the default rules the answer is True or None, never False (unknown never alerts)."""
    assert is_cardiac_arrest_call(code, text) in (True, None)
