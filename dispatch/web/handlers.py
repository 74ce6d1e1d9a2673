"""HTTP handlers. Each one authenticates, validates, calls one service function, answers JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cad_adapters.generic import schema
from dispatch.db.pool import DATABASE_ERRORS, ping
from dispatch.db.types import Conn
from dispatch.domain.alert_states import AlertEvent, AlertState, IllegalTransition
from dispatch.domain.incident_metrics import compute
from dispatch.domain.waves import RESPONDING
from dispatch.secrets import TokenKind, bearer_token
from dispatch.service.responses import AlertNotFound, respond
from dispatch.store import agencies as agency_store
from dispatch.store import alerts as alert_store
from dispatch.store import delivery as delivery_store
from dispatch.store import incidents as incident_store
from dispatch.store import response_log
from dispatch.store.volunteers import PositionRow, VolunteerIdentity
from dispatch.web import app_keys as keys
from dispatch.web.auth import console_session, record_use, uses_console_cookie, volunteer_of
from dispatch.web.body import json_body
from dispatch.web.openapi import openapi_document
from dispatch.web.problems import (
    Problem,
    invalid,
    not_found,
    unauthorized,
    wrong_state,
)

routes = web.RouteTableDef()

# A phone's clock may run slightly ahead; a fix further in the future is refused.
_MAX_CLOCK_SKEW = timedelta(seconds=60)


def _uuid(request: web.Request, name: str) -> UUID:
    try:
        return UUID(request.match_info[name])
    except ValueError:
        raise not_found(name.removesuffix("_id")) from None


def _token(request: web.Request, *kinds: TokenKind) -> str:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None or not token.startswith(tuple(f"{k.value}_" for k in kinds)):
        raise unauthorized()
    return token


async def _volunteer(request: web.Request) -> VolunteerIdentity:
    return await volunteer_of(request)


# --- health ---------------------------------------------------------------------------------


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        async with request.app[keys.POOL].acquire(timeout=1.0) as conn:
            await ping(conn, limit_s=1.0)
        checks["database"] = "ok"
    except DATABASE_ERRORS as exc:
        # Whatever a restarting server makes asyncpg raise, readiness reports it: never a 500.
        checks["database"] = f"unreachable: {type(exc).__name__}"
    expected = {"position_writer", "position_follower", "listener", "housekeeping"}
    if request.app[keys.SETTINGS].notifier_enabled:
        expected.update(("outbox_worker", "notice_worker"))
    if request.app[keys.SETTINGS].feeds_enabled:
        expected.add("feed_poller")
    if request.app[keys.SETTINGS].ticker_enabled:
        expected.add("deadline_ticker")
    tasks = request.app[keys.WORKER_TASKS]
    for name in sorted(expected):
        task = tasks.get(name)
        checks[name] = "ok" if task is not None and not task.done() else "not running"
    if all(v == "ok" for v in checks.values()):
        return web.json_response({"status": "ready", "checks": checks})
    raise Problem(503, "not-ready", "Not ready", extra={"checks": checks})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    registry = request.app[keys.METRICS]
    try:
        async with request.app[keys.POOL].acquire() as conn:
            registry.outbox_oldest_due.set(await delivery_store.oldest_due_age_s(conn))
    except DATABASE_ERRORS:
        # The scrape still answers; the database's own trouble shows in /readyz and `up`.
        pass
    payload = generate_latest(registry.registry)
    return web.Response(body=payload, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


@routes.get("/v1/schemas/generic-incident.v1.json")
async def generic_schema(request: web.Request) -> web.Response:
    return web.json_response(schema(), content_type="application/schema+json")


# --- volunteers -----------------------------------------------------------------------------


def _fix_time(data: dict[str, Any], now: datetime) -> datetime:
    """When the phone took the fix (default: now); aware, and not in the future."""
    if "at" not in data:
        return now
    # The schema's pattern admits only RFC 3339 stamps with an offset, in supported years.
    stamp = datetime.fromisoformat(data["at"]).astimezone(UTC)
    if stamp > now + _MAX_CLOCK_SKEW:
        raise invalid("/at", "is in the future")
    return stamp


@routes.put("/v1/me/location")
async def put_location(request: web.Request) -> web.Response:
    volunteer = await _volunteer(request)
    data = await json_body(request, "Fix")
    lat, lon = float(data["lat"]), float(data["lon"])
    accuracy = float(data["accuracy_m"]) if "accuracy_m" in data else None
    now = request.app[keys.CLOCK].now()
    at = _fix_time(data, now)
    if not volunteer.on_duty:
        # Off duty, no whereabouts are kept at all.
        return web.Response(status=204)
    row = PositionRow(volunteer.volunteer_id, volunteer.agency_id, lat, lon, accuracy, at)
    if volunteer.eligible:
        request.app[keys.POSITIONS].upsert(row)
    request.app[keys.POSITION_WRITER].submit(row)
    return web.Response(status=204)


# --- alerts ---------------------------------------------------------------------------------


async def _answer(request: web.Request, event: AlertEvent) -> web.Response:
    alert_id = _uuid(request, "alert_id")
    volunteer = await _volunteer(request)
    try:
        result = await respond(
            request.app[keys.POOL],
            alert_id=alert_id,
            volunteer_id=volunteer.volunteer_id,
            event=event,
            now=request.app[keys.CLOCK].now(),
            positions=request.app[keys.POSITIONS],
        )
    except AlertNotFound:
        raise not_found("alert") from None
    except IllegalTransition as exc:
        raise wrong_state(
            "illegal-transition", "The alert cannot make this move", exc, exc.state.value
        ) from None
    if result.alerts_queued:
        request.app[keys.OUTBOX_WORKER].wakeup.set()
    return web.json_response(
        {"alert_id": str(result.alert_id), "state": result.state.value, "changed": result.changed}
    )


def _alert_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The alert as the app shows it. The patient's address only while the volunteer is
    responding: one who has not accepted (or has stood down) needs the direction and
    distance, not the door."""
    aed = None
    if row["role"] == "aed" and row["aed_name"] is not None:
        aed = {
            "name": row["aed_name"],
            "lat": row["aed_lat"],
            "lon": row["aed_lon"],
            "indoor_description": row["indoor_description"],
            "access_notes": row["access_notes"],
        }
    responding = AlertState(row["state"]) in RESPONDING
    ended = row["incident_status"] != "active"
    return {
        "alert_id": str(row["id"]),
        "incident_id": str(row["incident_id"]),
        "state": row["state"],
        "role": row["role"],
        "test": row["role"] == "test" or row["is_test"],
        "expires_at": row["expires_at"].isoformat(),
        "distance_m": round(row["distance_m"]),
        "incident_status": row["incident_status"],
        "ended_reason": row["ended_reason"],
        "patient": {
            "lat": row["lat"],
            "lon": row["lon"],
            "address": row["address"] if responding else None,
        },
        "aed": aed,
        "aftercare": {
            "asked": ended and row["was_accepted"] and row["role"] != "test",
            "answered": row["feedback_given"],
        },
    }


