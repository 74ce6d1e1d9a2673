"""The console's part of the OpenAPI document: the live board and scene (API), the console's
session, event stream and static pages (merged by ``dispatch.web.openapi``)."""

from __future__ import annotations

from typing import Any

from dispatch.web.openapi_common import (
    AGENCY,
    AUTH_ERRORS,
    json_request,
    json_response,
    operation,
    path_uuid,
    problem,
)

_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
_CSRF = {"403": problem("The console session's X-CSRF-Token header is missing or wrong")}
CONSOLE_SECURITY = {
    "type": "apiKey",
    "in": "cookie",
    "name": "dispatch_console",
    "description": (
        "The console's session cookie (from POST /console/session). Accepted wherever a "
        "supervisor token is, for that supervisor's agency; a request that changes anything "
        "must also send the session's X-CSRF-Token header."
    ),
}


def console_paths() -> dict[str, Any]:
    html = {"200": {"description": "The page", "content": {"text/html": {}}}}
    return {
        "/v1/agencies/{agency_id}/board": {
            "get": operation(
                "The live board: active incidents, their volunteers' answers and EMS units",
                {"200": json_response("Board", "Active incidents, newest first (at most 200)")},
                security=("supervisorToken", "consoleSession"),
                parameters=[AGENCY],
            )
        },
        "/v1/incidents/{incident_id}/scene": {
            "get": operation(
                "An incident's map: patient, waves, anonymised responders, AEDs, EMS units",
                {"200": json_response("Scene", "The scene")},
                security=("agencyKey", "supervisorToken", "consoleSession"),
                parameters=[path_uuid("incident_id", "The incident")],
                description=(
                    "Responders are labelled V1, V2, … in the order they were alerted. A "
                    "responder's position is given only while they are on the way (accepted "
                    "or en route) to an active incident."
                ),
            )
        },
        "/console/session": {
            "post": operation(
                "Sign in to the console with a supervisor token (sets the session cookie)",
                {"201": json_response("ConsoleSession", "Signed in"), **AUTH_ERRORS},
                body=json_request("ConsoleSignIn"),
                description=(
                    "The cookie is HttpOnly, SameSite=Strict, and Secure when the service's "
                    "public URL is https. The session ends after DISPATCH_CONSOLE_IDLE_S "
                    "without use, or DISPATCH_CONSOLE_MAX_AGE_S after sign-in."
                ),
            ),
            "get": operation(
                "The signed-in supervisor and the session's CSRF token",
                {"200": json_response("ConsoleSession", "The session")},
                security="consoleSession",
            ),
            "delete": operation(
                "Sign out (ends the session, clears the cookie)",
                {"204": {"description": "Signed out"}, **_CSRF},
                security="consoleSession",
            ),
        },
        "/console/events": {
            "get": operation(
                "The live board as server-sent events",
                {
                    "200": {
                        "description": (
                            "`event: board` with a Board at once and after every change; "
                            "`event: end` when the session or the stream's time is up (the "
                            "browser reconnects)"
                        ),
                        "content": {"text/event-stream": {}},
                    }
                },
                security="consoleSession",
            )
        },
        "/console/": {"get": operation("The console's page", html)},
        "/console/{asset}": {
            "get": operation(
                "The console's scripts, styles and images",
                {"200": {"description": "The file", "content": {"*/*": {}}}},
                parameters=[
                    {
                        "name": "asset",
                        "in": "path",
                        "required": True,
                        "description": "A file name, e.g. app.js",
                        "schema": {"type": "string", "maxLength": 100},
                    }
                ],
            )
        },
    }


def _counts() -> dict[str, Any]:
    n = {"type": "integer", "minimum": 0}
    return {
        "type": "object",
        "required": ["alerted", "accepted", "en_route", "on_scene"],
        "properties": {
            "alerted": {**n, "description": "Volunteers alerted, in every wave"},
            "accepted": {**n, "description": "Of them, who accepted (whatever came after)"},
            "en_route": {**n, "description": "On the way now"},
            "on_scene": {**n, "description": "Arrived"},
        },
    }


