"""JSON Schemas of the volunteer-account API: sign-up, sessions, profile, credentials,
aftercare, export, audit (merged into ``#/components/schemas`` by the OpenAPI document)."""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from cad_adapters._time import DATE_PATTERN
from dispatch.domain.volunteer_settings import LANGUAGE_TAG, MAX_LANGUAGE, MAX_NAME, PHONE_E164
from dispatch.web.schemas import NAME_PATTERN, QUIET_PAIR, VOLUNTEER_SETTINGS, closed, ref

_UUID: Final = {"type": "string", "format": "uuid"}
# Formats are annotations to the validator: a request's UUID is also held to a pattern.
_UUID_IN: Final = {
    **_UUID,
    "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
}
_PHONE: Final = {"type": "string", "pattern": PHONE_E164.pattern, "description": "E.164"}
_NAME: Final = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": NAME_PATTERN}
_LANGUAGE: Final = {
    "type": "string",
    "maxLength": MAX_LANGUAGE,
    "pattern": LANGUAGE_TAG.pattern,
    "description": "BCP 47 language tag, e.g. en or nl-NL",
}
_TIME: Final = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: Final = {"type": ["string", "null"], "format": "date-time"}
_TEXT: Final = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"
"""Free text: any characters but control ones (tabs and line breaks are fine)."""
_KINDS: Final = ["cpr_bls", "professional_licence"]
_STATES: Final = ["pending", "approved", "rejected"]


def _requests() -> dict[str, Any]:
    return {
        "Signup": closed(
            {
                "agency_id": _UUID_IN,
                "display_name": _NAME,
                "phone_e164": _PHONE,
                "language": _LANGUAGE,
            },
            required=["agency_id", "display_name", "phone_e164"],
            examples=[
                {
                    "agency_id": "6f1c2d7e-9a4b-4c3d-8e2f-1a2b3c4d5e6f",
                    "display_name": "Anna de Vries",
                    "phone_e164": "+31612345678",
                    "language": "nl-NL",
                }
            ],
        ),
        "Signin": closed(
            {"agency_id": _UUID_IN, "phone_e164": _PHONE},
            required=["agency_id", "phone_e164"],
            examples=[
                {"agency_id": "6f1c2d7e-9a4b-4c3d-8e2f-1a2b3c4d5e6f", "phone_e164": "+31612345678"}
            ],
        ),
        "Verify": closed(
            {
                "agency_id": _UUID_IN,
                "phone_e164": _PHONE,
                "code": {"type": "string", "pattern": "^[0-9]{6}$"},
                "device_label": {**_NAME, "maxLength": 100, "description": "e.g. Pixel 8"},
            },
            required=["agency_id", "phone_e164", "code"],
            examples=[
                {
                    "agency_id": "6f1c2d7e-9a4b-4c3d-8e2f-1a2b3c4d5e6f",
                    "phone_e164": "+31612345678",
                    "code": "042917",
                    "device_label": "Pixel 8",
                }
            ],
        ),
        "Refresh": closed(
            {"refresh_token": {"type": "string", "minLength": 1, "maxLength": 512}},
            required=["refresh_token"],
            examples=[{"refresh_token": "dvr_2kq1x0mW7S0f3mJxq2l7jYyH6pQ8n1v4b9cZtR5sLuE"}],
        ),
    }


