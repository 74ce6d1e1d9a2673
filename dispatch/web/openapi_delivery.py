"""The delivery endpoints' part of the OpenAPI document (merged by ``dispatch.web.openapi``)."""

from __future__ import annotations

from typing import Any

from dispatch.web.openapi_common import (
    AGENCY,
    SUPERVISOR,
    VOLUNTEER,
    alert_operation,
    json_request,
    json_response,
    operation,
    path_uuid,
    problem,
)
from dispatch.web.schemas import component_schemas, ref

_ALERT_QUERY = {
    "in": "query",
    "name": "alert_id",
    "required": False,
    "schema": {"type": "string", "format": "uuid"},
    "description": "Set by us in the callback URL so a callback can beat our own commit",
}
_TWIML = {"200": {"description": "TwiML", "content": {"text/xml": {"schema": {"type": "string"}}}}}


def _twilio(summary: str, ok: dict[str, Any], parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return operation(
        summary,
        {
            **ok,
            "400": problem("Too many form fields, or a malformed alert_id"),
            "403": problem("X-Twilio-Signature does not match: nothing was changed"),
            "413": problem("Body larger than 1 MiB"),
            "415": problem("Body is not application/x-www-form-urlencoded"),
        },
        security="twilioSignature",
        parameters=parameters,
        body={
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": ref("TwilioForm")}},
        },
    )


def delivery_paths() -> dict[str, Any]:
    recorded = {"204": {"description": "Recorded"}}
    return {
        "/v1/me/devices": {
            "put": operation(
                "Register (or re-activate) a push device for this volunteer",
                {
                    "200": json_response("DeviceRegistered", "Registered"),
                    "409": problem("The token belongs to a volunteer of another agency"),
                },
                security=VOLUNTEER,
                body={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [ref("Device"), ref("WebPushDevice")],
                                "examples": [
                                    *component_schemas()["Device"]["examples"],
                                    *component_schemas()["WebPushDevice"]["examples"],
                                ],
                            }
                        }
                    },
                },
                description=(
                    "An FCM token, or a Web Push subscription (`kind: web_push`, the browser's "
                    "PushSubscription.toJSON(), made with the key from /v1/webpush/key). "
                    "A device belongs to one volunteer. A token or subscription registered again "
                    "by another volunteer of the same agency moves to them; one held by a "
                    "volunteer of another agency is refused (409). A subscription's endpoint "
                    "must be https and its keys a P-256 point and a 16-byte secret (422 naming "
                    "the field); 404 when Web Push is switched off."
                ),
            )
        },
        "/v1/webpush/key": {
            "get": operation(
                "The VAPID public key browsers subscribe with (applicationServerKey)",
                {
                    "200": json_response("WebPushKey", "The key"),
                    "404": problem("Web Push is switched off"),
                },
                security=None,
            )
        },
        "/v1/me/stream": {
            "get": operation(
                "The live channel: alerts and stand-downs as Server-Sent Events",
                {
                    "200": {
                        "description": (
                            "An event stream: `ready`, then `alert`, `stand_down` and `test` "
                            "events whose data is the Web Push payload JSON, and heartbeat "
                            "comments. Acknowledge an alert with POST /v1/alerts/{id}/ack "
                            '{"channel": "live"}.'
                        ),
                        "content": {"text/event-stream": {"schema": ref("LiveEvent")}},
                    }
                },
                security="volunteerToken",
            )
        },
        "/v1/me/channels": {
            "put": operation(
                "Prefer or refuse delivery channels",
                {"200": json_response("ChannelStatus", "Stored")},
                security=VOLUNTEER,
                body=json_request("ChannelPreferences"),
            )
        },
        "/v1/alerts/{alert_id}/ack": {
            "post": alert_operation(
                "The device received the alert (stops the SMS fallback)",
                {"200": json_response("AlertAnswer", "The alert's state after the receipt")},
                body={
                    "required": False,
                    "content": {"application/json": {"schema": ref("AckReceipt")}},
                },
            )
        },
        "/v1/agencies/{agency_id}/delivery-settings": {
            "put": operation(
                "Fallback windows and the iOS critical-alert entitlement (supervisor)",
                {
                    "200": json_response("DeliverySettings", "Settings after the change"),
                    "404": problem("No such agency"),
                },
                security=SUPERVISOR,
                parameters=[AGENCY],
                body=json_request("DeliverySettingsChange"),
            )
        },
        "/v1/twilio/sms-status": {
            "post": _twilio("Twilio message status callback", recorded, [_ALERT_QUERY])
        },
        "/v1/twilio/voice-status": {
            "post": _twilio("Twilio call status callback", recorded, [_ALERT_QUERY])
        },
        "/v1/twilio/sms-inbound": {
            "post": _twilio("A text from a volunteer: YES/1, NO/2, STOP, START", _TWIML, [])
        },
        "/v1/twilio/voice-gather/{alert_id}": {
            "post": _twilio(
                "The digit pressed during the alert call: 1 accept, 2 decline",
                _TWIML,
                [path_uuid("alert_id", "The alert being called about")],
            )
        },
    }
