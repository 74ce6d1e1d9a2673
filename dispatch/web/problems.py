"""RFC 9457 problem details: every error the API returns is one of these."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from dispatch.domain.time_zones import AgencyZoneUnknown

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(web.HTTPException):
    """An HTTP error rendered as ``application/problem+json``.

    ``pointer`` (a JSON Pointer, RFC 6901) names the offending field, also given
    as RFC 9457's ``invalid-params`` list so generic clients can show it.
    """

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        pointer: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status
        body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status}
        if detail:
            body["detail"] = detail
        if pointer is not None:
            body["pointer"] = pointer
            body["invalid-params"] = [{"name": pointer or "/", "reason": detail or title}]
        if extra:
            body.update(extra)
        super().__init__(
            headers=headers,
            text=json.dumps(body),
            content_type=PROBLEM_CONTENT_TYPE,
        )
        self.body_data = body

    def to_response(self) -> web.Response:
        """The same answer as a plain response, free of the raise's traceback."""
        response = web.Response(status=self.status, text=self.text, content_type=self.content_type)
        for name, value in self.headers.items():
            if name not in ("Content-Type", "Content-Length"):
                response.headers.add(name, value)
        return response


def invalid(pointer: str, detail: str, *, status: int = 422) -> Problem:
    return Problem(status, "invalid-field", "A field is invalid", detail, pointer=pointer)


def malformed(detail: str) -> Problem:
    return Problem(400, "malformed-document", "The document cannot be read", detail, pointer="")


def refused_document(pointer: str, detail: str) -> Problem:
    """A decoder's refusal: unreadable as a whole (400), or one field it cannot take (422)."""
    return invalid(pointer, detail) if pointer else malformed(detail)


def unauthorized(detail: str = "a valid bearer token is required") -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Not authenticated",
        detail,
        headers={"WWW-Authenticate": 'Bearer realm="dispatch"'},
    )


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", "Not found", f"no such {what}")


def wrong_state(slug: str, title: str, exc: Exception, state: str) -> Problem:
    """409: the resource is in ``state``, where this move does not apply (``exc`` says why)."""
    return Problem(409, slug, title, str(exc), extra={"state": state})


def held_elsewhere(what: str, address: str, pointer: str) -> Problem:
    """409: the push ``address`` (token, subscription) is held in another agency."""
    return Problem(
        409,
        "device-registered-elsewhere",
        f"{what} registered elsewhere",
        f"this {address} belongs to a volunteer of another agency",
        pointer=pointer,
    )


def agency_misconfigured(detail: str, **extra: Any) -> Problem:
    """500: a stored agency setting this server cannot use. Settings are checked when
    written, so only a hand-edited row or a server changed under it (a tzdata update that
    dropped a zone) gets here: the request is refused, never served on a guess."""
    return Problem(
        500,
        "agency-misconfigured",
        "The agency's settings cannot be used",
        detail,
        extra=extra or None,
    )


def unknown_agency_zone(exc: AgencyZoneUnknown) -> Problem:
    """The agency's stored ``time_zone`` is unknown to this server's time-zone data."""
    return agency_misconfigured(
        f"the agency's time_zone {exc.name!r} is not a time zone this server knows; set the "
        "agency's time_zone again",
        setting="time_zone",
        value=exc.name,
    )


def found_json(found: Any, missing: Problem) -> web.Response:
    """``found`` as the JSON answer; ``None`` (a lookup that found nothing) raises ``missing``."""
    if found is None:
        raise missing
    return web.json_response(found)


def unavailable(retry_after_s: int) -> Problem:
    """503: the database is overloaded or down; the request changed nothing, send it again."""
    return Problem(
        503,
        "unavailable",
        "Service unavailable",
        f"the database cannot serve requests right now; send this one again in {retry_after_s} s",
        headers={"Retry-After": str(retry_after_s)},
    )


def from_http_exception(exc: web.HTTPException) -> web.Response:
    """Render aiohttp's own errors (404 route, 405, 413 body too large) as problems."""
    slug = {
        404: "not-found",
        405: "method-not-allowed",
        413: "body-too-large",
        415: "unsupported-media-type",
    }.get(exc.status, "http-error")
    detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else None
    problem = Problem(exc.status, slug, exc.reason, detail)
    response = web.Response(status=exc.status, text=problem.text, content_type=PROBLEM_CONTENT_TYPE)
    for name in ("Allow",):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response
