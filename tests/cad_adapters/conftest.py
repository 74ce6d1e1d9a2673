"""Shared helpers for the cad_adapters tests.

The public sample documents live outside the repository, in
``../shared/cad_samples/`` next to the project root; their licences forbid copying
them in, so tests that need them skip with a reason when they are absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cad_adapters.errors import CadParseError
from cad_adapters.models import Coordinates, IncidentReport

SAMPLES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "cad_samples"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


def sample_path(relative: str) -> Path:
    """Path of a shared sample, or skip the calling test when it is not there."""
    path = SAMPLES_DIR / relative
    if not path.is_file():
        pytest.skip(f"shared CAD sample {relative} not found under {SAMPLES_DIR}")
    return path


def sample_bytes(relative: str) -> bytes:
    return sample_path(relative).read_bytes()


def parsed_point(
    parse: Callable[[Any], IncidentReport], document: Any, lat: float, lon: float
) -> Coordinates | CadParseError | None:
    """Parses a document placed at (lat, lon) and checks the rule every format keeps: out of
    range is a CadParseError (returned, for its pointer), (0, 0) means no location (None),
    any other point is the location (returned)."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        with pytest.raises(CadParseError) as info:
            parse(document)
        return info.value
    location = parse(document).location
    if abs(lat) < 1e-9 and abs(lon) < 1e-9:
        assert location is None
        return None
    assert location is not None
    assert (location.lat, location.lon) == (lat, lon)
    return location


def fixture_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES_DIR / name).read_text(encoding="utf-8"))
    return data
