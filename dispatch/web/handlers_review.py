"""What supervisors review: incident lists, the roster, activation and coverage reports, exports.

Every route takes the agency's supervisor token; every list is a keyset page with an
opaque ``cursor``; every table answers JSON or CSV with the same cells.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

from aiohttp import web

from dispatch.domain.incident_states import IncidentState
from dispatch.domain.intake import NotAlertable
from dispatch.domain.time_zones import agency_time_zone
from dispatch.store import agencies as agency_store
from dispatch.store import review as review_store
from dispatch.store import review_activations
from dispatch.web import app_keys as keys
from dispatch.web import review_params as qp
from dispatch.web.params import supervisor
from dispatch.web.problems import not_found
from dispatch.web.review_format import csv_response, csv_text, json_response, page_cursor, plain
from geoindex import cell_to_boundary, cell_to_latlng

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


async def _agency(request: web.Request) -> tuple[UUID, ZoneInfo]:
    agency_id, _ = await supervisor(request)
    async with request.app[keys.POOL].acquire() as conn:
        name = await agency_store.time_zone(conn, agency_id)
    if name is None:
        raise not_found("agency")
    return agency_id, agency_time_zone(agency_id, name)


def _row(row: Any) -> dict[str, Any]:
    """A row dataclass's fields by name. ``dataclasses.asdict`` deep-copies every value, which
    was most of a list page's server time; these rows hold only ids, times, text and numbers."""
    return {f.name: getattr(row, f.name) for f in fields(row)}


def _table(
    key: str,
    columns: tuple[str, ...],
    rows: list[dict[str, Any]],
    next_cursor: str | None,
    fmt: str,
) -> web.Response:
    if fmt == "csv":
        return csv_response(csv_text(columns, rows), filename=f"{key}.csv", next_cursor=next_cursor)
    return json_response(
        {key: [{c: plain(r[c]) for c in columns} for r in rows], "next_cursor": next_cursor}
    )


# Per keyset-paged table: its columns, the keys its cursor is made of, the default page size.
_PAGED: Final = {
    "incidents": (INCIDENT_COLUMNS, ("received_at", "incident_id"), 50),
    "volunteers": (VOLUNTEER_COLUMNS, ("volunteer_id",), 100),
}


