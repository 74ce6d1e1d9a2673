"""What supervisors review: incident lists, the roster, activation and coverage reports, exports.

Every route takes the agency's supervisor token; every list is a keyset page with an
opaque ``cursor``; every table answers JSON or CSV with the same cells.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from dispatch.domain.incident_states import IncidentState
from dispatch.store import review as review_store
from dispatch.web import app_keys as keys
from dispatch.web import review_params as qp
from dispatch.web.params import supervisor
from dispatch.web.problems import not_found
from dispatch.web.review_format import csv_response, csv_text, page_cursor, plain

routes = web.RouteTableDef()

INCIDENT_COLUMNS = (
    "incident_id",
    "incident_number",
    "source",
    "received_at",
    "state",
    "status",
    "call_type",
    "cardiac_arrest",
    "test",
    "address",
    "alerted",
    "accepted",
    "on_scene",
    "first_ems_on_scene_at",
)
VOLUNTEER_COLUMNS = (
    "volunteer_id",
    "display_name",
    "tier",
    "verified",
    "available",
    "on_duty",
    "certified_until",
    "professional_until",
    "is_tester",
    "self_registered",
    "created_at",
)
STATES = tuple(s.value for s in IncidentState)
TIERS = ("lay", "professional")


async def _agency(request: web.Request) -> tuple[Any, ZoneInfo]:
    agency_id, _ = await supervisor(request)
    async with request.app[keys.POOL].acquire() as conn:
        name = await review_store.agency_zone(conn, agency_id)
    if name is None:
        raise not_found("agency")
    return agency_id, qp.zone(name)


def _table(
    request: web.Request,
    key: str,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    next_cursor: str | None,
    fmt: str,
) -> web.Response:
    if fmt == "csv":
        return csv_response(csv_text(columns, rows), filename=f"{key}.csv", next_cursor=next_cursor)
    return web.json_response(
        {key: [{c: plain(r[c]) for c in columns} for r in rows], "next_cursor": next_cursor}
    )


@routes.get("/v1/agencies/{agency_id}/incidents")
async def list_incidents(request: web.Request) -> web.Response:
    agency_id, tz = await _agency(request)
    start, stop = qp.date_range(request, tz, required=False)
    f = review_store.IncidentFilter(
        received_from=start,
        received_to=stop,
        states=qp.choices(request, "state", STATES),
        cardiac_arrest=qp.flag(request, "cardiac_arrest"),
        is_test=qp.flag(request, "test"),
        call_types=qp.texts(request, "call_type"),
        text=qp.text(request, "q"),
        after=qp.time_id_cursor(request),
    )
    limit = qp.integer(request, "limit", default=50, low=1, high=1000)
    fmt = qp.output_format(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await review_store.incidents(conn, agency_id, f, limit=limit)
    rows = [asdict(r) for r in found]
    cursor = page_cursor(rows, limit, ("received_at", "incident_id"))
    return _table(request, "incidents", INCIDENT_COLUMNS, rows, cursor, fmt)


@routes.get("/v1/agencies/{agency_id}/volunteers")
async def list_volunteers(request: web.Request) -> web.Response:
    agency_id, tz = await _agency(request)
    f = review_store.VolunteerFilter(
        tiers=qp.choices(request, "tier", TIERS),
        verified=qp.flag(request, "verified"),
        certificate_before=qp.instant(request, "certificate_expires_before", tz, end=False),
        on_duty=qp.flag(request, "on_duty"),
        after_id=qp.int_cursor(request),
    )
    limit = qp.integer(request, "limit", default=100, low=1, high=1000)
    fmt = qp.output_format(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await review_store.volunteers(conn, agency_id, f, limit=limit)
    rows = [asdict(r) for r in found]
    cursor = page_cursor(rows, limit, ("volunteer_id",))
    return _table(request, "volunteers", VOLUNTEER_COLUMNS, rows, cursor, fmt)