def console_schemas() -> dict[str, Any]:
    call_type = {
        "type": "object",
        "required": ["code"],
        "properties": {"code": {"type": "string"}, "text": {"type": ["string", "null"]}},
    }
    unit = {
        "type": "object",
        "required": ["unit_id", "status"],
        "properties": {
            "unit_id": {"type": "string"},
            "status": {"type": "string"},
            "status_at": _MAYBE_TIME,
        },
    }
    # What the board's row and the scene's header both start with (store.board's _summary).
    summary = {
        "incident_id": {"type": "string", "format": "uuid"},
        "source_incident_id": {"type": "string"},
        "call_type": call_type,
        "address": {"type": ["string", "null"]},
        "received_at": _TIME,
        "state": {"type": "string"},
        "is_test": {"type": "boolean"},
    }
    active = {
        "type": "object",
        "required": ["incident_id", "call_type", "received_at", "state", "volunteers", "units"],
        "properties": {
            **summary,
            "is_cardiac_arrest": {"type": ["boolean", "null"]},
            "volunteers": _counts(),
            "units": {"type": "array", "items": unit},
        },
    }
    point = {
        "type": "object",
        "required": ["lat", "lon"],
        "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
    }
    responder = {
        "type": "object",
        "required": ["marker", "role", "state", "alerted_distance_m", "position"],
        "properties": {
            "marker": {"type": "string", "description": "V1, V2, … in alert order"},
            "alert_id": {"type": "string", "format": "uuid"},
            "wave": {"type": "integer"},
            "role": {"type": "string"},
            "state": {"type": "string"},
            "alerted_distance_m": {"type": "integer", "description": "When alerted"},
            "aed_id": {"type": ["integer", "null"]},
            "position": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["lat", "lon", "distance_m"],
                        "properties": {
                            "lat": {"type": "number"},
                            "lon": {"type": "number"},
                            "distance_m": {"type": "integer"},
                        },
                    },
                    {"type": "null"},
                ]
            },
        },
    }
    return {
        "Board": {
            "type": "object",
            "required": ["agency_id", "now", "incidents"],
            "properties": {
                "agency_id": {"type": "string", "format": "uuid"},
                "now": _TIME,
                "incidents": {"type": "array", "items": active},
            },
        },
        "Scene": {
            "type": "object",
            "required": ["incident_id", "location", "waves", "responders", "aeds", "units"],
            "properties": {
                **summary,
                "status": {"type": "string"},
                "location": {"oneOf": [point, {"type": "null"}]},
                "waves": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "wave": {"type": "integer"},
                            "radius_m": {"type": "number"},
                            "started_at": _TIME,
                        },
                    },
                },
                "responders": {"type": "array", "items": responder},
                "aeds": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "aed_id": {"type": "integer"},
                            "name": {"type": "string"},
                            "lat": {"type": "number"},
                            "lon": {"type": "number"},
                            "distance_m": {"type": "integer"},
                        },
                    },
                },
                "units": {"type": "array", "items": unit},
            },
        },
        "ConsoleSignIn": {
            "type": "object",
            "required": ["token"],
            "additionalProperties": False,
            "properties": {
                "token": {"type": "string", "minLength": 1, "maxLength": 512},
            },
            "examples": [{"token": "dsv_3q2-7wXbYcZ0a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTu"}],
        },
        "ConsoleSession": {
            "type": "object",
            "required": ["agency_id", "supervisor_id", "csrf_token", "idle_expires_at"],
            "properties": {
                "agency_id": {"type": "string", "format": "uuid"},
                "supervisor_id": {"type": "integer"},
                "supervisor_name": {"type": "string"},
                "csrf_token": {
                    "type": "string",
                    "description": "Send as X-CSRF-Token with every request that changes data",
                },
                "idle_expires_at": _TIME,
                "expires_at": _TIME,
            },
        },
    }
