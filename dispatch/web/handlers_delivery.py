"""Delivery endpoints: devices, channel preferences, receipts, and Twilio's webhooks.

Twilio webhooks are authenticated by ``X-Twilio-Signature`` (HMAC of the public
URL and the form, keyed by the auth token), checked with Twilio's own
``RequestValidator``. A request that fails the check gets 403 and changes nothing.
"""

from __future__ import annotations

from typing import Final
from uuid import UUID
from xml.sax.saxutils import escape

import structlog
from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from cad_adapters.text import storable
from dispatch.service import delivery as delivery_service
from dispatch.service import devices as device_service
from dispatch.service.providers import public_base_url
from dispatch.service.responses import AlertNotFound
from dispatch.store import devices as device_store
from dispatch.web import app_keys as keys
from dispatch.web.body import check, json_body, json_document
from dispatch.web.handlers import _uuid, _volunteer
from dispatch.web.handlers_webpush import put_web_push
from dispatch.web.problems import Problem, held_elsewhere, invalid, not_found
from notify import twilio_webhooks as twilio

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

_PLATFORMS: Final = ("android", "ios", "web")
_CHANNELS: Final = ("push", "sms", "voice")
_MAX_FORM_FIELDS: Final = 64


# --- volunteers -----------------------------------------------------------------------------


@routes.put("/v1/me/devices")
async def put_device(request: web.Request) -> web.Response:
    """An FCM token, or a Web Push subscription (``"kind": "web_push"``)."""
    volunteer = await _volunteer(request)
    data = await json_document(request)
    if isinstance(data, dict) and data.get("kind") == "web_push":
        check("WebPushDevice", data)
        return await put_web_push(request, volunteer, data)
    check("Device", data)
    token, platform = data["fcm_token"], data["platform"]
    try:
        device_id = await device_service.register_device(
            request.app[keys.POOL],
            volunteer,
            platform=platform,
            fcm_token=token,
            now=request.app[keys.CLOCK].now(),
        )
    except device_service.DeviceHeldElsewhere:
        raise held_elsewhere("Device", "push token", "/fcm_token") from None
    return web.json_response({"device_id": device_id, "platform": platform, "active": True})


@routes.put("/v1/me/channels")
async def put_channels(request: web.Request) -> web.Response:
    volunteer = await _volunteer(request)
    data = await json_body(request, "ChannelPreferences")
    preferred = data.get("preferred")
    refused = data.get("refused", [])
    if preferred is not None and preferred in refused:
        raise invalid("/preferred", "cannot be a refused channel")
    async with request.app[keys.POOL].acquire() as conn:
        prefs = await device_store.set_preferences(
            conn,
            agency_id=volunteer.agency_id,
            volunteer_id=volunteer.volunteer_id,
            preferred=preferred,
            refused=sorted(set(refused)),
            now=request.app[keys.CLOCK].now(),
        )
    return web.json_response(
        {
            "preferred": prefs.preferred,
            "refused": list(prefs.refused),
            "sms_opt_out": prefs.sms_opt_out,
            "phone_invalid": prefs.phone_invalid,
        }
    )


@routes.post("/v1/alerts/{alert_id}/ack")
async def ack_alert(request: web.Request) -> web.Response:
    alert_id = _uuid(request, "alert_id")
    volunteer = await _volunteer(request)
    channel = "push"
    if request.can_read_body:
        channel = (await json_body(request, "AckReceipt")).get("channel", channel)
    try:
        result = await delivery_service.acknowledge(
            request.app[keys.POOL],
            alert_id=alert_id,
            volunteer_id=volunteer.volunteer_id,
            now=request.app[keys.CLOCK].now(),
            channel=channel,
        )
    except AlertNotFound:
        raise not_found("alert") from None
    return web.json_response(
        {"alert_id": str(result.alert_id), "state": result.state.value, "changed": result.changed}
    )


# --- Twilio webhooks ------------------------------------------------------------------------


async def _signed_form(request: web.Request) -> MultiDict[str]:
    """The webhook's form after Twilio's signature check; 403 and no change otherwise."""
    token = request.app[keys.PROVIDERS].twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature", "")
    if request.content_type != "application/x-www-form-urlencoded":
        raise Problem(415, "unsupported-media-type", "Unsupported media type", "expected a form")
    posted = await request.post()
    if len(posted) > _MAX_FORM_FIELDS:
        raise Problem(400, "malformed-document", "Too many form fields")
    form: MultiDict[str] = MultiDict((k, v) for k, v in posted.items() if isinstance(v, str))
    # Twilio signs the URL it called: ours as seen from outside (proxy-aware setting).
    url = public_base_url(request.app[keys.SETTINGS]) + request.path_qs
    if token is None or not signature or not RequestValidator(token).validate(url, form, signature):
        log.warning("twilio_signature_rejected", path=request.path)
        raise Problem(
            403, "bad-signature", "Forbidden", "the X-Twilio-Signature does not match this request"
        )
    # Signed as sent; kept as the database can hold it (an SMS body may carry anything).
    return MultiDict((k, storable(v)) for k, v in form.items())


def _query_alert(request: web.Request) -> UUID | None:
    """The alert id we put in the callback URL (signed by Twilio along with the rest)."""
    raw = request.query.get("alert_id")
    if raw is None:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise invalid("/alert_id", "must be a UUID") from None


def _twiml(say: str | None = None, *, sms: str | None = None) -> web.Response:
    if sms is not None:
        body = f"<Message>{escape(sms)}</Message>"
    elif say is not None:
        body = f"<Say>{escape(say)}</Say>"
    else:
        body = ""
    text = f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
    return web.Response(text=text, content_type="text/xml")


@routes.post(twilio.SMS_STATUS_PATH)
async def twilio_sms_status(request: web.Request) -> web.Response:
    form = await _signed_form(request)
    moved = await delivery_service.sms_status(
        request.app[keys.POOL],
        twilio.parse_sms_status(form),
        alert_id=_query_alert(request),
        now=request.app[keys.CLOCK].now(),
    )
    if moved:
        request.app[keys.OUTBOX_WORKER].wakeup.set()
    return web.Response(status=204)


@routes.post(twilio.VOICE_STATUS_PATH)
async def twilio_voice_status(request: web.Request) -> web.Response:
    form = await _signed_form(request)
    await delivery_service.voice_status(
        request.app[keys.POOL],
        twilio.parse_call_status(form),
        alert_id=_query_alert(request),
        now=request.app[keys.CLOCK].now(),
    )
    return web.Response(status=204)


@routes.post(twilio.SMS_INBOUND_PATH)
async def twilio_sms_inbound(request: web.Request) -> web.Response:
    form = await _signed_form(request)
    reply = await delivery_service.sms_inbound(
        request.app[keys.POOL], twilio.parse_inbound_sms(form), now=request.app[keys.CLOCK].now()
    )
    return _twiml(sms=reply)


@routes.post(twilio.VOICE_GATHER_PATH)
async def twilio_voice_gather(request: web.Request) -> web.Response:
    alert_id = _uuid(request, "alert_id")
    form = await _signed_form(request)
    say = await delivery_service.voice_gather(
        request.app[keys.POOL],
        alert_id,
        twilio.parse_gather(form),
        now=request.app[keys.CLOCK].now(),
    )
    return _twiml(say)
