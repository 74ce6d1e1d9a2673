"""The OpenAPI 3.1 description of the HTTP API. A test keeps it in step with the router."""

from __future__ import annotations

from functools import cache
from typing import Any

from cad_adapters.generic import schema as generic_schema
from dispatch.web.openapi_delivery import delivery_paths, delivery_schemas


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _path_id(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "format": "uuid"},
    }


# Every authenticated route reads the database, so each may also answer 503.
_AUTH_ERRORS = {
    "401": _problem("Missing or invalid bearer token"),
    "503": _problem("The database is overloaded or down; send again after Retry-After seconds"),
}
_BODY_ERRORS = {
    "400": _problem("Malformed JSON, NaN, or nesting too deep"),
    "413": _problem("Body larger than 1 MiB"),
    "415": _problem("Body is not application/json"),
    "422": _problem("A field is missing, of the wrong type or out of range; `pointer` names it"),
}


def _intake_operation(summary: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": (
            "Idempotent by (agency, source, incident id) and ordered by the source's own "
            "version or update time: a replay answers `unchanged`, an older snapshot `stale`; "
            "neither changes anything. Optional body signature: header `Dispatch-Signature: "
            "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.' + body, keyed with SHA-256 of the "
            "integration key>`, valid 5 minutes, each usable once."
        ),
        "parameters": [
            _path_id("agency_id", "The agency the key belongs to"),
            {
                "name": "Dispatch-Signature",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            },
        ],
        "security": [{"agencyKey": []}],
        "requestBody": {"required": True, "content": content},
        "responses": {
            "202": _json("IntakeResult", "Accepted (or recognised as a replay or stale)"),
            "409": _problem("Same version with different content, or a replayed signature"),
            "429": _problem("The agency's rate limit; see Retry-After"),
            **_AUTH_ERRORS,
            **_BODY_ERRORS,
        },
    }


