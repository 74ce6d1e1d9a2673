"""CAD intake over HTTP: generic JSON, NENA EIDO and CAP, one pipeline for all three.

Every request passes, in order: the agency's bearer key, the agency's rate
limit, the body signature (when sent or required), the format's parser (for CAP
also the alert's XML signature when the agency pins a certificate), and then one
intake transaction (one per alert of a CAP EDXL-DE envelope). Anything refused
before that transaction changes nothing; the replay check runs inside it, so a
replay changes nothing either.
A document refused after the key and the rate limit (wrong media type, too
large, bad signature, unreadable or invalid) is kept, size-capped, in the
agency's audit list of rejected documents (``dispatch.store.rejected``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from aiohttp import web

from cad_adapters.cap_document import read_cap
from cad_adapters.cap_signature import CapSignatureError, pinned_certificate
from cad_adapters.eido import parse_eido
from cad_adapters.errors import CadParseError
from cad_adapters.generic import decode_json, parse_generic
from cad_adapters.models import IncidentReport
from dispatch.domain.intake import VersionConflict
from dispatch.domain.models import AgencyPolicy
from dispatch.domain.time_zones import agency_time_zone
from dispatch.secrets import (
    SIGNATURE_HEADER,
    SignatureError,
    TokenKind,
    bearer_token,
    verify_body_signature,
)
from dispatch.service.ingest import IngestResult, ReplayedSignature, ingest_incident
from dispatch.store import agencies as agency_store
from dispatch.store import rejected as rejected_store
from dispatch.store.agencies import AgencyAuth
from dispatch.web import app_keys as keys
from dispatch.web.auth import checked
from dispatch.web.problems import (
    Problem,
    agency_misconfigured,
    invalid,
    not_found,
    refused_document,
    unauthorized,
)

log = structlog.get_logger(__name__)
routes = web.RouteTableDef()

_JSON_TYPES = frozenset({"application/json"})
_XML_TYPES = frozenset(
    {
        "application/xml",
        "text/xml",
        "application/cap+xml",
        "application/common-alerting-protocol+xml",
    }
)


@dataclass(frozen=True, slots=True)
class _Parsed:
    """What one posted document holds: its reports, and notes for each one's timeline."""

    reports: tuple[IncidentReport, ...]
    notes: Mapping[str, Any]
    envelope: str | None = None
    """Set when the document was an envelope of alerts: the answer lists one result each."""
    distribution_id: str | None = None


_Parse = Callable[[bytes, AgencyPolicy, datetime], _Parsed]


def _json_then(parse: Callable[..., IncidentReport]) -> _Parse:
    """Decode JSON strictly (400 when that fails), then parse the structure (422)."""

    def run(body: bytes, policy: AgencyPolicy, now: datetime) -> _Parsed:
        try:
            document = decode_json(body)
        except CadParseError as exc:
            raise refused_document(exc.pointer, exc.detail) from None
        if not isinstance(document, dict):
            raise invalid("", "the document must be a JSON object")
        tz = agency_time_zone(policy.agency_id, policy.time_zone)
        return _Parsed((parse(document, default_tz=tz),), {})

    return run


def _cap(body: bytes, policy: AgencyPolicy, now: datetime) -> _Parsed:
    """A CAP alert or EDXL-DE envelope; signatures checked when the agency pins a certificate."""
    pinned = None
    if policy.cap_signing_cert is not None:
        try:
            pinned = pinned_certificate(policy.cap_signing_cert)
        except ValueError:
            # Validated when stored, so only a hand-edited row gets here: refuse, never skip.
            raise agency_misconfigured(
                "the agency's pinned CAP signing certificate cannot be read; set it again"
            ) from None
    try:
        tz = agency_time_zone(policy.agency_id, policy.time_zone)
        document = read_cap(body, default_tz=tz, pinned=pinned, now=now)
    except CapSignatureError as exc:
        raise Problem(
            422,
            "cap-signature",
            "The alert's signature is not accepted",
            exc.detail,
            pointer=exc.pointer,
        ) from None
    notes: dict[str, Any] = {"signature": document.signature}
    if document.envelope is not None:
        notes["envelope"] = document.envelope
    return _Parsed(document.reports, notes, document.envelope, document.distribution_id)


