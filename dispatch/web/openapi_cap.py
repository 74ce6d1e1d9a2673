"""The CAP intake's part of the OpenAPI document (merged by ``dispatch.web.openapi``)."""

from __future__ import annotations

from typing import Any

_STATUSES = ["created", "updated", "unchanged", "stale", "cancelled", "conflict"]


def cap_operation(operation: dict[str, Any]) -> dict[str, Any]:
    """The generic intake operation, with what CAP adds: envelopes and pinned signatures."""
    operation["description"] += (
        " An EDXL-DE envelope is read whole before any alert is stored and answers one "
        "result per alert. When the agency pins a CAP signing certificate, every alert must "
        "carry an enveloped ds:Signature covering the whole alert made with its key; "
        "otherwise 422 `/problems/cap-signature`."
    )
    operation["responses"]["202"] = {
        "description": "Accepted: one result, or one per alert of an envelope",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/IntakeResult"},
                        {"$ref": "#/components/schemas/EnvelopeIntakeResult"},
                    ]
                }
            }
        },
    }
    return operation


def cap_schemas() -> dict[str, Any]:
    return {
        "EnvelopeIntakeResult": {
            "type": "object",
            "required": ["envelope", "incidents"],
            "properties": {
                "envelope": {"const": "EDXL-DE"},
                "distribution_id": {"type": ["string", "null"]},
                "incidents": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["source_incident_id", "status"],
                        "properties": {
                            "source_incident_id": {"type": "string"},
                            "incident_id": {"type": "string", "format": "uuid"},
                            "status": {"enum": _STATUSES},
                            "alerts_queued": {"type": "integer", "minimum": 0},
                            "detail": {
                                "type": "string",
                                "description": "Why a conflicting alert was not stored",
                            },
                        },
                    },
                },
            },
        }
    }
