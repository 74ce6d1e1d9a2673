"""normalize(parse(x)) is stable when the same document is serialized differently."""

from __future__ import annotations

import json
import random
from typing import Any

from defusedxml import ElementTree as SafeET
from hypothesis import given, settings
from hypothesis import strategies as st

from cad_adapters.cap import parse_cap
from cad_adapters.eido import parse_eido
from cad_adapters.generic import parse_generic
from tests.cad_adapters.conftest import fixture_json
from tests.cad_adapters.test_cap import alert


def _shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in a different order."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: _shuffled(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _reserialized(document: Any, seed: int, indent: int | None, ascii_only: bool) -> bytes:
    rng = random.Random(seed)
    return json.dumps(_shuffled(document, rng), indent=indent, ensure_ascii=ascii_only).encode()


layouts = dict(
    seed=st.integers(0, 2**32 - 1),
    indent=st.none() | st.integers(0, 4),
    ascii_only=st.booleans(),
)


@settings(max_examples=40, deadline=None)
@given(**layouts)
def test_eido_is_stable_under_reserialization(
    seed: int, indent: int | None, ascii_only: bool
) -> None:
    """Key order, indentation and escaping do not change the parsed EIDO."""
    document = fixture_json("eido_cardiac_arrest.json")
    assert parse_eido(_reserialized(document, seed, indent, ascii_only)) == parse_eido(document)


@settings(max_examples=40, deadline=None)
@given(**layouts)
def test_generic_is_stable_under_reserialization(
    seed: int, indent: int | None, ascii_only: bool
) -> None:
    """The generic format parses the same whatever the JSON layout."""
    document = {
        "incident_id": "G-1",
        "call_type": {"code": "09-E-01", "text": "Hartstilstand – reanimatie"},
        "received_at": "2026-11-26T10:00:00+01:00",
        "location": {"lat": 52.37, "lon": 4.89, "uncertainty_m": 5},
        "units": [{"unit_id": "A1", "status": "en_route", "at": "2026-11-26T10:01:00+01:00"}],
        "address": "Straße 1",
    }
    assert parse_generic(_reserialized(document, seed, indent, ascii_only)) == parse_generic(
        document
    )


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["Alert", "Update", "Cancel"]), st.booleans())
def test_cap_is_stable_under_xml_reserialization(msg_type: str, declaration: bool) -> None:
    """Re-serializing the CAP XML (namespace prefixes, declaration) parses to the same report."""
    refs = "cad@psap.example.org,CA-0000,2024-03-05T09:00:00+01:00" if msg_type != "Alert" else None
    original = alert(msg_type=msg_type, references=refs)
    root = SafeET.fromstring(original)
    again = SafeET.tostring(root, encoding="utf-8", xml_declaration=declaration)
    assert parse_cap(again) == parse_cap(original)