@routes.get("/v1/alerts/{alert_id}")
async def get_alert(request: web.Request) -> web.Response:
    """The volunteer's own alert as it stands now: state, role, where to go, which AED."""
    alert_id = _uuid(request, "alert_id")
    volunteer = await _volunteer(request)
    async with request.app[keys.POOL].acquire() as conn:
        found = await alert_store.volunteer_view(conn, alert_id, volunteer.volunteer_id)
    if found is None:
        raise not_found("alert")
    return web.json_response(_alert_view(found))


# The volunteer's answers, each a POST to /v1/alerts/{alert_id}/<name>. ``cancel``: the
# volunteer cannot go after all (before or after accepting); the slot is refilled.
ANSWERS: Final = {
    "accept": AlertEvent.ACCEPT,
    "decline": AlertEvent.DECLINE,
    "en-route": AlertEvent.DEPART,
    "arrived": AlertEvent.ARRIVE,
    "cancel": AlertEvent.CANCEL,
}


def _answer_handler(event: AlertEvent) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def answer(request: web.Request) -> web.Response:
        return await _answer(request, event)

    return answer


for _name, _event in ANSWERS.items():
    routes.post(f"/v1/alerts/{{alert_id}}/{_name}")(_answer_handler(_event))


# --- supervisors ----------------------------------------------------------------------------


async def readable_incident(request: web.Request, conn: Conn) -> UUID:
    """The incident in the path, if the caller's agency key or supervisor token covers it."""
    incident_id = _uuid(request, "incident_id")
    if uses_console_cookie(request):
        session = await console_session(request)
        if await incident_store.agency_of(conn, incident_id) != session.agency_id:
            raise not_found("incident")
        await record_use(request, session, conn)
        return incident_id
    token = _token(request, TokenKind.AGENCY_KEY, TokenKind.SUPERVISOR)
    if token.startswith(TokenKind.SUPERVISOR.value):
        caller = await agency_store.supervisor_agency(conn, token)
    else:
        caller = await agency_store.key_agency(conn, token)
    if caller is None:
        raise unauthorized("the token is not valid (unknown or revoked)")
    if await incident_store.agency_of(conn, incident_id) != caller:
        # Same answer for "no such incident" and "not yours": ids are not an oracle.
        raise not_found("incident")
    return incident_id


@routes.get("/v1/incidents/{incident_id}/timeline")
async def timeline(request: web.Request) -> web.Response:
    async with request.app[keys.POOL].acquire() as conn:
        incident_id = await readable_incident(request, conn)
        events = await response_log.timeline(conn, incident_id)
    return web.json_response({"incident_id": str(incident_id), "events": events})


@routes.get("/v1/incidents/{incident_id}/metrics")
async def incident_metrics(request: web.Request) -> web.Response:
    """Times from our receipt of the CAD call to first alert, accept, volunteer and EMS on scene."""
    async with request.app[keys.POOL].acquire() as conn:
        incident_id = await readable_incident(request, conn)
        received_at, events = await response_log.metric_inputs(conn, incident_id)
        state = await incident_store.state_of(conn, incident_id)
    metrics = compute(received_at, events)
    return web.json_response({"incident_id": str(incident_id), "state": state, **metrics.to_json()})
