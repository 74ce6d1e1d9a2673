"""OpenAPI paths and schemas of the review routes (lists, reports, exports)."""

from __future__ import annotations

from typing import Any

from dispatch.domain.incident_states import IncidentState
from dispatch.web.openapi_common import (
    AGENCY,
    SUPERVISOR,
    json_response,
    operation,
    problem,
    query,
    query_int,
)
from dispatch.web.review_params import MAX_CODE, MAX_TEXT, MAX_VALUES
from dispatch.web.schemas import ref

_TEXT_PATTERN = "^[^\\x00-\\x1f\\x7f]*$"
_DATE_OR_TIME = (
    "^(\\d{4}-\\d\\d-\\d\\d|\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,6})?"
    "(Z|[+-]\\d\\d:\\d\\d))$"
)
_BAD = {"400": problem("A query parameter is invalid; `invalid-params` names it")}


def _flag(name: str, description: str) -> dict[str, Any]:
    return query(name, {"type": "string", "enum": ["true", "false"]}, description)


def _many(name: str, values: list[str] | None, description: str) -> dict[str, Any]:
    item: dict[str, Any] = (
        {"type": "string", "enum": values}
        if values
        else {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CODE,
            "pattern": "^[^\\x00-\\x1f\\x7f,]*[^\\x00-\\x1f\\x7f, ][^\\x00-\\x1f\\x7f,]*$",
        }
    )
    param = query(name, {"type": "array", "items": item, "maxItems": MAX_VALUES}, description)
    param["style"], param["explode"] = "form", True
    return param


def _range(report: bool) -> list[dict[str, Any]]:
    schema = {"type": "string", "pattern": _DATE_OR_TIME}
    start = "Received at or after: a date (00:00 in the agency's time zone) or an RFC 3339 time"
    stop = (
        "Received before: a date (its whole day included) or an RFC 3339 time (exclusive); "
        "later than `from`"
    )
    if report:
        start += "; default: the start of the twelfth month back from `to`"
        stop += "; default: the end of the current month"
    return [query("from", schema, start), query("to", schema, stop)]


_CURSOR = query(
    "cursor",
    {"type": "string", "maxLength": 200, "pattern": "^[A-Za-z0-9_-]*$"},
    "`next_cursor` of the previous page (opaque)",
)
_FORMAT = query(
    "format",
    {"type": "string", "enum": ["json", "csv"]},
    "Output format; without it `Accept: text/csv` chooses CSV",
)


def _table_response(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "Next-Cursor": {
                "schema": {"type": "string"},
                "description": "CSV only: the cursor of the next page, when there is one",
            }
        },
        "content": {
            "application/json": {"schema": ref(schema)},
            "text/csv": {"schema": {"type": "string", "description": "The same cells as JSON"}},
        },
    }


def _table(
    summary: str, ok: dict[str, Any], filters: list[dict[str, Any]], *, page_size: int
) -> dict[str, Any]:
    """A supervisor's filtered list of agency rows, a page at a time, as JSON or CSV."""
    return operation(
        summary,
        {"200": ok, **_BAD},
        security=SUPERVISOR,
        parameters=[
            AGENCY,
            *filters,
            query_int("limit", 1, 1000, "Page size", default=page_size),
            _CURSOR,
            _FORMAT,
        ],
    )