def _data_requests() -> dict[str, Any]:
    return {
        "ProfileChange": closed(
            {
                "display_name": _NAME,
                "language": _LANGUAGE,
                "tier_requested": {
                    "enum": ["lay", "professional", None],
                    "description": "lay: public places only, whatever the credentials allow",
                },
                **{
                    name: VOLUNTEER_SETTINGS[name]
                    for name in ("on_duty", "quiet_from", "quiet_until", "time_zone")
                },
                "daily_budget": VOLUNTEER_SETTINGS["daily_budget"],
                "channels": ref("ChannelPreferences"),
            },
            minProperties=1,
            examples=[{"on_duty": False, "quiet_from": "23:00", "quiet_until": "07:00"}],
            **QUIET_PAIR,
        ),
        "NewCredential": closed(
            {
                "kind": {"enum": _KINDS},
                "issuer": {**_NAME, "description": "e.g. Dutch Resuscitation Council"},
                "number": {**_NAME, "maxLength": 100},
                "expires_on": {
                    "type": "string",
                    "format": "date",
                    "pattern": f"^{DATE_PATTERN}$",
                    "description": "As printed; alerts end at 00:00 that day (agency time); "
                    "must be later than today",
                },
            },
            required=["kind", "issuer", "expires_on"],
            examples=[
                {
                    "kind": "cpr_bls",
                    "issuer": "Dutch Resuscitation Council",
                    "number": "NRR-2025-118734",
                    "expires_on": "2027-06-30",
                }
            ],
        ),
        "CredentialRejection": closed(
            {
                "reason": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 500,
                    "pattern": NAME_PATTERN,
                }
            },
            required=["reason"],
            examples=[{"reason": "The scan is unreadable; please upload a sharper photo."}],
        ),
        "Feedback": closed(
            {
                "text": {"type": "string", "maxLength": 4000, "pattern": _TEXT},
                "wants_to_talk": {"type": "boolean", "description": "Opens a debrief request"},
            },
            required=["wants_to_talk"],
            examples=[{"text": "I am fine, but the stairs were dark.", "wants_to_talk": True}],
        ),
        "DebriefHandled": closed(
            {"note": {"type": "string", "maxLength": 1000, "pattern": _TEXT}},
            examples=[{"note": "Called back; follow-up next week."}],
        ),
    }


def _session() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["session_id", "state", "created_at"],
        "properties": {
            "session_id": {"type": "integer"},
            "device_label": {"type": ["string", "null"]},
            "created_at": _TIME,
            "refreshed_at": _TIME_OR_NULL,
            "expires_at": _TIME,
            "state": {"enum": ["active", "revoked", "expired"]},
            "current": {"type": "boolean"},
            "revoked_at": _TIME_OR_NULL,
            "revoked_reason": {"type": ["string", "null"]},
        },
    }


def _credential() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["credential_id", "kind", "state", "expires_on"],
        "properties": {
            "credential_id": {"type": "integer"},
            "volunteer_id": {"type": "integer"},
            "display_name": {"type": "string"},
            "kind": {"enum": _KINDS},
            "issuer": {"type": "string"},
            "number": {"type": ["string", "null"]},
            "expires_on": {"type": "string", "format": "date"},
            "expires_at": {**_TIME, "description": "00:00 on expires_on, agency time"},
            "state": {"enum": _STATES},
            "reason": {"type": ["string", "null"], "description": "Why it was rejected"},
            "submitted_at": _TIME,
            "reviewed_at": _TIME_OR_NULL,
            "scan": {
                "type": ["object", "null"],
                "properties": {
                    "media_type": {"enum": ["application/pdf", "image/jpeg", "image/png"]},
                    "size_bytes": {"type": "integer"},
                },
            },
        },
    }


def _listing(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [name],
        "properties": {name: {"type": "array", "items": item}},
    }


def _session_responses() -> dict[str, Any]:
    return {
        "CodeSent": {
            "type": "object",
            "required": ["status", "expires_in_s"],
            "properties": {
                "status": {"const": "code_sent"},
                "expires_in_s": {"type": "integer"},
            },
            "description": "The same answer whether or not the number has an account",
        },
        "SessionTokens": {
            "type": "object",
            "required": ["session_id", "access_token", "refresh_token", "access_expires_at"],
            "properties": {
                "session_id": {"type": "integer"},
                "volunteer_id": {"type": "integer"},
                "token_type": {"const": "Bearer"},
                "access_token": {"type": "string", "description": "dva_…, 15 minutes"},
                "access_expires_at": _TIME,
                "refresh_token": {"type": "string", "description": "dvr_…, use once"},
                "refresh_expires_at": _TIME,
            },
        },
        "Sessions": _listing("sessions", _session()),
    }


