"""The polled feeds' part of the OpenAPI document (merged by ``dispatch.web.openapi``)."""

from __future__ import annotations

from typing import Any

from dispatch.web.openapi_common import AGENCY, SUPERVISOR, json_response, operation

_TIME = {"type": ["string", "null"], "format": "date-time"}
_RESULTS = [
    "ok",
    "not_modified",
    "fetch_failed",
    "refused_document",
    "all_items_refused",
    "bad_mapping",
    "bad_time_zone",
]


def feed_paths() -> dict[str, Any]:
    return {
        "/v1/agencies/{agency_id}/feeds": {
            "get": operation(
                "The agency's polled CAD feeds and their health",
                {"200": json_response("FeedList", "Every feed of the agency")},
                security=SUPERVISOR,
                parameters=[AGENCY],
                description=(
                    "A poll fails when the feed cannot be fetched, its document is refused, "
                    "or every item in it is refused; `consecutive_failures` counts them."
                ),
            )
        }
    }


def feed_schemas() -> dict[str, Any]:
    refused = {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "description": "Position in the feed's list"},
            "incident_id": {"type": ["string", "null"], "description": "When it was readable"},
            "pointer": {"type": "string", "description": "JSON Pointer of the refused value"},
            "detail": {"type": "string"},
        },
    }
    health = {
        "type": "object",
        "required": ["feed_id", "name", "status", "consecutive_failures"],
        "properties": {
            "feed_id": {"type": "integer"},
            "name": {"type": "string"},
            "url": {"type": "string", "description": "Without credentials or query string"},
            "enabled": {"type": "boolean"},
            "interval_s": {"type": "number"},
            "status": {"enum": ["pending", "ok", "failing"]},
            "last_poll_at": _TIME,
            "last_ok_at": {**_TIME, "description": "The last successful poll"},
            "last_result": {"enum": [*_RESULTS, None]},
            "consecutive_failures": {"type": "integer", "minimum": 0},
            "last_error": {"type": ["string", "null"]},
            "items_seen": {
                "type": ["integer", "null"],
                "description": "Items in the last document read (null: none was read)",
            },
            "items_refused": {"type": ["integer", "null"]},
            "refused": {
                "type": "array",
                "items": refused,
                "description": "The last document's refused items (at most 20)",
            },
            "next_poll_at": _TIME,
        },
    }
    return {
        "FeedHealth": health,
        "FeedList": {
            "type": "object",
            "required": ["feeds"],
            "properties": {
                "feeds": {"type": "array", "items": {"$ref": "#/components/schemas/FeedHealth"}}
            },
        },
    }
