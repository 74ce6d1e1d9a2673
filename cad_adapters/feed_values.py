"""Reading one mapped value out of a feed item: absent, unknown, translated, then typed.

Feeds say "nothing" in many ways (``null``, ``""``, ``{}`` where an export tool
dropped a date, a named placeholder such as ``"0.0000000000"``); all of them read
as absent, so a fallback can take over. A value that is present but unreadable is
an error naming its JSON Pointer: falling back silently would hide a broken feed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from cad_adapters._time import in_supported_range, parse_timestamp
from cad_adapters.errors import CadParseError
from cad_adapters.feed_mapping import FIELD_KINDS, FieldSpec, Source

# 2000-01-01 to 2100-01-01: outside it an epoch value of a live incident is a unit mix-up
# (seconds read as milliseconds or the other way round).
_FIRST_EPOCH_S: Final = 946684800.0
_LAST_EPOCH_S: Final = 4102444800.0


@dataclass(frozen=True, slots=True)
class ItemContext:
    """What reading one item's fields needs besides the item."""

    item: Any
    document: Any
    pointer: str
    """The item's JSON Pointer in the document."""
    tz: tzinfo
    now: datetime | None
    """The poll's time, for ``@first_seen``."""
    document_time: datetime | CadParseError | None
    document_time_pointer: str = ""


def is_absent(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, Mapping | list) and not value


def _key(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value).strip()
    return None


def _is_unknown(raw: Any, unknown: tuple[Any, ...]) -> bool:
    for u in unknown:
        if isinstance(u, str) and isinstance(raw, str) and raw.strip() == u.strip():
            return True
        if (
            not isinstance(u, bool | str)
            and not isinstance(raw, bool)
            and isinstance(raw, int | float)
            and raw == u
        ):
            return True
    return False


def text(value: Any, pointer: str, max_len: int = 200) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CadParseError(pointer, "must be a string or number")
    result = str(value).strip()
    if len(result) > max_len:
        raise CadParseError(pointer, f"must be at most {max_len} characters")
    return result or None


def number(value: Any, pointer: str) -> float:
    """A finite number; feeds often send numbers as strings ("52.37"), both are taken."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CadParseError(pointer, "must be a decimal number")
    try:
        result = float(value)
    except (ValueError, OverflowError):
        raise CadParseError(pointer, "must be a decimal number") from None
    if not math.isfinite(result):
        raise CadParseError(pointer, "must be a finite number")
    return result


def flag(value: Any, pointer: str) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in {"true", "yes", "y", "1"}:
        return True
    if word in {"false", "no", "n", "0"}:
        return False
    raise CadParseError(pointer, "must be true or false")


def timestamp(value: Any, fmt: str, tz: tzinfo, pointer: str) -> datetime:
    """An aware UTC time from ISO 8601, epoch seconds/milliseconds, or a strptime pattern.

    A time without a zone is local time in ``tz`` (the agency's), checked like ISO
    local times: one that does not exist there (the spring-forward gap) is refused.
    """
    if fmt in ("epoch_s", "epoch_ms"):
        seconds = number(value, pointer) / (1000.0 if fmt == "epoch_ms" else 1.0)
        if not _FIRST_EPOCH_S <= seconds < _LAST_EPOCH_S:
            raise CadParseError(pointer, f"epoch value out of range for {fmt}")
        return datetime.fromtimestamp(seconds, UTC)
    if not isinstance(value, str):
        raise CadParseError(pointer, f"expected a date-time string, got {type(value).__name__}")
    if len(value) > 64:
        raise CadParseError(pointer, "must be at most 64 characters")
    if fmt == "iso":
        return parse_timestamp(value, pointer=pointer, default_tz=tz)
    try:
        # Without %z the result is naive on purpose: it is local time, settled below.
        parsed = datetime.strptime(value.strip(), fmt)  # noqa: DTZ007
    except ValueError:
        raise CadParseError(pointer, f"{value!r} does not match the format {fmt!r}") from None
    if parsed.tzinfo is not None:
        return in_supported_range(parsed, pointer=pointer)
    return parse_timestamp(parsed.isoformat(), pointer=pointer, default_tz=tz)


def _typed(raw: Any, name: str, source: Source, pointer: str, tz: tzinfo) -> Any:
    kind, max_len = FIELD_KINDS[name]
    if kind == "text":
        return text(raw, pointer, max_len)
    if kind == "number":
        value = number(raw, pointer)
        numeric = [u for u in source.unknown if not isinstance(u, bool | str)]
        return None if value in numeric else value
    if kind == "time":
        return timestamp(raw, source.format, tz, pointer)
    return flag(raw, pointer)


def read_source(source: Source, name: str, ctx: ItemContext) -> tuple[Any, str]:
    """The value this source gives (None when absent or unknown), and its JSON Pointer."""
    if source.keyword == "first_seen":
        if ctx.now is None:
            raise ValueError("@first_seen needs the poll's time")
        return ctx.now, ctx.pointer
    if source.keyword == "document_time":
        if isinstance(ctx.document_time, CadParseError):
            raise ctx.document_time
        return ctx.document_time, ctx.document_time_pointer
    if source.join:
        found = [p.resolve(ctx.item, ctx.document)[1] for p in source.join]
        pointer = source.join[0].pointer(ctx.pointer)
        if not source.partial and any(is_absent(v) for v in found):
            return None, pointer
        parts = [text(v, pointer) for v in found if not is_absent(v)]
        joined = source.sep.join(p for p in parts if p)
        return (_typed(joined, name, source, pointer, ctx.tz) if joined else None), pointer
    assert source.path is not None
    pointer = source.path.pointer(ctx.pointer)
    raw = source.path.resolve(ctx.item, ctx.document)[1]
    if is_absent(raw) or _is_unknown(raw, source.unknown):
        return None, pointer
    if source.value_map:
        key = _key(raw)
        if key is not None and key in source.value_map:
            raw = source.value_map[key]
            if is_absent(raw):
                return None, pointer
    return _typed(raw, name, source, pointer, ctx.tz), pointer


def read_field(spec: FieldSpec, name: str, ctx: ItemContext) -> tuple[Any, Source, str]:
    """The first value the field's sources give, with the source used and its pointer.

    When none gives one, the value is None and the source and pointer are the first's.
    """
    first: tuple[Source, str] | None = None
    for source in spec.sources:
        value, pointer = read_source(source, name, ctx)
        if first is None:
            first = (source, pointer)
        if value is not None:
            return value, source, pointer
    assert first is not None
    return None, first[0], first[1]


def read_document_time(source: Source, document: Any, tz: tzinfo) -> datetime | None:
    """The document's own time (raises CadParseError when present but unreadable)."""
    assert source.path is not None
    pointer = source.path.pointer("")
    raw = source.path.resolve(document, document)[1]
    if is_absent(raw) or _is_unknown(raw, source.unknown):
        return None
    return timestamp(raw, source.format, tz, pointer)
