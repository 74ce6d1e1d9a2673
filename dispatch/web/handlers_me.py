"""A volunteer's own data: profile, alerts inbox, self-test, feedback, export, erasure."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from aiohttp import web

from dispatch.domain.field_error import FieldError
from dispatch.domain.volunteer_settings import validate_profile_change
from dispatch.service import aftercare, self_test, volunteer_data
from dispatch.service import profile as profile_service
from dispatch.store import volunteer_data as volunteer_data_store
from dispatch.web import app_keys as keys
from dispatch.web.auth import volunteer_of
from dispatch.web.body import json_body
from dispatch.web.params import too_many, uuid_param
from dispatch.web.problems import found_json, invalid, not_found, unauthorized

routes = web.RouteTableDef()

INBOX_DAYS: Final = timedelta(days=30)


@routes.get("/v1/me")
async def get_me(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    found = await profile_service.get(
        request.app[keys.POOL], volunteer.volunteer_id, request.app[keys.CLOCK].now()
    )
    return found_json(found, unauthorized())


@routes.patch("/v1/me")
async def patch_me(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    try:
        change = validate_profile_change(await json_body(request, "ProfileChange"))
    except FieldError as exc:
        raise invalid(exc.pointer, exc.detail) from None
    found = await profile_service.change(
        request.app[keys.POOL],
        agency_id=volunteer.agency_id,
        volunteer_id=volunteer.volunteer_id,
        change=change,
        cache=request.app[keys.POSITIONS],
        writer=request.app[keys.POSITION_WRITER],
        now=request.app[keys.CLOCK].now(),
    )
    return found_json(found, unauthorized())


@routes.delete("/v1/me")
async def delete_me(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    await volunteer_data.erase(
        request.app[keys.POOL],
        volunteer.volunteer_id,
        cache=request.app[keys.POSITIONS],
        writer=request.app[keys.POSITION_WRITER],
        now=request.app[keys.CLOCK].now(),
    )
    return web.Response(status=204)


@routes.get("/v1/me/alerts")
async def my_alerts(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    now = request.app[keys.CLOCK].now()
    async with request.app[keys.POOL].acquire() as conn:
        alerts = await volunteer_data_store.alerts_inbox(
            conn, volunteer.volunteer_id, now=now, since=now - INBOX_DAYS
        )
    return web.json_response({"alerts": alerts})


@routes.get("/v1/me/export")
async def export_me(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    document = await volunteer_data.export(
        request.app[keys.POOL], volunteer.volunteer_id, now=request.app[keys.CLOCK].now()
    )
    if document is None:
        raise unauthorized()
    return web.json_response(
        document, headers={"Content-Disposition": 'attachment; filename="my-data.json"'}
    )


@routes.post("/v1/me/test-alert")
async def test_alert(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    try:
        sent = await self_test.send(
            request.app[keys.POOL],
            agency_id=volunteer.agency_id,
            volunteer_id=volunteer.volunteer_id,
            now=request.app[keys.CLOCK].now(),
        )
    except self_test.TooMany as exc:
        raise too_many(exc.wait_s, f"at most {self_test.PER_DAY} test alerts a day") from None
    request.app[keys.OUTBOX_WORKER].wakeup.set()
    return web.json_response(
        {
            "alert_id": str(sent.alert_id),
            "incident_id": str(sent.incident_id),
            "expires_at": sent.expires_at.isoformat(),
            "left_today": sent.left_today,
        },
        status=202,
    )


@routes.post("/v1/alerts/{alert_id}/feedback")
async def alert_feedback(request: web.Request) -> web.Response:
    volunteer = await volunteer_of(request)
    data = await json_body(request, "Feedback")
    alert_id = uuid_param(request, "alert_id")
    try:
        feedback_id = await aftercare.feedback(
            request.app[keys.POOL],
            volunteer_id=volunteer.volunteer_id,
            alert_id=alert_id,
            text=data.get("text") or None,
            wants_to_talk=data["wants_to_talk"],
            now=request.app[keys.CLOCK].now(),
        )
    except aftercare.NotFound:
        raise not_found("alert") from None
    return web.json_response(
        {"feedback_id": feedback_id, "wants_to_talk": data["wants_to_talk"]}, status=201
    )