def _profile_responses() -> dict[str, Any]:
    alert = {
        "type": "object",
        "required": ["alert_id", "incident_id", "open", "state", "created_at"],
        "properties": {
            "alert_id": _UUID,
            "incident_id": _UUID,
            "open": {"type": "boolean"},
            "state": {"type": "string"},
            "role": {"type": "string"},
            "test": {"type": "boolean"},
            "incident_status": {"type": "string"},
            "created_at": _TIME,
            "expires_at": _TIME,
            "answered_at": _TIME_OR_NULL,
            "distance_m": {"type": "integer"},
        },
    }
    return {
        "Profile": {
            "type": "object",
            "required": ["volunteer_id", "display_name", "alertable", "not_alertable_because"],
            "properties": {
                "volunteer_id": {"type": "integer"},
                "agency_id": _UUID,
                "display_name": {"type": "string"},
                "phone_e164": {"type": ["string", "null"]},
                "language": {"type": "string"},
                "tier": {"enum": ["lay", "professional"], "description": "In force now"},
                "alertable": {"type": "boolean"},
                "not_alertable_because": {
                    "type": "array",
                    "items": {
                        "enum": [
                            "suspended",
                            "unverified",
                            "no_approved_credential",
                            "credential_expired",
                            "off_duty",
                        ]
                    },
                },
                "channels": {"type": "object"},
            },
        },
        "MyAlerts": _listing("alerts", alert),
        "Credential": _credential(),
        "CredentialList": _listing("credentials", ref("Credential")),
    }


def _record_responses() -> dict[str, Any]:
    debrief = {
        "type": "object",
        "required": ["request_id", "volunteer_id", "alert_id", "requested_at"],
        "properties": {
            "request_id": {"type": "integer"},
            "volunteer_id": {"type": "integer"},
            "display_name": {"type": "string"},
            "phone_e164": {"type": ["string", "null"]},
            "alert_id": _UUID,
            "incident_id": _UUID,
            "text": {"type": ["string", "null"]},
            "requested_at": _TIME,
            "handled_at": _TIME_OR_NULL,
            "handled_by": {"type": ["integer", "null"]},
            "note": {"type": ["string", "null"]},
        },
    }
    entry = {
        "type": "object",
        "required": ["seq", "at", "actor", "action", "target_type"],
        "properties": {
            "seq": {"type": "integer"},
            "at": _TIME,
            "actor": {"type": "string", "description": "supervisor:<id> or cli"},
            "supervisor_id": {"type": ["integer", "null"]},
            "action": {"type": "string"},
            "target_type": {"type": "string"},
            "target_id": {"type": ["string", "null"]},
            "before": {"type": ["object", "null"]},
            "after": {"type": ["object", "null"]},
        },
    }
    return {
        "TestAlertQueued": {
            "type": "object",
            "required": ["alert_id", "incident_id", "left_today"],
            "properties": {
                "alert_id": _UUID,
                "incident_id": _UUID,
                "expires_at": _TIME,
                "left_today": {"type": "integer", "minimum": 0},
            },
        },
        "FeedbackRecorded": {
            "type": "object",
            "required": ["feedback_id", "wants_to_talk"],
            "properties": {
                "feedback_id": {"type": "integer"},
                "wants_to_talk": {"type": "boolean"},
            },
        },
        "DebriefRequest": debrief,
        "DebriefRequests": _listing("requests", ref("DebriefRequest")),
        "AuditLog": _listing("entries", entry),
        "VolunteerExport": {
            "type": "object",
            "required": ["profile", "credentials", "sessions", "devices", "alerts"],
            "description": "Everything held about the volunteer",
        },
    }


@cache
def volunteer_schemas() -> dict[str, Any]:
    return {
        **_requests(),
        **_data_requests(),
        **_session_responses(),
        **_profile_responses(),
        **_record_responses(),
    }
