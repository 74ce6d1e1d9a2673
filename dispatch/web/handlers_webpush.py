"""Web Push and the live stream: the VAPID public key, subscriptions, ``GET /v1/me/stream``.

The stream (Server-Sent Events, ``text/event-stream``)
------------------------------------------------------

``GET /v1/me/stream`` with the volunteer's bearer token (``Authorization``
header: open it with ``fetch`` and read the body, since ``EventSource`` cannot
send headers). One stream per open app (per tab or device) is the intended use;
a volunteer's fifth stream ends the oldest. What it carries::

    retry: 3000
    event: ready
    data: {"type":"ready","volunteer_id":17,"heartbeat_s":15}

    : heartbeat                       (a comment, every heartbeat_s seconds)

    event: alert
    id: 4
    data: {"type":"alert","title":"…","body":"…","data":{"alert_id":"…",…}}

    event: stand_down
    id: 5
    data: {"type":"stand_down","title":"…","body":"…","data":{"alert_id":"…","state":…}}

- ``event`` is ``alert``, ``stand_down`` (the incident is over, or enough
  responders are on the way: ``data.state`` is ``released`` or ``stood_down``) or
  ``test`` (a self-test). More names may be added; ignore unknown ones.
- ``data`` is one line of JSON, the same document a Web Push payload carries:
  ``title``, ``body`` and ``data`` (the push data keys: ``alert_id``,
  ``incident_id``, ``role``, ``expires_at``, ``call_type``, ``patient_lat`` /
  ``patient_lon``, and for the AED role ``aed_name``, ``aed_lat``, ``aed_lon``,
  ``aed_access``), plus ``type`` (= the event name).
- ``id`` counts per process; events are not replayed after a reconnect (the
  push that follows an unacknowledged alert is the safety net), so ``Last-Event-ID``
  is ignored. De-duplicate by ``data.alert_id`` (with ``type``).
- On an ``alert`` the app acknowledges with ``POST /v1/alerts/{alert_id}/ack`` and
  body ``{"channel": "live"}``; without that acknowledgement within the agency's
  push window the alert goes out by push as well.
- The stream ends after ``DISPATCH_LIVE_STREAM_MAX_S`` (reconnect with a fresh
  access token) and when the service shuts down.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog
from aiohttp import web

from dispatch.service import webpush as webpush_service
from dispatch.service.live import LiveEvent
from dispatch.store.volunteers import VolunteerIdentity
from dispatch.web import app_keys as keys
from dispatch.web.handlers import _volunteer
from dispatch.web.problems import Problem, held_elsewhere, invalid
from notify.webpush import InvalidSubscription, parse_subscription

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()


def _web_push_off() -> Problem:
    return Problem(
        404, "web-push-disabled", "Web Push is off", "this service does not send Web Push"
    )


@routes.get("/v1/webpush/key")
async def webpush_key(request: web.Request) -> web.Response:
    """The VAPID public key a browser subscribes with (``applicationServerKey``)."""
    web_push = request.app[keys.PROVIDERS].web_push
    if web_push is None:
        raise _web_push_off()
    return web.json_response(
        {"public_key": web_push.public_key}, headers={"Cache-Control": "public, max-age=300"}
    )


async def put_web_push(
    request: web.Request, volunteer: VolunteerIdentity, data: dict[str, Any]
) -> web.Response:
    """``PUT /v1/me/devices`` with ``"kind": "web_push"`` (schema-checked by the caller)."""
    web_push = request.app[keys.PROVIDERS].web_push
    if web_push is None:
        raise _web_push_off()
    keys_ = data["keys"]
    try:
        subscription = parse_subscription(
            data["endpoint"],
            keys_["p256dh"],
            keys_["auth"],
            allow_http_loopback=request.app[keys.SETTINGS].webpush_allow_http_loopback,
        )
    except InvalidSubscription as exc:
        raise invalid(f"/{exc.field}", exc.reason) from None
    try:
        subscription_id = await webpush_service.register_subscription(
            request.app[keys.POOL],
            volunteer,
            subscription,
            vapid_public_key=web_push.public_key,
            now=request.app[keys.CLOCK].now(),
        )
    except webpush_service.SubscriptionHeldElsewhere:
        raise held_elsewhere("Subscription", "push subscription", "/endpoint") from None
    return web.json_response(
        {"subscription_id": subscription_id, "kind": "web_push", "platform": "web", "active": True}
    )


def _frame(event: LiveEvent) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event.name}\nid: {event.event_id}\ndata: {data}\n\n".encode()


@routes.get("/v1/me/stream")
async def me_stream(request: web.Request) -> web.StreamResponse:
    volunteer = await _volunteer(request)
    settings = request.app[keys.SETTINGS]
    hub = request.app[keys.LIVE_HUB]
    heartbeat = settings.live_heartbeat_s
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            # Proxies (nginx) must pass each event on at once, not buffer the stream.
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    stream = hub.open(volunteer.volunteer_id)
    ready = {"type": "ready", "volunteer_id": volunteer.volunteer_id, "heartbeat_s": heartbeat}
    ends_at = time.monotonic() + settings.live_stream_max_s
    try:
        await response.write(f"retry: 3000\nevent: ready\ndata: {json.dumps(ready)}\n\n".encode())
        while (left := ends_at - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(min(heartbeat, left)):
                    event = await stream.queue.get()
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if event is None:
                break
            await response.write(_frame(event))
    except ConnectionError:
        pass  # the app went away; its stream is closed below
    finally:
        hub.close(stream)
    return response
