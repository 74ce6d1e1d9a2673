"""Reading path and query parameters, and the caller behind them, the same way everywhere."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final
from uuid import UUID

from aiohttp import web

from dispatch.store.audit import Actor
from dispatch.web import app_keys as keys
from dispatch.web.auth import supervisor_of
from dispatch.web.problems import Problem, not_found


def int_param(request: web.Request, name: str) -> int:
    """A positive integer id from the path; 404 for anything else (ids are not an oracle)."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise not_found(name.removesuffix("_id"))
    return int(raw)


def uuid_param(request: web.Request, name: str) -> UUID:
    try:
        return UUID(request.match_info[name])
    except ValueError:
        raise not_found(name.removesuffix("_id")) from None


def invalid_query(name: str, reason: str, detail: str) -> Problem:
    """A 400 problem naming the query parameter ``name`` and why in ``invalid-params``."""
    return Problem(
        400,
        "invalid-parameter",
        "A query parameter is invalid",
        detail,
        extra={"invalid-params": [{"name": name, "reason": reason}]},
    )


def _invalid_query(name: str, reason: str) -> Problem:
    return invalid_query(name, reason, f"{name} must be {reason}")


def query_choice(
    request: web.Request, name: str, choices: Sequence[str], default: str | None
) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw not in choices:
        raise _invalid_query(name, f"one of {', '.join(choices)}")
    return raw


def query_int(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _invalid_query(name, f"an integer from {low} to {high}")
    return value


_NEWEST: Final = 2**63 - 1


def page(request: web.Request, *, default: int, maximum: int) -> tuple[int, int]:
    """``limit`` and ``before`` (an id) of a newest-first listing, 400 when out of range."""
    limit = query_int(request, "limit", default=default, low=1, high=maximum)
    return limit, query_int(request, "before", default=_NEWEST, low=1, high=_NEWEST)


def _no_filters(request: web.Request) -> dict[str, Any]:
    return {}


async def newest_page(
    request: web.Request,
    key: str,
    newest: Callable[..., Awaitable[list[dict[str, Any]]]],
    filters: Callable[[web.Request], dict[str, Any]] = _no_filters,
) -> web.Response:
    """For the agency's supervisor, one page of ``newest(conn, agency_id, limit=, before_id=,
    **filters(request))`` as ``{key: [...]}``. The filters are read after the token is checked
    (a bad token is a 401 whatever the query) and before the page."""
    agency_id, _ = await supervisor(request)
    filters_ = filters(request)
    limit, before = page(request, default=50, maximum=200)
    async with request.app[keys.POOL].acquire() as conn:
        found = await newest(conn, agency_id, limit=limit, before_id=before, **filters_)
    return web.json_response({key: found})


async def supervisor(request: web.Request) -> tuple[UUID, Actor]:
    """The agency in the path and the supervisor of it who is calling (401/404 otherwise)."""
    agency_id = uuid_param(request, "agency_id")
    supervisor_id = await supervisor_of(request, agency_id)
    return agency_id, Actor(supervisor_id)


def too_many(wait_s: float, detail: str) -> Problem:
    return Problem(
        429,
        "too-many-requests",
        "Too many requests",
        detail,
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
    )