@dataclass(frozen=True, slots=True)
class _Format:
    name: str
    media_types: frozenset[str]
    parse: _Parse
    in_thread: Callable[[AgencyPolicy], bool] = lambda policy: False
    """Whether parsing may take long enough (milliseconds per alert) to keep it off the loop."""


_FORMATS = {
    "incidents": _Format("incidents", _JSON_TYPES, _json_then(parse_generic)),
    "eido": _Format("eido", _JSON_TYPES, _json_then(parse_eido)),
    # Checking signatures costs about a millisecond per alert, up to 250 per envelope.
    "cap": _Format("cap", _XML_TYPES, _cap, lambda policy: policy.cap_signing_cert is not None),
}


async def _authenticate(request: web.Request, agency_id: UUID) -> AgencyAuth:
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None and not token.startswith(f"{TokenKind.AGENCY_KEY.value}_"):
        token = None
    cache = request.app[keys.AUTH_CACHE]
    auth = cache.get(agency_id, token) if token is not None else None
    if auth is not None:
        return auth

    async def look_up(key: str) -> AgencyAuth | None:
        async with request.app[keys.POOL].acquire() as conn:
            return await agency_store.authenticate_key(conn, agency_id, key)

    auth = await checked(
        request,
        agency_id,
        token,
        look_up,
        refused="the integration key is not valid for this agency",
    )
    assert token is not None
    cache.put(agency_id, token, auth)
    return auth


LARGE_DOCUMENT_BYTES = 64 * 1024


async def _parse(
    request: web.Request, fmt: _Format, body: bytes, policy: AgencyPolicy, now: datetime
) -> _Parsed:
    """Parse on the loop when quick (most CAD documents are a few KB), else in a thread.

    In a thread, the Python part of a large parse (or of signature checks) yields the
    interpreter to the loop every switch interval; one such parse at a time keeps a burst
    of them from taking turns ahead of everyone else's requests.
    """
    if len(body) <= LARGE_DOCUMENT_BYTES and not fmt.in_thread(policy):
        return fmt.parse(body, policy, now)
    async with request.app[keys.LARGE_PARSE_SLOT]:
        return await asyncio.to_thread(fmt.parse, body, policy, now)


async def _intake(request: web.Request, fmt: _Format) -> web.Response:
    app = request.app
    try:
        agency_id = UUID(request.match_info["agency_id"])
    except ValueError:
        raise not_found("agency") from None
    auth = await _authenticate(request, agency_id)
    policy = auth.policy
    clock = app[keys.CLOCK]
    wait_s = app[keys.INTAKE_LIMITER].take(
        agency_id, policy.intake_rate_per_min, clock.now().timestamp()
    )
    if wait_s > 0:
        raise Problem(
            429,
            "rate-limited",
            "Too many requests",
            f"this agency may send {policy.intake_rate_per_min} documents per minute",
            headers={"Retry-After": str(math.ceil(wait_s))},
        )
    body: bytes | None = None
    try:
        body = await request.read()  # first, so a refusal keeps the document for audit
        if request.content_type not in fmt.media_types:
            raise Problem(
                415,
                "unsupported-media-type",
                "Unsupported media type",
                f"send the document as one of {', '.join(sorted(fmt.media_types))}",
            )

        signature: bytes | None = None
        header = request.headers.get(SIGNATURE_HEADER)
        if header is not None:
            try:
                signature = verify_body_signature(
                    header, body, auth.key_hash, clock.now().timestamp()
                )
            except SignatureError as exc:
                raise unauthorized(str(exc)) from None
        elif policy.require_signature:
            raise unauthorized(f"this agency requires a {SIGNATURE_HEADER} header")

        try:
            parsed = await _parse(request, fmt, body, policy, clock.now())
        except CadParseError as exc:
            raise invalid(exc.pointer, exc.detail) from None
    except web.HTTPException as exc:
        await _keep_rejected(request, agency_id, fmt, body, exc, clock.now())
        raise

    if parsed.envelope is None:
        (report,) = parsed.reports
        try:
            result = await _ingest(app, policy, report, parsed.notes, signature)
        except VersionConflict as exc:
            raise Problem(409, "version-conflict", "Version conflict", str(exc)) from None
        return web.json_response(_result(result), status=202)
    return web.json_response(await _ingest_envelope(app, policy, parsed, signature), status=202)


