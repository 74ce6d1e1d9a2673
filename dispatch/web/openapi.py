"""The OpenAPI 3.1 description of the HTTP API. A test keeps it in step with the router."""

from __future__ import annotations

from functools import cache
from typing import Any

from cad_adapters.generic import schema as generic_schema
from dispatch.web.openapi_cap import cap_operation, cap_schemas
from dispatch.web.openapi_common import (
    AGENCY,
    SUPERVISOR,
    VOLUNTEER,
    VOLUNTEER_ID,
    alert_operation,
    json_request,
    json_response,
    newest_page_op,
    operation,
    path_uuid,
    problem,
    supervised_resource,
)
from dispatch.web.openapi_console import CONSOLE_SECURITY, console_paths, console_schemas
from dispatch.web.openapi_delivery import delivery_paths
from dispatch.web.openapi_feeds import feed_paths, feed_schemas
from dispatch.web.openapi_review import review_paths, review_schemas
from dispatch.web.openapi_volunteers import volunteer_paths
from dispatch.web.schemas import component_schemas
from dispatch.web.schemas_volunteers import volunteer_schemas

_INTAKE_DESCRIPTION = (
    "Idempotent by (agency, source, incident id) and ordered by the source's own version or "
    "update time: a replay answers `unchanged`, an older snapshot `stale`; neither changes "
    "anything. Optional body signature: header `Dispatch-Signature: t=<unix seconds>,v1=<hex "
    "HMAC-SHA256 of '<t>.' + body, keyed with SHA-256 of the integration key>`, valid 5 "
    "minutes, each usable once. A refused document is kept for audit."
)
_INCIDENT = path_uuid("incident_id", "The incident")


def _intake(summary: str, content: dict[str, Any]) -> dict[str, Any]:
    signature = {
        "name": "Dispatch-Signature",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
    }
    return operation(
        summary,
        {
            "202": json_response("IntakeResult", "Accepted (or recognised as a replay or stale)"),
            "404": problem("No such agency"),
            "409": problem("Same version with different content, or a replayed signature"),
            "429": problem("The agency's rate limit", retry_after=True),
        },
        security="agencyKey",
        parameters=[AGENCY, signature],
        body={"required": True, "content": content},
        description=_INTAKE_DESCRIPTION,
    )


def _answer(summary: str) -> dict[str, Any]:
    return alert_operation(
        summary,
        {
            "200": json_response("AlertAnswer", "The alert's state after the answer"),
            "409": problem("The alert's state does not allow this answer; `state` gives it"),
        },
    )


def _health_paths() -> dict[str, Any]:
    def plain(summary: str, response: dict[str, Any]) -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": response}}

    return {
        "/healthz": plain("The process is up", {"200": {"description": "Alive"}}),
        "/readyz": plain(
            "Database reachable and workers alive",
            {
                "200": {"description": "Ready"},
                "503": problem("Not ready; `checks` says why", retry_after=True),
            },
        ),
        "/metrics": plain(
            "Prometheus metrics (text exposition format)",
            {"200": {"description": "Metrics", "content": {"text/plain": {}}}},
        ),
        "/v1/openapi.json": plain("This document", {"200": {"description": "OpenAPI"}}),
        "/v1/schemas/generic-incident.v1.json": plain(
            "JSON Schema of the generic incident document",
            {"200": {"description": "JSON Schema (draft 2020-12)"}},
        ),
    }


def _cad_paths() -> dict[str, Any]:
    xml = {"schema": {"type": "string"}}
    return {
        "/v1/cad/{agency_id}/incidents": {
            "post": _intake(
                "Submit a full incident snapshot from a CAD (generic JSON v1)",
                {"application/json": {"schema": {"$ref": "#/components/schemas/GenericIncident"}}},
            )
        },
        "/v1/cad/{agency_id}/eido": {
            "post": _intake(
                "Submit a NENA EIDO 1.0 (NENA-STA-021) JSON document: a full snapshot",
                {"application/json": {"schema": {"type": "object"}}},
            )
        },
        "/v1/cad/{agency_id}/cap": {
            "post": cap_operation(
                _intake(
                    "Submit an OASIS CAP 1.2 alert (Alert, Update or Cancel)",
                    {m: xml for m in ("application/xml", "text/xml", "application/cap+xml")},
                )
            )
        },
    }


def _volunteer_paths() -> dict[str, Any]:
    return {
        "/v1/me/location": {
            "put": operation(
                "Report the volunteer's last known position",
                {"204": {"description": "Stored"}},
                security=VOLUNTEER,
                body=json_request("Fix"),
                description="Only the latest position is kept; it is purged when stale.",
            )
        },
        "/v1/alerts/{alert_id}": {
            "get": alert_operation(
                "The volunteer's alert now: state, role, patient, AED to fetch",
                {"200": json_response("Alert", "The alert")},
            )
        },
        "/v1/alerts/{alert_id}/accept": {"post": _answer("The volunteer is going")},
        "/v1/alerts/{alert_id}/decline": {"post": _answer("The volunteer cannot go")},
        "/v1/alerts/{alert_id}/en-route": {"post": _answer("The volunteer is on the way")},
        "/v1/alerts/{alert_id}/arrived": {"post": _answer("The volunteer reached the patient")},
        "/v1/alerts/{alert_id}/cancel": {
            "post": _answer("The volunteer drops out; the slot is refilled")
        },
    }


