"""What the agency's supervisors see of volunteers' care and of each other: debrief requests,
the audit log, and a volunteer's full export (itself audited)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatch.service import aftercare, volunteer_data
from dispatch.store import aftercare as aftercare_store
from dispatch.store import audit
from dispatch.store import volunteer_data as volunteer_data_store
from dispatch.web import app_keys as keys
from dispatch.web.body import json_body
from dispatch.web.params import int_param, newest_page, query_choice, supervisor
from dispatch.web.problems import Problem, found_json, not_found

routes = web.RouteTableDef()


@routes.get("/v1/agencies/{agency_id}/debrief-requests")
async def debrief_requests(request: web.Request) -> web.Response:
    return await newest_page(request, "requests", aftercare_store.debrief_requests, _handled)


def _handled(request: web.Request) -> dict[str, Any]:
    state = query_choice(request, "state", ("open", "handled", "all"), "open")
    return {"handled": {"open": False, "handled": True}.get(state or "open")}


@routes.post("/v1/agencies/{agency_id}/debrief-requests/{request_id}/handled")
async def debrief_handled(request: web.Request) -> web.Response:
    agency_id, actor = await supervisor(request)
    request_id = int_param(request, "request_id")
    data = await json_body(request, "DebriefHandled")
    assert actor.supervisor_id is not None
    done = await aftercare.handled(
        request.app[keys.POOL],
        agency_id=agency_id,
        request_id=request_id,
        supervisor_id=actor.supervisor_id,
        note=data.get("note") or None,
        now=request.app[keys.CLOCK].now(),
    )
    if done is not None:
        return web.json_response(done)
    async with request.app[keys.POOL].acquire() as conn:
        exists = await aftercare_store.request_exists(conn, agency_id, request_id)
    if not exists:
        raise not_found("debrief request")
    raise Problem(409, "already-handled", "Already handled", "this request was handled before")


@routes.get("/v1/agencies/{agency_id}/audit-log")
async def audit_log(request: web.Request) -> web.Response:
    return await newest_page(request, "entries", audit.newest)


@routes.get("/v1/agencies/{agency_id}/volunteers/{volunteer_id}/export")
async def export_volunteer(request: web.Request) -> web.Response:
    agency_id, actor = await supervisor(request)
    volunteer_id = int_param(request, "volunteer_id")
    async with request.app[keys.POOL].acquire() as conn:
        belongs = await volunteer_data_store.in_agency(conn, agency_id, volunteer_id)
    if not belongs:
        raise not_found("volunteer")
    document = await volunteer_data.export(
        request.app[keys.POOL], volunteer_id, now=request.app[keys.CLOCK].now(), by=actor
    )
    return found_json(document, not_found("volunteer"))
