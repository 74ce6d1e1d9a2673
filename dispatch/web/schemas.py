"""JSON Schemas of every request and response body: the API's contract.

Request schemas are enforced at the HTTP edge (:mod:`dispatch.web.body`), so what the
OpenAPI document promises is exactly what a handler accepts; the domain validators
behind them check what a schema cannot say (one field against another) and serve the
CLI too. Patterns use only syntax that ECMA-262 and Python's ``re`` read the same way.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final
from zoneinfo import available_timezones

from cad_adapters._time import DATE_TIME_PATTERN
from dispatch.domain.volunteer_settings import LANGUAGE_TAG, MAX_LANGUAGE, MAX_NAME, PHONE_E164

CHANNELS: Final = ("push", "sms", "voice")
PLATFORMS: Final = ("android", "ios", "web")
_TIME_OF_DAY: Final = "^(?:[01][0-9]|2[0-3]):[0-5][0-9]$"
# Not blank, no control characters (C0, DEL, C1): names are shown to people and logged.
_NAME: Final = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _date_time(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "format": "date-time",
        "pattern": DATE_TIME_PATTERN,
        "description": f"{description} (RFC 3339 with seconds and an offset; years 1901-2199)",
    }


def _int(low: int, high: int, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    return schema | ({"description": description} if description else {})


def _number(low: float, high: float, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number", "minimum": low, "maximum": high}
    return schema | ({"description": description} if description else {})


def _strings(max_items: int, max_len: int) -> dict[str, Any]:
    return {
        "type": "array",
        "maxItems": max_items,
        "items": {"type": "string", "minLength": 1, "maxLength": max_len},
    }


def _closed(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


_AGENCY_SETTINGS: Final[dict[str, Any]] = {
    "position_max_age_s": _int(30, 86_400, "Older positions are not matched"),
    "alert_ttl_s": _int(30, 7_200, "How long an alert stays answerable"),
    "time_zone": ref("TimeZone"),
    "require_signature": {"type": "boolean"},
    "intake_rate_per_min": _int(1, 100_000, "CAD documents per minute, then 429"),
    "max_incident_age_s": _int(60, 86_400, "A new incident received longer ago never alerts"),
    "max_clock_skew_s": _int(0, 3_600, "A received time further ahead never alerts"),
    "max_location_uncertainty_m": _number(10, 100_000, "A vaguer location alerts nobody"),
    "cap_signing_cert": {
        "type": ["string", "null"],
        "maxLength": 16384,
        "description": (
            "PEM certificate (RSA 2048+ or ECDSA) whose key must have signed every CAP alert "
            "(enveloped ds:Signature); null: signatures are not checked"
        ),
    },
    "map_tile_url": {
        "type": ["string", "null"],
        "maxLength": 500,
        "pattern": "^https?://[A-Za-z0-9.\\-]+(:[0-9]{1,5})?/[A-Za-z0-9._~/{}?=&%\\-]*$",
        "description": (
            "Map background of the console: an http(s) tile URL template with {z}, {x} and "
            "{y}; the console's pages may then load images from that origin. null: a plain "
            "background, nothing loaded from elsewhere"
        ),
    },
    "call_type_rules": _closed(
        {
            **{
                name: _strings(200, 100)
                for name in ("codes", "patterns", "text_patterns", "excluded_codes")
            },
            "excluded_patterns": _strings(200, 100),
            "mpds": {"type": "boolean", "description": "MPDS 09-D/09-E count (default true)"},
        },
        description=(
            "Added to the shipped defaults (NCRCPRF, RESPARR, NERIS cardiac arrest, "
            "MPDS 09-D/09-E); unknown never alerts"
        ),
    ),
    "place_rules": _closed({"residential": _strings(200, 100), "public": _strings(200, 100)}),
}

_VOLUNTEER_SETTINGS: Final[dict[str, Any]] = {
    "tier": {"enum": ["lay", "professional"], "description": "lay: public places only"},
    "certified_until": _date_time("CPR certificate expiry (default: 2 years on)"),
    "verified": {"type": "boolean"},
    "available": {"type": "boolean"},
    "on_duty": {"type": "boolean"},
    "quiet_from": {"type": ["string", "null"], "pattern": _TIME_OF_DAY},
    "quiet_until": {"type": ["string", "null"], "pattern": _TIME_OF_DAY},
    "time_zone": ref("TimeZone"),
    "daily_budget": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
    "is_tester": {"type": "boolean"},
}
# Quiet hours are set or cleared as a pair: both local times, or both null.
_QUIET_PAIR: Final[dict[str, Any]] = {
    "dependentRequired": {"quiet_from": ["quiet_until"], "quiet_until": ["quiet_from"]},
    "anyOf": [
        {"properties": {"quiet_from": {"type": "string"}, "quiet_until": {"type": "string"}}},
        {"properties": {"quiet_from": {"type": "null"}, "quiet_until": {"type": "null"}}},
    ],
}

_WAVE: Final = _closed(
    {
        "after_s": _number(0, 3600, "Seconds after the call; the first wave starts at 0"),
        "radius_m": _number(50, 20_000, "Never narrower than the wave before"),
        "live": _int(1, 100, "Alerts live at once; never fewer than the wave before"),
    },
    required=["after_s", "radius_m", "live"],
)
_POLICY: Final[dict[str, Any]] = {
    "waves": {"type": "array", "minItems": 1, "maxItems": 10, "items": _WAVE},
    "target_accepted": _int(1, 20, "Responders wanted; the rest are stood down"),
    "max_alerted": _int(1, 200, "At least the first wave's size"),
    "stop_after_s": _number(30, 7200, "No new alerts after this"),
    "not_coming_after_s": _number(
        10,
        1800,
        "Silent this long after being alerted counts as not coming (the slot is refilled);"
        " must be longer than 2 × push_ack_timeout_s + next_channel_after_s",
    ),
    "answer_timeout_s": {
        **_number(10, 1800, "Old name of not_coming_after_s, still read"),
        "deprecated": True,
    },
    "replace_declined": {"type": "boolean"},
    "lay_unknown_place": {"type": "boolean"},
    "stand_down_on_ems_on_scene": {"type": "boolean"},
    "aed_radius_m": _number(0, 5000),
    "aed_max_detour_m": _number(0, 5000),
}

_AED_TEXT: Final = {"type": "string", "maxLength": 500, "pattern": "\\S"}
_AED_FEATURE: Final = {
    "type": "object",
    "required": ["type", "geometry"],
    "properties": {
        "type": {"const": "Feature"},
        "id": {"type": ["string", "integer"]},
        "geometry": {
            "type": "object",
            "required": ["type", "coordinates"],
            "properties": {
                "type": {"const": "Point"},
                "coordinates": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 3,
                    "prefixItems": [_number(-180, 180), _number(-90, 90), {"type": "number"}],
                },
            },
        },
        "properties": {
            "type": ["object", "null"],
            "properties": {
                "id": {"type": ["string", "integer"]},
                "name": {"type": "string", "maxLength": 200, "pattern": "\\S"},
                "access_hours": {
                    "type": ["object", "string", "null"],
                    "description": 'Empty, "24/7", or days (mon..sun) to [["HH:MM", "HH:MM"], ...]',
                },
                "indoor_description": _AED_TEXT,
                "access_notes": _AED_TEXT,
            },
        },
    },
}
_CHANNEL: Final = {"enum": list(CHANNELS)}
_UUID: Final = {"type": "string", "format": "uuid"}


def _request_schemas() -> dict[str, Any]:
    return {
        "Fix": _closed(
            {
                "lat": _number(-90, 90),
                "lon": _number(-180, 180),
                "accuracy_m": _number(0, 100_000),
                "at": _date_time("When the fix was taken; defaults to now; not in the future"),
            },
            required=["lat", "lon"],
            examples=[{"lat": 52.3731, "lon": 4.8926, "accuracy_m": 12.5}],
        ),
        "NewVolunteer": _closed(
            {
                "display_name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_NAME,
                    "pattern": _NAME,
                },
                "phone_e164": {"type": "string", "pattern": PHONE_E164.pattern},
                "language": {
                    "type": "string",
                    "maxLength": MAX_LANGUAGE,
                    "pattern": LANGUAGE_TAG.pattern,
                    "description": "BCP 47 language tag, e.g. en or nl-NL",
                },
                **_VOLUNTEER_SETTINGS,
            },
            required=["display_name"],
            examples=[
                {
                    "display_name": "Anna de Vries",
                    "phone_e164": "+31612345678",
                    "language": "nl-NL",
                    "tier": "professional",
                    "certified_until": "2027-06-30T00:00:00+02:00",
                    "quiet_from": "23:00",
                    "quiet_until": "07:00",
                    "time_zone": "Europe/Amsterdam",
                    "daily_budget": 3,
                }
            ],
            **_QUIET_PAIR,
        ),
        "VolunteerSettingsChange": _closed(
            _VOLUNTEER_SETTINGS,
            minProperties=1,
            examples=[{"on_duty": True, "quiet_from": "22:30", "quiet_until": "06:30"}],
            **_QUIET_PAIR,
        ),
        "AgencySettingsChange": _closed(
            _AGENCY_SETTINGS,
            minProperties=1,
            examples=[
                {
                    "time_zone": "Europe/Amsterdam",
                    "call_type_rules": {"codes": ["CA"], "patterns": ["09-E-*"]},
                    "place_rules": {"residential": ["APT"], "public": ["STATION"]},
                    "max_incident_age_s": 1800,
                }
            ],
        ),
        "PolicyDocument": _closed(
            _POLICY,
            description=(
                "Fields left out take the documented defaults. Waves start at 0 and later "
                "each time, never narrow and never shrink; not_coming_after_s is longer than "
                "the delivery settings' 2 × push_ack_timeout_s + next_channel_after_s; "
                "answer_timeout_s (its old name) and not_coming_after_s are not both given. "
                "These rules across fields answer 422 naming the field."
            ),
            examples=[
                {
                    "waves": [
                        {"after_s": 0, "radius_m": 500, "live": 7},
                        {"after_s": 60, "radius_m": 1300, "live": 15},
                    ],
                    "target_accepted": 3,
                    "max_alerted": 30,
                }
            ],
        ),
        "Device": _closed(
            {
                "fcm_token": {
                    "type": "string",
                    "pattern": "^[!-~]{8,4096}$",
                    "description": "The FCM registration token (printable ASCII)",
                },
                "platform": {"enum": list(PLATFORMS)},
            },
            required=["fcm_token", "platform"],
            examples=[{"fcm_token": "dGVzdC10b2tlbi0xMjM0NTY3ODkw:APA91b", "platform": "android"}],
        ),
        "WebPushDevice": _closed(
            {
                "kind": {"const": "web_push"},
                "endpoint": {
                    "type": "string",
                    "minLength": 8,
                    "maxLength": 2048,
                    "pattern": "^https?://[!-~]+$",
                    "description": (
                        "The push service's URL for this browser (https; PushSubscription.endpoint)"
                    ),
                },
                "keys": _closed(
                    {
                        "p256dh": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9_-]{87}=?$",
                            "description": "base64url of the browser's P-256 point (65 bytes)",
                        },
                        "auth": {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9_-]{22}(==)?$",
                            "description": "base64url of the 16-byte auth secret",
                        },
                    },
                    required=["p256dh", "auth"],
                ),
                "expirationTime": {
                    "type": ["number", "null"],
                    "description": "As PushSubscription.toJSON() gives it; not used",
                },
            },
            required=["kind", "endpoint", "keys"],
            description="A Web Push subscription: PushSubscription.toJSON() plus kind",
            examples=[
                {
                    "kind": "web_push",
                    "endpoint": "https://push.example.net/wpush/v2/gAAAAABk",
                    "keys": {
                        "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-"
                        "Ts1XbjhazAkj7I99e8QcYP7DkM",
                        "auth": "tBHItJI5svbpez7KI4CCXg",
                    },
                }
            ],
        ),
        "AckReceipt": _closed(
            {"channel": {"enum": ["push", "web_push", "live"]}},
            description="Which channel brought the alert (default push)",
            examples=[{"channel": "live"}],
        ),
        "LiveEvent": {
            "type": "object",
            "description": "One Server-Sent Event of /v1/me/stream (heartbeats are comments)",
            "required": ["event", "data"],
            "properties": {
                "event": {
                    "type": "string",
                    "description": "ready, alert, stand_down or test; ignore unknown ones",
                },
                "data": {
                    "type": "string",
                    "description": (
                        "One line of JSON: the Web Push payload (title, body, data) plus type"
                    ),
                },
                "id": {"type": "string"},
                "retry": {"type": "integer", "minimum": 0},
            },
        },
        "WebPushKey": {
            "type": "object",
            "required": ["public_key"],
            "properties": {
                "public_key": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_-]{87}$",
                    "description": "VAPID public key: base64url of the uncompressed P-256 point",
                }
            },
        },
        "ChannelPreferences": _closed(
            {
                "preferred": {"oneOf": [_CHANNEL, {"type": "null"}]},
                "refused": {
                    "type": "array",
                    "items": _CHANNEL,
                    "maxItems": len(CHANNELS) - 1,
                    "uniqueItems": True,
                    "description": "At least one channel stays open; not the preferred one",
                },
            },
            examples=[{"preferred": "push", "refused": ["voice"]}],
        ),
        "DeliverySettingsChange": _closed(
            {
                "push_ack_timeout_s": _int(1, 3600, "No device receipt this long after a push"),
                "next_channel_after_s": _int(
                    1,
                    3600,
                    "No answer this long after a text (or call): the next channel, e.g. the call",
                ),
                "answer_timeout_s": {
                    **_int(1, 3600, "Old name of next_channel_after_s, still read"),
                    "deprecated": True,
                },
                "critical_alerts": {"type": "boolean"},
            },
            description=(
                "Unnamed settings stay. 2 × push_ack_timeout_s + next_channel_after_s (when the "
                "chain's last step is due) must stay below the policy's not_coming_after_s; "
                "answer_timeout_s (the old name) and next_channel_after_s are not both given. "
                "These rules across fields answer 422 naming the field."
            ),
            examples=[
                {"push_ack_timeout_s": 15, "next_channel_after_s": 45, "critical_alerts": False}
            ],
        ),
        "AedFeatureCollection": {
            "type": "object",
            "required": ["type", "features"],
            "description": (
                "GeoJSON (RFC 7946): Point features with an id and a name. Ids must be unique "
                "and 0,0 is refused as a placeholder (422 naming the feature)."
            ),
            "properties": {
                "type": {"const": "FeatureCollection"},
                "features": {"type": "array", "maxItems": 100_000, "items": ref("AedFeature")},
            },
            "examples": [
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "id": "AED-17",
                            "geometry": {"type": "Point", "coordinates": [4.8926, 52.3731]},
                            "properties": {
                                "name": "Central Station, hall 2",
                                "access_hours": "24/7",
                                "indoor_description": "Next to the ticket machines",
                            },
                        }
                    ],
                }
            ],
        },
        "AedFeature": _AED_FEATURE,
        "TwilioForm": {
            "type": "object",
            "description": "The form Twilio posts (MessageSid, MessageStatus, From, Body, ...)",
            "additionalProperties": {"type": "string"},
        },
    }


def _response_schemas() -> dict[str, Any]:
    event = {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "event": {"type": "string"},
            "alert_id": {"type": ["string", "null"]},
            "volunteer_id": {"type": ["integer", "null"]},
            "details": {"type": "object"},
        },
    }
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "required": ["type", "title", "status"],
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
                        "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
            },
        },
        "IntakeResult": {
            "type": "object",
            "required": ["incident_id", "status", "alerts_queued"],
            "properties": {
                "incident_id": _UUID,
                "status": {"enum": ["created", "updated", "unchanged", "stale", "cancelled"]},
                "alerts_queued": {"type": "integer", "minimum": 0},
            },
        },
        "VolunteerCreated": {
            "type": "object",
            "required": ["volunteer_id", "token"],
            "properties": {
                "volunteer_id": {"type": "integer"},
                "token": {"type": "string", "description": "Shown once"},
            },
        },
        "VolunteerSettings": {
            "type": "object",
            "required": ["volunteer_id", "display_name"],
            "properties": {
                "volunteer_id": {"type": "integer"},
                "display_name": {"type": "string"},
                **{name: {} for name in _VOLUNTEER_SETTINGS},
            },
        },
        "AgencySettings": {
            "type": "object",
            "required": ["agency_id", "name"],
            "properties": {"agency_id": _UUID, "name": {"type": "string"}}
            | {name: {} for name in _AGENCY_SETTINGS},
        },
        "Policy": {
            "type": "object",
            "required": ["version", "waves"],
            "properties": {"version": {"type": "integer", "minimum": 0}, **_POLICY},
        },
        "AlertAnswer": {
            "type": "object",
            "required": ["alert_id", "state", "changed"],
            "properties": {
                "alert_id": _UUID,
                "state": {"type": "string"},
                "changed": {"type": "boolean"},
            },
        },
        "Alert": {
            "type": "object",
            "required": ["alert_id", "incident_id", "state", "role", "patient"],
            "properties": {
                "alert_id": _UUID,
                "incident_id": _UUID,
                "state": {"type": "string"},
                "role": {"enum": ["cpr", "aed", "test"]},
                "test": {"type": "boolean"},
                "expires_at": {"type": "string", "format": "date-time"},
                "distance_m": {"type": "integer"},
                "incident_status": {"enum": ["active", "closed", "cancelled"]},
                "ended_reason": {
                    "type": ["string", "null"],
                    "description": "Why the alert was stood down or released, e.g."
                    " target_reached (enough responders) or incident_ended",
                },
                "patient": {
                    "type": "object",
                    "properties": {
                        "lat": {"type": ["number", "null"]},
                        "lon": {"type": ["number", "null"]},
                        "address": {
                            "type": ["string", "null"],
                            "description": "Only while the volunteer is responding",
                        },
                    },
                },
                "aed": {"type": ["object", "null"]},
                "aftercare": {
                    "type": "object",
                    "properties": {
                        "asked": {
                            "type": "boolean",
                            "description": "The incident ended after they accepted",
                        },
                        "answered": {"type": "boolean"},
                    },
                },
            },
        },
        "Timeline": {
            "type": "object",
            "required": ["incident_id", "events"],
            "properties": {"incident_id": _UUID, "events": {"type": "array", "items": event}},
        },
        "DeviceRegistered": {
            "type": "object",
            "properties": {
                "device_id": {"type": "integer"},
                "subscription_id": {"type": "integer", "description": "For a Web Push one"},
                "kind": {"const": "web_push"},
                "platform": {"enum": list(PLATFORMS)},
                "active": {"type": "boolean"},
            },
        },
        "ChannelStatus": {
            "type": "object",
            "properties": {
                "preferred": {"oneOf": [_CHANNEL, {"type": "null"}]},
                "refused": {"type": "array", "items": _CHANNEL},
                "sms_opt_out": {"type": "boolean", "description": "The number replied STOP"},
                "phone_invalid": {"type": "boolean"},
            },
        },
        "DeliverySettings": {
            "type": "object",
            "properties": {
                "push_ack_timeout_s": {"type": "integer"},
                "next_channel_after_s": {"type": "integer"},
                "critical_alerts": {"type": "boolean"},
            },
        },
    }


@cache
def component_schemas() -> dict[str, Any]:
    """Every schema under ``#/components/schemas`` except the generic incident's."""
    return {
        "TimeZone": {
            "enum": sorted(available_timezones()),
            "description": "An IANA time zone, e.g. Europe/Amsterdam",
        },
        **_request_schemas(),
        **_response_schemas(),
    }


# Shared with the volunteer-account schemas (dispatch.web.schemas_volunteers).
NAME_PATTERN: Final = _NAME
QUIET_PAIR: Final = _QUIET_PAIR
VOLUNTEER_SETTINGS: Final = _VOLUNTEER_SETTINGS
closed = _closed