async def _ingest(
    app: web.Application,
    policy: AgencyPolicy,
    report: IncidentReport,
    notes: Mapping[str, Any],
    signature: bytes | None,
) -> IngestResult:
    try:
        result = await ingest_incident(
            app[keys.POOL],
            app[keys.POSITIONS],
            policy,
            report,
            now=app[keys.CLOCK].now(),
            signature=signature,
            notes=notes or None,
        )
    except ReplayedSignature:
        raise Problem(
            409,
            "replayed-signature",
            "Replayed request",
            "this signature was already used; sign each request anew",
        ) from None
    app[keys.METRICS].incidents.labels(result.status.value).inc()
    if result.alerts_queued:
        app[keys.METRICS].alerts_queued.inc(result.alerts_queued)
        app[keys.OUTBOX_WORKER].wakeup.set()
    return result


def _result(result: IngestResult) -> dict[str, Any]:
    return {
        "incident_id": str(result.incident_id),
        "status": result.status.value,
        "alerts_queued": result.alerts_queued,
    }


async def _ingest_envelope(
    app: web.Application, policy: AgencyPolicy, parsed: _Parsed, signature: bytes | None
) -> dict[str, Any]:
    """Each alert of an envelope in its own transaction, in document order.

    Every alert was parsed (and its signature checked) before the first is stored, so
    a bad envelope changes nothing. Alerts are separate incidents: one whose version
    conflicts with what is stored is answered ``conflict`` and the others still go in.
    The body signature is spent on the first, so a replayed envelope changes nothing.
    """
    results: list[dict[str, Any]] = []
    for n, report in enumerate(parsed.reports):
        entry: dict[str, Any] = {"source_incident_id": report.source_incident_id}
        try:
            result = await _ingest(app, policy, report, parsed.notes, signature if n == 0 else None)
        except VersionConflict as exc:
            results.append(entry | {"status": "conflict", "detail": str(exc)})
            continue
        results.append(entry | _result(result))
    return {
        "envelope": parsed.envelope,
        "distribution_id": parsed.distribution_id,
        "incidents": results,
    }


async def _keep_rejected(
    request: web.Request,
    agency_id: UUID,
    fmt: _Format,
    body: bytes | None,
    exc: web.HTTPException,
    now: datetime,
) -> None:
    """Keep a refused document for audit; failing to keep it never changes the answer."""
    if isinstance(exc, Problem):
        data = exc.body_data
        problem_type, detail, pointer = data["type"], data.get("detail"), data.get("pointer")
    else:  # aiohttp's own refusal: the body over the size limit
        problem_type, detail, pointer = "/problems/body-too-large", exc.reason, None
    doc = rejected_store.RejectedDocument(
        agency_id=agency_id,
        received_at=now,
        endpoint=fmt.name,
        content_type=request.content_type,
        status=exc.status,
        problem_type=problem_type,
        detail=detail,
        pointer=pointer,
        body=body,
        size_bytes=request.content_length,
    )
    try:
        async with request.app[keys.POOL].acquire() as conn:
            await rejected_store.keep(
                conn, doc, keep_days=request.app[keys.SETTINGS].rejected_keep_days
            )
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        log.warning("rejected_document_not_kept", agency_id=str(agency_id), error=repr(error))


@routes.post("/v1/cad/{agency_id}/incidents")
async def post_generic(request: web.Request) -> web.Response:
    return await _intake(request, _FORMATS["incidents"])


@routes.post("/v1/cad/{agency_id}/eido")
async def post_eido(request: web.Request) -> web.Response:
    return await _intake(request, _FORMATS["eido"])


@routes.post("/v1/cad/{agency_id}/cap")
async def post_cap(request: web.Request) -> web.Response:
    return await _intake(request, _FORMATS["cap"])