def _incident_paths() -> dict[str, Any]:
    def read(summary: str, ok: dict[str, Any]) -> dict[str, Any]:
        return {
            "get": operation(
                summary,
                {"200": ok, "404": problem("No such incident for this agency")},
                security=("agencyKey", SUPERVISOR),
                parameters=[_INCIDENT],
            )
        }

    return {
        "/v1/incidents/{incident_id}/timeline": read(
            "The incident's response log, in order", json_response("Timeline", "Events by time")
        ),
        "/v1/incidents/{incident_id}/metrics": read(
            "Response times from the log: alert, accept, volunteer and EMS",
            {"description": "Seconds from CAD receipt; null until it happened"},
        ),
    }


def _supervisor_paths() -> dict[str, Any]:
    settings = json_response("VolunteerSettings", "The volunteer's settings")
    missing_volunteer = problem("No such volunteer in this agency")
    aeds = {
        "text/csv": {"schema": {"type": "string", "description": "id,name,lat,lon[,...]"}},
        "application/geo+json": {"schema": {"$ref": "#/components/schemas/AedFeatureCollection"}},
    }
    return {
        "/v1/agencies/{agency_id}/volunteers": {
            "post": operation(
                "Register a volunteer (supervisor); the token is shown once",
                {"201": json_response("VolunteerCreated", "Created")},
                security=SUPERVISOR,
                parameters=[AGENCY],
                body=json_request("NewVolunteer"),
            )
        },
        "/v1/agencies/{agency_id}/volunteers/{volunteer_id}": supervised_resource(
            "A volunteer's eligibility settings",
            settings,
            method="patch",
            change="Change tier, certificate, duty, quiet hours, budget, tester or availability",
            changed=settings,
            body="VolunteerSettingsChange",
            parameters=[AGENCY, VOLUNTEER_ID],
            errors={"404": missing_volunteer},
        ),
        "/v1/agencies/{agency_id}/settings": supervised_resource(
            "The agency's intake rules and alert limits (who is alerted: the policy)",
            json_response("AgencySettings", "Current settings"),
            method="patch",
            change="Change some settings; the others stay",
            changed=json_response("AgencySettings", "Settings after the change"),
            body="AgencySettingsChange",
        ),
        "/v1/agencies/{agency_id}/policy": supervised_resource(
            "The agency's current alert policy (waves, target, caps)",
            json_response("Policy", "Policy and version"),
            method="put",
            change="Store a new policy version; running incidents keep theirs",
            changed=json_response("Policy", "The stored policy and its version"),
            body="PolicyDocument",
        ),
        "/v1/agencies/{agency_id}/volunteers/{volunteer_id}/events": {
            "get": newest_page_op(
                "A volunteer's timeline outside incidents (devices, opt-outs), newest first",
                {"description": "Events with time, name and details"},
                "events",
                filters=(VOLUNTEER_ID,),
                errors={"404": missing_volunteer},
            )
        },
        "/v1/agencies/{agency_id}/aeds": {
            "get": newest_page_op(
                "The agency's AED registry, newest first, a page at a time",
                {"description": "AEDs and `next_before`, the next page's cursor"},
                "AEDs",
                default=500,
                maximum=1000,
            ),
            "post": operation(
                "Import AEDs from CSV or GeoJSON (insert or update by id)",
                {
                    "200": {"description": "How many AEDs were imported"},
                    "413": problem("Larger than 16 MiB"),
                },
                security=SUPERVISOR,
                parameters=[AGENCY],
                body={"required": True, "content": aeds},
                description="Up to 50,000 AEDs and 16 MiB per file; all or none stored.",
            ),
        },
        "/v1/agencies/{agency_id}/rejected-documents": {
            "get": newest_page_op(
                "CAD documents the intake refused, newest first, kept for audit",
                {"description": "Refused documents with status and reason"},
                "documents",
            )
        },
    }


def _merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """Path items of several parts; methods on the same path from different parts combine."""
    paths: dict[str, Any] = {}
    for part in parts:
        for path, item in part.items():
            paths[path] = {**paths.get(path, {}), **item}
    return paths


@cache
def openapi_document() -> dict[str, Any]:
    incident = {k: v for k, v in generic_schema().items() if not k.startswith("$")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CPR volunteer dispatch",
            "version": "1",
            "description": (
                "CAD intake, volunteer positions and answers, incident timelines. No string "
                "anywhere may hold U+0000 (NUL) or an unpaired surrogate: either is refused with "
                "422 naming the field. Dates are accepted from 1900 to 2200."
            ),
        },
        "paths": _merged(
            _health_paths(),
            _cad_paths(),
            _volunteer_paths(),
            _incident_paths(),
            _supervisor_paths(),
            delivery_paths(),
            feed_paths(),
            volunteer_paths(),
            review_paths(),
            console_paths(),
        ),
        "components": {
            "securitySchemes": {
                "agencyKey": {"type": "http", "scheme": "bearer", "description": "dak_… key"},
                "volunteerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "dva_… (a session's access token) or dvt_… (supervisor-issued)",
                },
                "supervisorToken": {"type": "http", "scheme": "bearer", "description": "dsv_…"},
                "consoleSession": CONSOLE_SECURITY,
                "twilioSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Twilio-Signature",
                    "description": "Twilio's HMAC of our public URL and the form (auth token)",
                },
            },
            "schemas": {
                **component_schemas(),
                **feed_schemas(),
                **cap_schemas(),
                **volunteer_schemas(),
                **console_schemas(),
                **review_schemas(),
                "GenericIncident": incident,
            },
        },
    }
