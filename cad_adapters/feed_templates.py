"""Ready mappings for feed layouts that agencies actually publish (see ``docs/feeds.md``).

A template is only a starting point: ``dispatch feed add --template NAME --mapping
'{"fields": {...}}'`` replaces single fields (``null`` removes one), and the result
is checked against a sample of the live feed before it is stored.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

TEMPLATES: Final[Mapping[str, Mapping[str, Any]]] = {
    # PulsePoint's web-app feed once decoded: {"incidents": {"active": [...], "recent": [...]}}.
    # IDs are unique per agency only, dates may be missing ({} or "null"), coordinates are
    # strings with "0.0000000000" for "not disclosed", PublicLocation "1" marks a public place.
    "pulsepoint": {
        "items": "incidents.active",
        "fields": {
            "id": {"join": ["AgencyID", "ID"], "sep": "/"},
            "call_type_code": "PulsePointIncidentCallType",
            "received_at": {
                "path": "CallReceivedDateTime",
                "unknown": ["null"],
                "fallback": ["@first_seen"],
            },
            "lat": {"path": "Latitude", "unknown": [0]},
            "lon": {"path": "Longitude", "unknown": [0]},
            "address": {
                "path": "FullDisplayAddress",
                "fallback": ["MedicalEmergencyDisplayAddress"],
            },
            "place_type": {"path": "PublicLocation", "map": {"1": "public", "0": None}},
        },
    },
    # Socrata GeoJSON exports (e.g. Seattle's Real Time Fire 911 Calls, ….geojson): a
    # FeatureCollection whose coordinates are [lon, lat] and whose times are "floating"
    # (no zone: read in the agency's time zone).
    "socrata-geojson": {
        "items": "features",
        "fields": {
            "id": "properties.incident_number",
            "call_type_code": "properties.type",
            "call_type_text": "properties.type",
            "received_at": "properties.datetime",
            "lat": "geometry.coordinates.1",
            "lon": "geometry.coordinates.0",
            "address": "properties.address",
        },
    },
    # A plain JSON array whose items use the generic intake format's names.
    "json-array": {
        "items": "",
        "fields": {
            "id": "incident_id",
            "call_type_code": "call_type.code",
            "received_at": "received_at",
            "lat": "location.lat",
            "lon": "location.lon",
        },
    },
}


def template_mapping(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The named template with ``overrides`` applied (``fields`` merged one by one, a null
    field removed; other keys replaced). Raises KeyError for an unknown name."""
    mapping = copy.deepcopy(dict(TEMPLATES[name]))
    for key, value in (overrides or {}).items():
        if key == "fields" and isinstance(value, Mapping):
            fields = mapping["fields"]
            for field_name, spec in value.items():
                if spec is None:
                    fields.pop(field_name, None)
                else:
                    fields[field_name] = copy.deepcopy(spec)
        else:
            mapping[key] = copy.deepcopy(value)
    mapping["template"] = name
    return mapping
