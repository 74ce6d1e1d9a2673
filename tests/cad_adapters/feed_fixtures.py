"""Recorded feed documents and the Dallas mapping, shared by the mapping, CLI and poller tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"

# Dallas' active-calls snapshot: no coordinates, one time for the whole document.
DALLAS = {
    "items": "incidents",
    "document_time": "$.summary.generated_at",
    "fields": {
        "id": "incident_number",
        "call_type_code": "nature_of_call",
        "received_at": "@document_time",
        "address": {"join": ["block", "location"], "sep": " ", "partial": True},
    },
}


def feed_fixture(name: str) -> Any:
    """A recorded feed document from ``fixtures/feeds``, parsed."""
    return json.loads((FIXTURES / name).read_text())