@cache
def openapi_document() -> dict[str, Any]:
    incident = generic_schema()
    incident = {k: v for k, v in incident.items() if not k.startswith("$")}
    answer = {
        "parameters": [_path_id("alert_id", "The alert, as sent in the push data")],
        "security": [{"volunteerToken": []}],
        "responses": {
            "200": _json("AlertAnswer", "The alert's state after the answer"),
            "404": _problem("No such alert for this volunteer"),
            "409": _problem("The alert's state does not allow this answer; `state` gives it"),
            **_AUTH_ERRORS,
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CPR volunteer dispatch",
            "version": "1",
            "description": "CAD intake, volunteer positions and answers, incident timelines.",
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "The process is up",
                    "responses": {"200": {"description": "Alive"}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Database reachable and workers alive",
                    "responses": {
                        "200": {"description": "Ready"},
                        "503": _problem("Not ready; `checks` says why"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text exposition format)",
                    "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}},
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI document"}},
                }
            },
            "/v1/schemas/generic-incident.v1.json": {
                "get": {
                    "summary": "JSON Schema of the generic incident document",
                    "responses": {"200": {"description": "JSON Schema (draft 2020-12)"}},
                }
            },
            "/v1/cad/{agency_id}/incidents": {
                "post": _intake_operation(
                    "Submit a full incident snapshot from a CAD (generic JSON v1)",
                    {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/GenericIncident"}
                        }
                    },
                )
            },
            "/v1/cad/{agency_id}/eido": {
                "post": _intake_operation(
                    "Submit a NENA EIDO 1.0 (NENA-STA-021) JSON document: a full snapshot",
                    {"application/json": {"schema": {"type": "object"}}},
                )
            },
            "/v1/cad/{agency_id}/cap": {
                "post": _intake_operation(
                    "Submit an OASIS CAP 1.2 alert (Alert, Update or Cancel)",
                    {
                        media: {"schema": {"type": "string"}}
                        for media in ("application/xml", "text/xml", "application/cap+xml")
                    },
                )
            },
            "/v1/me/location": {
                "put": {
                    "summary": "Report the volunteer's last known position",
                    "description": "Only the latest position is kept; it is purged when stale.",
                    "security": [{"volunteerToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Fix"}}
                        },
                    },
                    "responses": {
                        "204": {"description": "Stored"},
                        **_AUTH_ERRORS,
                        **_BODY_ERRORS,
                    },
                }
            },
            "/v1/agencies/{agency_id}/volunteers": {
                "post": {
                    "summary": "Register a volunteer (supervisor); the token is shown once",
                    "parameters": [_path_id("agency_id", "The supervisor's agency")],
                    "security": [{"supervisorToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/NewVolunteer"}
                            }
                        },
                    },
                    "responses": {
                        "201": _json("VolunteerCreated", "Created"),
                        **_AUTH_ERRORS,
                        **_BODY_ERRORS,
                    },
                }
            },
            "/v1/agencies/{agency_id}/volunteers/{volunteer_id}": {
                method: {
                    "summary": summary,
                    "parameters": [
                        _path_id("agency_id", "The supervisor's agency"),
                        {
                            "name": "volunteer_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        },
                    ],
                    "security": [{"supervisorToken": []}],
                    **(
                        {
                            "requestBody": {
                                "required": True,
                                "content": {
                                    "application/json": {
                                        "schema": {"$ref": "#/components/schemas/VolunteerSettings"}
                                    }
                                },
                            }
                        }
                        if method == "patch"
                        else {}
                    ),
                    "responses": {
                        "200": _json("VolunteerSettings", "The volunteer's settings"),
                        "404": _problem("No such volunteer in this agency"),
                        **_AUTH_ERRORS,
                        **(_BODY_ERRORS if method == "patch" else {}),
                    },
                }
                for method, summary in (
                    ("get", "A volunteer's eligibility settings"),
                    (
                        "patch",
                        "Change tier, certificate expiry, duty, quiet hours, daily budget, "
                        "tester enrolment or availability",
                    ),
                )
            },
            "/v1/agencies/{agency_id}/settings": {
                "get": {
                    "summary": "The agency's alerting parameters and intake rules",
                    "parameters": [_path_id("agency_id", "The supervisor's agency")],
                    "security": [{"supervisorToken": []}],
                    "responses": {
                        "200": _json("AgencySettings", "Current settings"),
                        **_AUTH_ERRORS,
                    },
                },
                "patch": {
                    "summary": "Change some settings; the others stay",
                    "parameters": [_path_id("agency_id", "The supervisor's agency")],
                    "security": [{"supervisorToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/AgencySettings"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json("AgencySettings", "Settings after the change"),
                        **_AUTH_ERRORS,
                        **_BODY_ERRORS,
                    },
                },
            },
            "/v1/alerts/{alert_id}": {
                "get": {
                    "summary": "The volunteer's alert now: state, role, patient, AED to fetch",
                    "parameters": [_path_id("alert_id", "The alert, as sent in the push data")],
                    "security": [{"volunteerToken": []}],
                    "responses": {
                        "200": {"description": "The alert"},
                        "404": _problem("No such alert for this volunteer"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/agencies/{agency_id}/aeds": {
                "get": {
                    "summary": "The agency's AED registry",
                    "parameters": [_path_id("agency_id", "The supervisor's agency")],
                    "security": [{"supervisorToken": []}],
                    "responses": {"200": {"description": "AEDs"}, **_AUTH_ERRORS},
                },
                "post": {
                    "summary": "Import AEDs from CSV or GeoJSON (insert or update by id)",
                    "parameters": [_path_id("agency_id", "The supervisor's agency")],
                    "security": [{"supervisorToken": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"text/csv": {}, "application/geo+json": {}},
                    },
                    "responses": {
                        "200": {"description": "How many AEDs were imported"},
                        **_AUTH_ERRORS,
                        **_BODY_ERRORS,
                    },
                },
            },
            "/v1/agencies/{agency_id}/rejected-documents": {
                "get": {
                    "summary": "CAD documents the intake refused, newest first, kept for audit",
                    "parameters": [
                        _path_id("agency_id", "The supervisor's agency"),
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                        {
                            "name": "before",
                            "in": "query",
                            "description": "Only documents with a smaller id (the next page)",
                            "schema": {"type": "integer", "minimum": 1},
                        },
                    ],
                    "security": [{"supervisorToken": []}],
                    "responses": {
                        "200": {"description": "Refused documents with status and reason"},
                        "400": _problem("A query parameter is invalid"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/alerts/{alert_id}/accept": {
                "post": {"summary": "The volunteer is going", **answer}
            },
            "/v1/alerts/{alert_id}/decline": {
                "post": {"summary": "The volunteer cannot go", **answer}
            },
            "/v1/alerts/{alert_id}/en-route": {
                "post": {"summary": "The volunteer is on the way", **answer}
            },
            "/v1/alerts/{alert_id}/arrived": {
                "post": {"summary": "The volunteer reached the patient", **answer}
            },
            "/v1/alerts/{alert_id}/cancel": {
                "post": {"summary": "The volunteer drops out; the slot is refilled", **answer}
            },
            "/v1/incidents/{incident_id}/metrics": {
                "get": {
                    "summary": "Response times from the log: alert, accept, volunteer and EMS",
                    "parameters": [_path_id("incident_id", "The incident")],
                    "security": [{"agencyKey": []}, {"supervisorToken": []}],
                    "responses": {
                        "200": {"description": "Seconds from CAD receipt; null until it happened"},
                        "404": _problem("No such incident for this agency"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/v1/agencies/{agency_id}/policy": {
                "get": {
                    "summary": "The agency's current alert policy (waves, target, caps)",
                    "parameters": [_path_id("agency_id", "The supervisor's agency")],
                    "security": [{"supervisorToken": []}],
                    "responses": {"200": {"description": "Policy and version"}, **_AUTH_ERRORS},
                },
                "put": {
                    "summary": "Store a new policy version; running incidents keep theirs",
                    "parameters": [_path_id("agency_id", "The supervisor's agency")],
                    "security": [{"supervisorToken": []}],
                    "requestBody": {"required": True, "content": {"application/json": {}}},
                    "responses": {
                        "200": {"description": "The stored policy and its version"},
                        **_AUTH_ERRORS,
                        **_BODY_ERRORS,
                    },
                },
            },
            "/v1/incidents/{incident_id}/timeline": {
                "get": {
                    "summary": "The incident's response log, in order",
                    "parameters": [_path_id("incident_id", "The incident")],
                    "security": [{"agencyKey": []}, {"supervisorToken": []}],
                    "responses": {
                        "200": _json("Timeline", "Events ordered by time"),
                        "404": _problem("No such incident for this agency"),
                        **_AUTH_ERRORS,
                    },
                }
            },
            **delivery_paths(),
        },
        "components": {
            "securitySchemes": {
                "agencyKey": {"type": "http", "scheme": "bearer", "description": "dak_… key"},
                "volunteerToken": {"type": "http", "scheme": "bearer", "description": "dvt_…"},
                "supervisorToken": {"type": "http", "scheme": "bearer", "description": "dsv_…"},
            },
            "schemas": {
                **delivery_schemas(),
                "GenericIncident": incident,
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "pointer": {"type": "string", "description": "JSON Pointer to the field"},
                        "invalid-params": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "reason": {"type": "string"},
                                },
                            },
                        },
                    },
                    "required": ["type", "title", "status"],
                },
                "IntakeResult": {
                    "type": "object",
                    "required": ["incident_id", "status", "alerts_queued"],
                    "properties": {
                        "incident_id": {"type": "string", "format": "uuid"},
                        "status": {
                            "enum": ["created", "updated", "unchanged", "stale", "cancelled"]
                        },
                        "alerts_queued": {"type": "integer", "minimum": 0},
                    },
                },
                "Fix": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["lat", "lon"],
                    "properties": {
                        "lat": {"type": "number", "minimum": -90, "maximum": 90},
                        "lon": {"type": "number", "minimum": -180, "maximum": 180},
                        "accuracy_m": {"type": "number", "minimum": 0, "maximum": 100000},
                        "at": {
                            "type": "string",
                            "format": "date-time",
                            "description": "When the fix was taken; defaults to now",
                        },
                    },
                },
                "NewVolunteer": {
                    "allOf": [
                        {"$ref": "#/components/schemas/VolunteerSettings"},
                        {
                            "type": "object",
                            "required": ["display_name"],
                            "properties": {
                                "display_name": {
                                    "type": "string",
                                    "minLength": 1,
                                    "maxLength": 200,
                                },
                                "phone_e164": {
                                    "type": "string",
                                    "pattern": "^\\+[1-9][0-9]{6,14}$",
                                },
                                "language": {"type": "string"},
                            },
                        },
                    ]
                },
                "VolunteerSettings": {
                    "type": "object",
                    "properties": {
                        "tier": {
                            "enum": ["lay", "professional"],
                            "description": "lay: public places only; professional: also homes",
                        },
                        "certified_until": {
                            "type": "string",
                            "format": "date-time",
                            "description": "CPR certificate expiry (default: 2 years on)",
                        },
                        "verified": {"type": "boolean"},
                        "available": {"type": "boolean"},
                        "on_duty": {"type": "boolean"},
                        "quiet_from": {
                            "type": ["string", "null"],
                            "pattern": "^[0-2][0-9]:[0-5][0-9]$",
                        },
                        "quiet_until": {
                            "type": ["string", "null"],
                            "pattern": "^[0-2][0-9]:[0-5][0-9]$",
                        },
                        "time_zone": {"type": "string"},
                        "daily_budget": {"type": ["integer", "null"], "minimum": 0},
                        "is_tester": {"type": "boolean"},
                    },
                },
                "VolunteerCreated": {
                    "type": "object",
                    "properties": {
                        "volunteer_id": {"type": "integer"},
                        "token": {"type": "string", "description": "Shown once"},
                    },
                },
                "AgencySettings": {
                    "type": "object",
                    "properties": {
                        "alert_radius_m": {"type": "number", "minimum": 50, "maximum": 20000},
                        "alert_limit": {"type": "integer", "minimum": 1, "maximum": 100},
                        "position_max_age_s": {"type": "integer", "minimum": 30},
                        "alert_ttl_s": {"type": "integer", "minimum": 30},
                        "time_zone": {"type": "string", "description": "IANA, for naive stamps"},
                        "require_signature": {"type": "boolean"},
                        "intake_rate_per_min": {"type": "integer", "minimum": 1},
                        "call_type_rules": {
                            "type": "object",
                            "description": (
                                "Added to the shipped defaults (NCRCPRF, RESPARR, NERIS "
                                "cardiac arrest, MPDS 09-D/09-E); unknown never alerts"
                            ),
                            "properties": {
                                name: {"type": "array", "items": {"type": "string"}}
                                for name in (
                                    "codes",
                                    "patterns",
                                    "text_patterns",
                                    "excluded_codes",
                                    "excluded_patterns",
                                )
                            }
                            | {"mpds": {"type": "boolean"}},
                        },
                        "place_rules": {
                            "type": "object",
                            "properties": {
                                "residential": {"type": "array", "items": {"type": "string"}},
                                "public": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    },
                },
                "AlertAnswer": {
                    "type": "object",
                    "properties": {
                        "alert_id": {"type": "string", "format": "uuid"},
                        "state": {"type": "string"},
                        "changed": {"type": "boolean"},
                    },
                },
                "Timeline": {
                    "type": "object",
                    "properties": {
                        "incident_id": {"type": "string", "format": "uuid"},
                        "events": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "seq": {"type": "integer"},
                                    "at": {"type": "string", "format": "date-time"},
                                    "event": {"type": "string"},
                                    "alert_id": {"type": ["string", "null"]},
                                    "volunteer_id": {"type": ["integer", "null"]},
                                    "details": {"type": "object"},
                                },
                            },
                        },
                    },
                },
            },
        },
    }