def review_paths() -> dict[str, Any]:
    states = [s.value for s in IncidentState]
    return {
        "/v1/agencies/{agency_id}/incidents": {
            "get": _table(
                "The agency's incidents, newest first, filtered, a page at a time",
                _table_response("IncidentPage", "Incidents and the next cursor"),
                [
                    *_range(False),
                    _many("state", states, "Only incidents in these states"),
                    _flag("cardiac_arrest", "true: cardiac arrests only; false: all others"),
                    _flag("test", "true: test incidents only; false: real ones only"),
                    _many("call_type", None, "Only these CAD call type codes"),
                    query(
                        "q",
                        {"type": "string", "maxLength": MAX_TEXT, "pattern": _TEXT_PATTERN},
                        "Text in the address or the incident number (case-insensitive)",
                    ),
                ],
                page_size=50,
            )
        },
        "/v1/agencies/{agency_id}/volunteers": {
            "get": _table(
                "The agency's volunteer roster by id, filtered, a page at a time (no positions)",
                _table_response("VolunteerPage", "Volunteers and the next cursor"),
                [
                    _many("tier", ["lay", "professional"], "Only these tiers"),
                    _flag("verified", "Only verified (true) or unverified (false) volunteers"),
                    query(
                        "certificate_expires_before",
                        {"type": "string", "pattern": _DATE_OR_TIME},
                        "Only volunteers whose certificate runs out before this date or time",
                    ),
                    _flag("on_duty", "Only volunteers on (true) or off (false) duty"),
                ],
                page_size=100,
            )
        },
        "/v1/agencies/{agency_id}/reports/activations": {
            "get": operation(
                "Activations, answers, arrival times, exclusions and alert burden over a range",
                {
                    "200": {
                        "description": "The whole range, each month and each hour of day "
                        "(agency time zone); CSV: one row per group",
                        "content": {
                            "application/json": {"schema": ref("ActivationsReport")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    **_BAD,
                },
                security=SUPERVISOR,
                parameters=[AGENCY, *_range(True), _FORMAT],
                description="Definitions of every number: docs/review.md.",
            )
        },
        "/v1/agencies/{agency_id}/reports/coverage": {
            "get": operation(
                "Verified, available volunteers per H3 cell (resolution 8) in an hour of the "
                "week, from the last 28 days of positions reported on duty",
                {
                    "200": json_response("CoverageReport", "Cells with at least 3 volunteers"),
                    **_BAD,
                },
                security=SUPERVISOR,
                parameters=[
                    AGENCY,
                    {
                        **query_int(
                            "hour", 0, 167, "Hour of the week in the agency's zone, 0 = Monday 0h"
                        ),
                        "required": True,
                    },
                    query_int("limit", 1, 5000, "Cells per page", default=1000),
                    _CURSOR,
                ],
                description="Cells with fewer than 3 volunteers are counted, never listed.",
            )
        },
        "/v1/agencies/{agency_id}/reports/utstein.csv": {
            "get": operation(
                "One Utstein-style CSV row per real cardiac arrest received in the range, "
                "oldest first, for registry submission",
                {
                    "200": {
                        "description": "Times in seconds from receipt; counts of volunteers",
                        "headers": {
                            "Next-Cursor": {
                                "schema": {"type": "string"},
                                "description": "The cursor of the next page, when there is one",
                            }
                        },
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                    },
                    **_BAD,
                },
                security=SUPERVISOR,
                parameters=[
                    AGENCY,
                    *_range(True),
                    query_int("limit", 1, 10000, "Rows per page", default=1000),
                    _CURSOR,
                ],
            )
        },
    }


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **more}


def _page(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key, "next_cursor"],
        "properties": {
            key: {"type": "array", "items": item},
            "next_cursor": _nullable("string", description="null on the last page"),
        },
    }


def review_schemas() -> dict[str, Any]:
    stamp = {"type": "string", "format": "date-time"}
    count = {"type": "integer", "minimum": 0}
    incident = {
        "type": "object",
        "required": [
            "incident_id",
            "incident_number",
            "received_at",
            "state",
            "alerted",
            "accepted",
            "on_scene",
        ],
        "properties": {
            "incident_id": {"type": "string", "format": "uuid"},
            "incident_number": {"type": "string", "description": "The CAD's own incident id"},
            "source": {"type": "string"},
            "received_at": stamp,
            "state": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "closed", "cancelled"]},
            "call_type": {"type": "string"},
            "cardiac_arrest": _nullable("boolean"),
            "test": {"type": "boolean"},
            "address": _nullable("string"),
            "alerted": count,
            "accepted": count,
            "on_scene": count,
            "first_ems_on_scene_at": _nullable("string", format="date-time"),
        },
    }
    volunteer = {
        "type": "object",
        "required": ["volunteer_id", "display_name", "tier", "verified", "on_duty"],
        "properties": {
            "volunteer_id": {"type": "integer"},
            "display_name": {"type": "string"},
            "tier": {"type": "string", "enum": ["lay", "professional"]},
            "verified": {"type": "boolean"},
            "available": {"type": "boolean"},
            "on_duty": {"type": "boolean"},
            "certified_until": _nullable("string", format="date-time"),
            "professional_until": _nullable("string", format="date-time"),
            "is_tester": {"type": "boolean"},
            "self_registered": {"type": "boolean"},
            "created_at": stamp,
        },
    }
    return {
        **_report_schemas(),
        "IncidentPage": _page("incidents", incident),
        "VolunteerPage": _page("volunteers", volunteer),
    }


