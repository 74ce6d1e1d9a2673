"""Building blocks of the OpenAPI document, shared by every part that adds paths."""

from __future__ import annotations

from typing import Any, Final

from dispatch.web.schemas import ref

PROBLEM_JSON: Final = "application/problem+json"


def problem(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
    }
    if retry_after:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}
        }
    return response


def json_response(schema_name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(schema_name)}},
    }


def json_request(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(schema_name)}}}


def _path(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def path_uuid(name: str, description: str) -> dict[str, Any]:
    return _path(name, description, {"type": "string", "format": "uuid"})


def path_int(name: str, description: str) -> dict[str, Any]:
    return _path(name, description, {"type": "integer", "minimum": 1})


def query_int(
    name: str, low: int, high: int, description: str, *, default: int | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return query(name, schema, description)


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def page(what: str, *, default: int, maximum: int) -> list[dict[str, Any]]:
    """``limit`` and ``before`` (an id): newest first, one page at a time."""
    return [
        query_int("limit", 1, maximum, "Page size", default=default),
        query_int("before", 1, 2**63 - 1, f"Only {what} with a smaller id (the next page)"),
    ]


SUPERVISOR: Final = "supervisorToken"
VOLUNTEER: Final = "volunteerToken"
AGENCY: Final = path_uuid("agency_id", "The agency")
ALERT: Final = path_uuid("alert_id", "The alert, as sent in the push data")
VOLUNTEER_ID: Final = path_int("volunteer_id", "The volunteer")
AUTH_ERRORS: Final = {
    "401": problem("Missing, invalid or revoked bearer token"),
    "429": problem(
        "Too many failed authentication attempts from this client or for this agency "
        "(a key that worked recently is never held back)",
        retry_after=True,
    ),
}
BODY_ERRORS: Final = {
    "400": problem("Malformed JSON, NaN, or nesting too deep"),
    "413": problem("Body larger than 1 MiB"),
    "415": problem("Body is not application/json"),
    "422": problem("A field is missing, of the wrong type or out of range; `pointer` names it"),
}
OVERLOAD: Final = {"503": problem("Overloaded or the database is down", retry_after=True)}
# Any route that reads an agency's settings can meet one this server cannot use (a zone its
# tzdata no longer has); the middleware answers that on every route alike.
SERVER_ERROR: Final = {
    "500": problem(
        "A stored agency setting this server cannot use (type `/problems/agency-misconfigured`,"
        " with `setting` and `value`), or an internal error"
    )
}


def operation(
    summary: str,
    responses: dict[str, Any],
    *,
    security: str | tuple[str, ...] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """One operation; every authenticated one documents 401, every body its refusals."""
    op: dict[str, Any] = {"summary": summary}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if security is not None:
        schemes = (security,) if isinstance(security, str) else security
        op["security"] = [{name: []} for name in schemes]
        if "twilioSignature" not in schemes:
            responses = {**responses, **AUTH_ERRORS}
    if any(p.get("in") == "path" for p in parameters or ()):
        # An id that is not one (or not the caller's) answers 404, whatever the operation.
        responses = {"404": problem("No such resource for this caller"), **responses}
    if body is not None:
        op["requestBody"] = body
        responses = {**BODY_ERRORS, **responses}
    op["responses"] = {**responses, **SERVER_ERROR, **OVERLOAD}
    return op


def alert_operation(
    summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An operation on one of the volunteer's own alerts: anyone else's answers 404."""
    return operation(
        summary,
        {**responses, "404": problem("No such alert for this volunteer")},
        security=VOLUNTEER,
        parameters=[ALERT],
        body=body,
    )


def newest_page_op(
    summary: str,
    ok: dict[str, Any],
    what: str,
    *,
    filters: tuple[dict[str, Any], ...] = (),
    default: int = 50,
    maximum: int = 200,
    errors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A supervisor's newest-first page of one of the agency's lists (``what``), a page at a
    time; ``filters`` are the parameters between the agency and the page's."""
    return operation(
        summary,
        {
            "200": ok,
            "400": problem("A query parameter is invalid; `invalid-params` names it"),
            **(errors or {}),
        },
        security=SUPERVISOR,
        parameters=[AGENCY, *filters, *page(what, default=default, maximum=maximum)],
    )


def supervised_resource(
    read: str,
    current: dict[str, Any],
    *,
    method: str,
    change: str,
    changed: dict[str, Any],
    body: str,
    parameters: list[dict[str, Any]] | None = None,
    errors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A supervisor's read of an agency resource and its change (``method``) with ``body``."""
    params = parameters or [AGENCY]
    return {
        "get": operation(
            read, {"200": current, **(errors or {})}, security=SUPERVISOR, parameters=params
        ),
        method: operation(
            change,
            {"200": changed, **(errors or {})},
            security=SUPERVISOR,
            parameters=params,
            body=json_request(body),
        ),
    }
