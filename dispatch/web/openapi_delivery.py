"""The delivery endpoints' part of the OpenAPI document (merged by ``dispatch.web.openapi``)."""

from __future__ import annotations

from typing import Any

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": _PROBLEM}


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _body(schema_ref: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


_UNAVAILABLE = {
    "503": _problem("The database is overloaded or down; send again after Retry-After seconds")
}
_AUTH = {"401": _problem("Missing or invalid bearer token"), **_UNAVAILABLE}
_BAD = {
    "400": _problem("Malformed JSON"),
    "415": _problem("Body is not application/json"),
    "422": _problem("A field is invalid; `pointer` names it"),
}
_TWILIO_FORM = {
    "required": True,
    "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
}
_SIGNATURE = {
    "in": "header",
    "name": "X-Twilio-Signature",
    "required": True,
    "schema": {"type": "string"},
    "description": "Twilio's HMAC of the public URL and the form, keyed by the auth token",
}
_ALERT_QUERY = {
    "in": "query",
    "name": "alert_id",
    "required": False,
    "schema": {"type": "string", "format": "uuid"},
    "description": "Set by us in the callback URL so a callback can beat our own commit",
}
_FORGED = {"403": _problem("The signature does not match: nothing was changed"), **_UNAVAILABLE}
_TWIML = {"200": {"description": "TwiML", "content": {"text/xml": {"schema": {"type": "string"}}}}}


def _uuid_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "format": "uuid"},
    }


def delivery_paths() -> dict[str, Any]:
    return {
        "/v1/me/devices": {
            "put": {
                "summary": "Register (or re-activate) a push device for this volunteer",
                "description": "A token registered again by another volunteer moves to them.",
                "security": [{"volunteerToken": []}],
                "requestBody": _body("Device"),
                "responses": {"200": _json("DeviceRegistered", "Registered"), **_AUTH, **_BAD},
            }
        },
        "/v1/me/channels": {
            "put": {
                "summary": "Prefer or refuse delivery channels",
                "security": [{"volunteerToken": []}],
                "requestBody": _body("ChannelPreferences"),
                "responses": {"200": _json("ChannelStatus", "Stored"), **_AUTH, **_BAD},
            }
        },
        "/v1/alerts/{alert_id}/ack": {
            "post": {
                "summary": "The device received the alert (stops the SMS fallback)",
                "parameters": [_uuid_param("alert_id", "The alert, as sent in the push data")],
                "security": [{"volunteerToken": []}],
                "responses": {
                    "200": _json("AlertAnswer", "The alert's state after the receipt"),
                    "404": _problem("No such alert for this volunteer"),
                    **_AUTH,
                },
            }
        },
        "/v1/agencies/{agency_id}/delivery-settings": {
            "put": {
                "summary": "Fallback windows and the iOS critical-alert entitlement (supervisor)",
                "parameters": [_uuid_param("agency_id", "The supervisor's agency")],
                "security": [{"supervisorToken": []}],
                "requestBody": _body("DeliverySettings"),
                "responses": {
                    "200": _json("DeliverySettings", "Settings after the change"),
                    **_AUTH,
                    **_BAD,
                },
            }
        },
        "/v1/twilio/sms-status": {
            "post": {
                "summary": "Twilio message status callback",
                "parameters": [_SIGNATURE, _ALERT_QUERY],
                "requestBody": _TWILIO_FORM,
                "responses": {"204": {"description": "Recorded"}, **_FORGED},
            }
        },
        "/v1/twilio/voice-status": {
            "post": {
                "summary": "Twilio call status callback",
                "parameters": [_SIGNATURE, _ALERT_QUERY],
                "requestBody": _TWILIO_FORM,
                "responses": {"204": {"description": "Recorded"}, **_FORGED},
            }
        },
        "/v1/twilio/sms-inbound": {
            "post": {
                "summary": "A text from a volunteer: YES/1, NO/2, STOP, START",
                "parameters": [_SIGNATURE],
                "requestBody": _TWILIO_FORM,
                "responses": {**_TWIML, **_FORGED},
            }
        },
        "/v1/twilio/voice-gather/{alert_id}": {
            "post": {
                "summary": "The digit pressed during the alert call: 1 accept, 2 decline",
                "parameters": [_uuid_param("alert_id", "The alert being called about"), _SIGNATURE],
                "requestBody": _TWILIO_FORM,
                "responses": {**_TWIML, **_FORGED},
            }
        },
    }


def delivery_schemas() -> dict[str, Any]:
    channel = {"enum": ["push", "sms", "voice"]}
    return {
        "Device": {
            "type": "object",
            "additionalProperties": False,
            "required": ["fcm_token", "platform"],
            "properties": {
                "fcm_token": {"type": "string", "minLength": 8, "maxLength": 4096},
                "platform": {"enum": ["android", "ios", "web"]},
            },
        },
        "DeviceRegistered": {
            "type": "object",
            "properties": {
                "device_id": {"type": "integer"},
                "platform": {"type": "string"},
                "active": {"type": "boolean"},
            },
        },
        "ChannelPreferences": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "preferred": {"oneOf": [channel, {"type": "null"}]},
                "refused": {"type": "array", "items": channel, "maxItems": 2},
            },
        },
        "ChannelStatus": {
            "type": "object",
            "properties": {
                "preferred": {"oneOf": [channel, {"type": "null"}]},
                "refused": {"type": "array", "items": channel},
                "sms_opt_out": {"type": "boolean", "description": "The number replied STOP"},
                "phone_invalid": {"type": "boolean"},
            },
        },
        "DeliverySettings": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "push_ack_timeout_s": {"type": "integer", "minimum": 1, "maximum": 3600},
                "answer_timeout_s": {"type": "integer", "minimum": 1, "maximum": 3600},
                "critical_alerts": {"type": "boolean"},
            },
        },
    }
