"""Shared helpers for the cad_adapters tests.

The public sample documents live outside the repository, in
``../shared/cad_samples/`` next to the project root; their licences forbid copying
them in, so tests that need them skip with a reason when they are absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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


def fixture_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES_DIR / name).read_text(encoding="utf-8"))
    return data
