"""Timestamp parsing shared by the CAD parsers: everything becomes an aware UTC datetime."""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from typing import Final

from cad_adapters.errors import CadParseError

MIN_YEAR: Final = 1900
MAX_YEAR: Final = 2200
"""Every stored time falls in these years (UTC): wide enough for any real record, narrow
enough that no time-zone arithmetic on it can overflow."""


# Calendar dates from 1901 to 2199 as a regular expression (ECMA-262 and Python alike): every
# such date, at any offset up to ±14 h, converts to a UTC time inside the supported years, so
# a schema using it promises no more and no less than the parsers accept.
_YEAR = "(?:19(?:0[1-9]|[1-9][0-9])|2[01][0-9][0-9])"
_LEAP_YEAR = "(?:(?:19|20|21)(?:0[48]|[2468][048]|[13579][26])|2000)"
DATE_PATTERN: Final = (
    f"(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    f"|02-(?:0[1-9]|1[0-9]|2[0-8]))|{_LEAP_YEAR}-02-29)"
)
OFFSET_PATTERN: Final = "(?:Z|[+-](?:0[0-9]|1[0-4]):[0-5][0-9])"
DATE_TIME_PATTERN: Final = (
    f"^{DATE_PATTERN}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{{1,6}})?"
    f"{OFFSET_PATTERN}$"
)
"""RFC 3339 date-time with seconds and an offset, in the supported years (API schemas)."""


def in_supported_range(stamp: datetime, *, pointer: str) -> datetime:
    """``stamp`` (aware) converted to UTC, refused when outside the supported years."""
    try:
        utc = stamp.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise CadParseError(pointer, f"must be a date between the years {MIN_YEAR} and {MAX_YEAR}")
    return utc


_ISO = re.compile(
    r"""
    (?P<date>\d{4}-\d{2}-\d{2})
    [T\ ]
    (?P<time>\d{2}:\d{2}(?::\d{2})?)
    (?:\.(?P<frac>\d{1,12}))?
    (?P<tz>Z|z|[+-]\d{2}:?\d{2})?
    """,
    re.VERBOSE | re.ASCII,
)


def parse_timestamp(value: object, *, pointer: str, default_tz: tzinfo = UTC) -> datetime:
    """Parse an ISO 8601 / W3C date-time into an aware UTC :class:`datetime`.

    Accepts ``Z`` or a numeric offset (``-00:00`` included), any number of
    fractional-second digits (truncated to microseconds) and a space instead of
    ``T``. A stamp without an offset is local time in ``default_tz``; a local time
    that does not exist there (the DST spring-forward gap) is refused, and an
    ambiguous one (the autumn fold) is read as the first occurrence (``fold=0``).
    Hour ``24``, week dates, basic format and anything else is refused.
    """
    if not isinstance(value, str):
        raise CadParseError(pointer, f"expected a date-time string, got {type(value).__name__}")
    text = value.strip()
    match = _ISO.fullmatch(text)
    if match is None:
        raise CadParseError(pointer, f"not an ISO 8601 date-time: {value[:64]!r}")
    frac = (match["frac"] or "")[:6]
    iso = f"{match['date']}T{match['time']}"
    if frac:
        iso += "." + frac.ljust(6, "0")
    offset = match["tz"]
    if offset is not None:
        if offset in ("Z", "z"):
            offset = "+00:00"
        elif ":" not in offset:
            offset = f"{offset[:3]}:{offset[3:]}"
        iso += offset
    try:
        parsed = datetime.fromisoformat(iso)
        if parsed.tzinfo is None:
            result = in_supported_range(parsed.replace(tzinfo=default_tz), pointer=pointer)
            if result.astimezone(default_tz).replace(tzinfo=None) != parsed:
                raise CadParseError(
                    pointer, f"local time {value[:64]!r} does not exist in {default_tz}"
                )
            return result
        return in_supported_range(parsed, pointer=pointer)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, CadParseError):
            raise
        raise CadParseError(pointer, f"invalid date-time {value[:64]!r}: {exc}") from None