def _report_schemas() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    rate = _nullable("number", minimum=0, maximum=1)
    seconds = _nullable("number")
    metrics: dict[str, Any] = {
        "activations": count,
        "activations_without_alert": count,
        "alerts_sent": count,
        "alerts_accepted": count,
        "acceptance_rate": rate,
        "with_volunteer_on_scene": count,
        "volunteer_on_scene_rate": rate,
        "volunteer_and_ems_on_scene": count,
        "volunteer_before_ems": count,
        "volunteer_before_ems_rate": rate,
        "median_lead_s": seconds,
        "median_s_to_first_alert": seconds,
        "median_s_to_first_accept": seconds,
        "median_s_to_first_volunteer_on_scene": seconds,
        "median_s_to_first_ems_on_scene": seconds,
        "excluded": count,
        "exclusions": {"type": "object", "additionalProperties": count},
        "volunteers_alerted": count,
        "alerts_per_volunteer_median": seconds,
        "alerts_per_volunteer_p90": seconds,
    }
    group = {"type": "object", "required": sorted(metrics), "properties": metrics}
    month = {**group, "properties": {**metrics, "month": {"type": "string"}}}
    hour = {**group, "properties": {**metrics, "hour": {"type": "integer"}}}
    cell = {
        "type": "object",
        "required": ["cell", "volunteers", "lat", "lon", "boundary"],
        "properties": {
            "cell": {"type": "string", "description": "H3 index, hexadecimal"},
            "volunteers": {"type": "integer", "minimum": 3},
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "boundary": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "number"}, "minItems": 2},
            },
        },
    }
    coverage = {
        "type": "object",
        "required": ["hour_of_week", "since", "suppressed_cells", "cells", "next_cursor"],
        "properties": {
            "hour_of_week": {"type": "integer"},
            "utc_hour_of_week": {"type": "integer"},
            "time_zone": {"type": "string"},
            "since": {"type": "string", "format": "date-time"},
            "resolution": {"type": "integer"},
            "minimum_volunteers": {"type": "integer"},
            "suppressed_cells": count,
            "cells": {"type": "array", "items": cell},
            "next_cursor": _nullable("string"),
        },
    }
    return {
        "CoverageReport": coverage,
        "ReportGroup": group,
        "ActivationsReport": {
            "type": "object",
            "required": ["from", "to", "time_zone", "computed_at", "total", "by_month", "by_hour"],
            "properties": {
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time"},
                "time_zone": {"type": "string"},
                "computed_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When these figures were computed: a kept report's time, "
                    "or this request's (CSV: the Report-Computed-At header)",
                },
                "total": ref("ReportGroup"),
                "by_month": {"type": "array", "items": month},
                "by_hour": {"type": "array", "items": hour, "minItems": 24, "maxItems": 24},
            },
        },
    }