async def _keyset_page(
    request: web.Request,
    key: str,
    search: Callable[..., Awaitable[Sequence[Any]]],
    agency_id: UUID,
    f: Any,
) -> web.Response:
    """One page of ``search(conn, agency_id, f, limit=)``'s rows (dataclasses) as table ``key``."""
    columns, cursor_keys, default_limit = _PAGED[key]
    limit = qp.integer(request, "limit", default=default_limit, low=1, high=1000)
    fmt = qp.output_format(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await search(conn, agency_id, f, limit=limit)
    rows = [_row(r) for r in found]
    return _table(key, columns, rows, page_cursor(rows, limit, cursor_keys), fmt)


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
    return await _keyset_page(request, "incidents", review_store.incidents, agency_id, f)


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
    return await _keyset_page(request, "volunteers", review_store.volunteers, agency_id, f)


# --- activations report ------------------------------------------------------------------------

REASONS = (*(r.value for r in NotAlertable), "test", "other")
# Per group, in this order; `exclusions` is expanded to one column per reason in CSV.
REPORT_FIELDS = (
    "activations",
    "activations_without_alert",
    "alerts_sent",
    "alerts_accepted",
    "acceptance_rate",
    "with_volunteer_on_scene",
    "volunteer_on_scene_rate",
    "volunteer_and_ems_on_scene",
    "volunteer_before_ems",
    "volunteer_before_ems_rate",
    "median_lead_s",
    "median_s_to_first_alert",
    "median_s_to_first_accept",
    "median_s_to_first_volunteer_on_scene",
    "median_s_to_first_ems_on_scene",
    "excluded",
    "volunteers_alerted",
    "alerts_per_volunteer_median",
    "alerts_per_volunteer_p90",
)
REPORT_COLUMNS = ("group", "key", *REPORT_FIELDS, *(f"excluded_{r}" for r in REASONS))
MAX_RANGE_DAYS = 3660


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _secs(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _metrics(raw: dict[str, Any] | None) -> dict[str, Any]:
    raw = raw or {}

    def n(name: str) -> int:
        return int(raw.get(name) or 0)

    exclusions = dict.fromkeys(REASONS, 0)
    for reason, count in (raw.get("exclusions") or {}).items():
        key = reason if reason in exclusions else "other"
        exclusions[key] += count
    return {
        "activations": n("activations"),
        "activations_without_alert": n("activations_without_alert"),
        "alerts_sent": n("alerts_sent"),
        "alerts_accepted": n("alerts_accepted"),
        "acceptance_rate": _rate(n("alerts_accepted"), n("alerts_sent")),
        "with_volunteer_on_scene": n("with_volunteer_on_scene"),
        "volunteer_on_scene_rate": _rate(n("with_volunteer_on_scene"), n("activations")),
        "volunteer_and_ems_on_scene": n("volunteer_and_ems_on_scene"),
        "volunteer_before_ems": n("volunteer_before_ems"),
        "volunteer_before_ems_rate": _rate(
            n("volunteer_before_ems"), n("volunteer_and_ems_on_scene")
        ),
        "median_lead_s": _secs(raw.get("median_lead_s")),
        "median_s_to_first_alert": _secs(raw.get("median_s_to_first_alert")),
        "median_s_to_first_accept": _secs(raw.get("median_s_to_first_accept")),
        "median_s_to_first_volunteer_on_scene": _secs(
            raw.get("median_s_to_first_volunteer_on_scene")
        ),
        "median_s_to_first_ems_on_scene": _secs(raw.get("median_s_to_first_ems_on_scene")),
        "excluded": n("excluded"),
        "volunteers_alerted": n("volunteers_alerted"),
        "alerts_per_volunteer_median": _secs(raw.get("alerts_per_volunteer_median")),
        "alerts_per_volunteer_p90": _secs(raw.get("alerts_per_volunteer_p90")),
        "exclusions": exclusions,
    }


def _months(start: datetime, stop: datetime, tz: ZoneInfo) -> list[str]:
    first = start.astimezone(tz)
    last = (stop - timedelta(microseconds=1)).astimezone(tz)
    year, month = first.year, first.month
    out = []
    while (year, month) <= (last.year, last.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as flat rows: the total, each month, each hour (the CSV's rows)."""
    groups = [("total", "", report["total"])]
    groups += [("month", m["month"], m) for m in report["by_month"]]
    groups += [("hour", h["hour"], h) for h in report["by_hour"]]
    rows = []
    for group, key, values in groups:
        row = {"group": group, "key": key, **{f: values[f] for f in REPORT_FIELDS}}
        row.update({f"excluded_{r}": values["exclusions"][r] for r in REASONS})
        rows.append(row)
    return rows


def _report_range(request: web.Request, tz: ZoneInfo) -> tuple[datetime, datetime]:
    now = request.app[keys.CLOCK].now()
    return qp.report_range(request, tz, now, max_days=MAX_RANGE_DAYS)


@routes.get("/v1/agencies/{agency_id}/reports/activations")
async def activations_report(request: web.Request) -> web.Response:
    agency_id, tz = await _agency(request)
    start, stop = _report_range(request, tz)
    fmt = qp.output_format(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await review_activations.activations(conn, agency_id, start, stop, tz.key)
    groups = found.groups
    computed_at = plain(found.computed_at)
    report = {
        "from": start.isoformat(),
        "to": stop.isoformat(),
        "time_zone": tz.key,
        "computed_at": computed_at,
        "total": _metrics(groups.get(("total", None))),
        "by_month": [
            {"month": m, **_metrics(groups.get(("month", m)))} for m in _months(start, stop, tz)
        ],
        "by_hour": [{"hour": h, **_metrics(groups.get(("hour", h)))} for h in range(24)],
    }
    if fmt == "csv":
        response = csv_response(
            csv_text(REPORT_COLUMNS, report_rows(report)), filename="activations.csv"
        )
        response.headers["Report-Computed-At"] = computed_at
        return response
    return json_response(report)


# --- coverage ----------------------------------------------------------------------------------


def utc_hour_of_week(local_hour_of_week: int, tz: ZoneInfo, now: datetime) -> int:
    """The UTC hour of the week that is ``local_hour_of_week`` in ``tz`` at today's offset
    (a zone 30 minutes off the hour maps to the UTC hour its local hour starts in)."""
    offset = now.astimezone(tz).utcoffset()
    offset_s = int(offset.total_seconds()) if offset is not None else 0
    return (local_hour_of_week - offset_s // 3600) % 168


@lru_cache(maxsize=8192)
def _cell_shape(cell: int) -> tuple[float, float, tuple[tuple[float, float], ...]]:
    """A cell's centre and outline, rounded as the report gives them. The same for every
    request and every agency (a cell is only a place), and most of the report's own time
    when made anew; 8,192 cells of 0.74 km² cover a large city several times."""
    lat, lon = cell_to_latlng(cell)
    outline = tuple((round(a, 6), round(b, 6)) for a, b in cell_to_boundary(cell))
    return round(lat, 6), round(lon, 6), outline


@routes.get("/v1/agencies/{agency_id}/reports/coverage")
async def coverage_report(request: web.Request) -> web.Response:
    agency_id, tz = await _agency(request)
    hour = qp.required_integer(request, "hour", low=0, high=167)
    limit = qp.integer(request, "limit", default=1000, low=1, high=5000)
    after = qp.int_cursor(request)
    now = request.app[keys.CLOCK].now()
    utc_hour = utc_hour_of_week(hour, tz, now)
    since = now - review_store.COVERAGE_WINDOW
    async with request.app[keys.POOL].acquire() as conn:
        found = await review_store.coverage(
            conn,
            agency_id,
            utc_hour_of_week=utc_hour,
            since=since,
            minimum=review_store.COVERAGE_MINIMUM,
            after_cell=after,
            limit=limit,
        )
    cells = []
    for cell, volunteers in found.cells:
        lat, lon, boundary = _cell_shape(cell)
        cells.append(
            {
                "cell": f"{cell:x}",
                "volunteers": volunteers,
                "lat": lat,
                "lon": lon,
                "boundary": boundary,
            }
        )
    next_cursor = qp.encode_cursor([found.cells[-1][0]]) if len(found.cells) == limit else None
    return json_response(
        {
            "hour_of_week": hour,
            "utc_hour_of_week": utc_hour,
            "time_zone": tz.key,
            "since": since.isoformat(),
            "resolution": 8,
            "minimum_volunteers": review_store.COVERAGE_MINIMUM,
            "suppressed_cells": found.suppressed,
            "cells": cells,
            "next_cursor": next_cursor,
        }
    )


# --- Utstein export ----------------------------------------------------------------------------

UTSTEIN_COLUMNS = tuple(f.name for f in fields(review_store.UtsteinRow))


@routes.get("/v1/agencies/{agency_id}/reports/utstein.csv")
async def utstein_export(request: web.Request) -> web.Response:
    agency_id, tz = await _agency(request)
    start, stop = _report_range(request, tz)
    after = qp.time_id_cursor(request)
    limit = qp.integer(request, "limit", default=1000, low=1, high=10000)
    async with request.app[keys.POOL].acquire() as conn:
        found = await review_store.utstein(conn, agency_id, start, stop, after=after, limit=limit)
    rows = [_row(r) for r in found]
    cursor = page_cursor(rows, limit, ("received_at", "incident_id"))
    return csv_response(csv_text(UTSTEIN_COLUMNS, rows), filename="utstein.csv", next_cursor=cursor)
