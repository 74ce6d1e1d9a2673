"""Query parameters of the review routes: filters, opaque cursors, dates, output format.

Every refusal is a 400 problem naming the parameter in ``invalid-params``; the review
routes only read, so a refused request changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from aiohttp import web

from dispatch.web.params import invalid_query
from dispatch.web.problems import Problem

# Bounds that keep the longest query a client can send (every parameter at its limit, each
# character percent-encoded UTF-8) under aiohttp's 8,190-byte request line.
MAX_TEXT = 100
MAX_CODE = 32
MAX_VALUES = 10
# Years outside this range are typos, and far-off dates overflow time zone arithmetic.
_FIRST_YEAR, _LAST_YEAR = 1900, 2200


def bad_param(name: str, reason: str) -> Problem:
    return invalid_query(name, reason, f"{name}: {reason}")


def _clean(value: str) -> bool:
    return all(" " <= ch != "\x7f" for ch in value)


def _single(request: web.Request, name: str) -> str | None:
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise bad_param(name, "given more than once")
    return values[0] if values else None


def flag(request: web.Request, name: str) -> bool | None:
    raw = _single(request, name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise bad_param(name, "true or false")
    return raw == "true"


def choices(request: web.Request, name: str, allowed: Sequence[str]) -> list[str]:
    """A repeatable (or comma-separated) parameter whose values come from ``allowed``."""
    values = [v for raw in request.query.getall(name, []) for v in raw.split(",")]
    for value in values:
        if value not in allowed:
            raise bad_param(name, f"each value one of {', '.join(allowed)}")
    return sorted(set(values))


def texts(request: web.Request, name: str) -> list[str]:
    """A repeatable (or comma-separated) free-form parameter, e.g. call type codes."""
    values = [v.strip() for raw in request.query.getall(name, []) for v in raw.split(",")]
    if len(values) > MAX_VALUES:
        raise bad_param(name, f"at most {MAX_VALUES} values")
    for value in values:
        if not value or len(value) > MAX_CODE or not _clean(value):
            raise bad_param(name, f"each value 1 to {MAX_CODE} characters, no control characters")
    return sorted(set(values))


def text(request: web.Request, name: str) -> str | None:
    raw = _single(request, name)
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_TEXT or not _clean(raw):
        raise bad_param(name, f"at most {MAX_TEXT} characters, no control characters")
    return raw


def integer(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = _single(request, name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 6 or not low <= int(raw) <= high:
        raise bad_param(name, f"an integer from {low} to {high}")
    return int(raw)


def required_integer(request: web.Request, name: str, *, low: int, high: int) -> int:
    if _single(request, name) is None:
        raise bad_param(name, "required")
    return integer(request, name, default=low, low=low, high=high)


def instant(request: web.Request, name: str, tz: ZoneInfo, *, end: bool) -> datetime | None:
    """A date (``YYYY-MM-DD``, a whole day in the agency's zone) or an RFC 3339 time.

    As the end of a range a date includes its whole day; a time is exclusive.
    """
    raw = _single(request, name)
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            if not _FIRST_YEAR <= day.year <= _LAST_YEAR - 1:
                raise ValueError(raw)
            start = datetime.combine(day + timedelta(days=1 if end else 0), time(), tz)
            return start.astimezone(UTC)
        stamp = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_param(name, "a date YYYY-MM-DD or an RFC 3339 time with offset") from None
    if stamp.tzinfo is None or len(raw) < 19:
        raise bad_param(name, "a date YYYY-MM-DD or an RFC 3339 time with offset")
    if not _FIRST_YEAR <= stamp.year <= _LAST_YEAR - 1:
        raise bad_param(name, f"a year from {_FIRST_YEAR} to {_LAST_YEAR - 1}")
    return stamp.astimezone(UTC)


def date_range(
    request: web.Request, tz: ZoneInfo, *, required: bool
) -> tuple[datetime | None, datetime | None]:
    start = instant(request, "from", tz, end=False)
    stop = instant(request, "to", tz, end=True)
    if required:
        for name, value in (("from", start), ("to", stop)):
            if value is None:
                raise bad_param(name, "required")
    if start is not None and stop is not None and stop <= start:
        raise bad_param("to", "must be after from")
    return start, stop


def report_range(
    request: web.Request, tz: ZoneInfo, now: datetime, *, max_days: int
) -> tuple[datetime, datetime]:
    """``from``/``to``; without ``to``, the end of this month, and without ``from``, the
    start of the twelfth month back from ``to`` (twelve calendar months in all)."""
    start, stop = date_range(request, tz, required=False)
    if stop is None:
        local = now.astimezone(tz)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        stop = datetime(year, month, 1, tzinfo=tz).astimezone(UTC)
    if start is None:
        last = (stop - timedelta(microseconds=1)).astimezone(tz)
        months = last.year * 12 + last.month - 1 - 11
        start = datetime(months // 12, months % 12 + 1, 1, tzinfo=tz).astimezone(UTC)
    if stop <= start:
        raise bad_param("to", "must be after from")
    if stop - start > timedelta(days=max_days):
        raise bad_param("to", f"at most {max_days} days after from")
    return start, stop


def output_format(request: web.Request) -> str:
    """``json`` or ``csv``: ``?format=`` first, else the Accept header (JSON by default)."""
    chosen = _single(request, "format")
    if chosen is not None:
        if chosen not in ("json", "csv"):
            raise bad_param("format", "json or csv")
        return chosen
    accept = request.headers.get("Accept", "")
    wants = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "text/csv" in wants and "application/json" not in wants[: wants.index("text/csv")]:
        return "csv"
    return "json"


# --- cursors ----------------------------------------------------------------------------------

_CURSOR_TEXT = re.compile(r"[A-Za-z0-9_-]+")


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_values(request: web.Request) -> list[Any] | None:
    raw = _single(request, "cursor")
    if raw is None or raw == "":
        return None
    try:
        if len(raw) > 200 or _CURSOR_TEXT.fullmatch(raw) is None:
            raise ValueError(raw)
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad_param("cursor", "not a cursor this API gave out") from None
    if not isinstance(decoded, list):
        raise bad_param("cursor", "not a cursor this API gave out")
    return decoded


def time_id_cursor(request: web.Request) -> tuple[datetime, UUID] | None:
    """The (received_at, incident id) of the last row of the previous page."""
    values = _cursor_values(request)
    if values is None:
        return None
    try:
        at_raw, id_raw = values
        at = datetime.fromisoformat(at_raw)
        if at.tzinfo is None:
            raise ValueError(at_raw)
        return at, UUID(id_raw)
    except (ValueError, TypeError, AttributeError):
        raise bad_param("cursor", "not a cursor this API gave out") from None


def int_cursor(request: web.Request) -> int:
    """The id (or cell) of the last row of the previous page; 0 before the first."""
    values = _cursor_values(request)
    if values is None:
        return 0
    if len(values) != 1 or type(values[0]) is not int or not 0 < values[0] < 2**63:
        raise bad_param("cursor", "not a cursor this API gave out")
    value: int = values[0]
    return value
