"""The mapping language of polled feeds: where each incident field lives, and how to read it.

A mapping is stored configuration (JSON), checked here once so that polling never
meets a malformed one. Full reference: ``docs/feeds.md``. In short::

    {"items": "incidents.active",                  # the list of incidents, from the root
     "document_time": "$.summary.generated_at",    # optional: the document's own time
     "fields": {
        "id": {"join": ["AgencyID", "ID"], "sep": "/"},
        "received_at": {"path": "CallReceivedDateTime", "fallback": ["@first_seen"]},
        "lat": {"path": "Latitude", "unknown": [0]},
        "call_type_code": "PulsePointIncidentCallType"}}

A path is dotted (``geo.lat``, ``geometry.coordinates.1``) and relative to the item;
``$.a.b`` starts at the document root. ``@first_seen`` (the poll that first saw the
item) and ``@document_time`` are sources of ``received_at`` only. The first format
(``{"items": "...", "fields": {"id": "ID", ...}}``, every field a plain path) is a
subset of this one and keeps its meaning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from cad_adapters.errors import CadParseError

Kind = Literal["text", "number", "time", "flag"]

FIELD_KINDS: Final[Mapping[str, tuple[Kind, int]]] = {
    "id": ("text", 128),
    "call_type_code": ("text", 64),
    "call_type_text": ("text", 200),
    "address": ("text", 500),
    "place_type": ("text", 32),
    "lat": ("number", 0),
    "lon": ("number", 0),
    "received_at": ("time", 64),
    "updated_at": ("time", 64),
    "is_cardiac_arrest": ("flag", 0),
    "is_test": ("flag", 0),
}
"""Every mappable field, with how its value is read (and a text length limit)."""
REQUIRED: Final = ("id", "call_type_code", "received_at")
KEYWORDS: Final = {"@first_seen": "first_seen", "@document_time": "document_time"}
TIME_FORMATS: Final = ("iso", "epoch_s", "epoch_ms")

_MAX_PATH_CHARS: Final = 200
_MAX_PATH_PARTS: Final = 16
_MAX_FALLBACKS: Final = 4
_MAX_UNKNOWN: Final = 20
_MAX_MAP: Final = 200
_SOURCE_KEYS: Final = frozenset({"path", "join", "sep", "partial", "format", "unknown", "map"})
_TOP_KEYS: Final = frozenset({"items", "fields", "document_time", "template", "comment"})


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class FeedPath:
    """A dotted path into an item (or, with ``$.``, into the whole document)."""

    text: str
    parts: tuple[str, ...]
    from_root: bool

    @classmethod
    def parse(cls, text: Any, pointer: str, *, from_root: bool = False) -> FeedPath:
        if not isinstance(text, str):
            raise CadParseError(pointer, "must be a dotted path string")
        if len(text) > _MAX_PATH_CHARS:
            raise CadParseError(pointer, f"must be at most {_MAX_PATH_CHARS} characters")
        body = text
        if text == "$" or text.startswith("$."):
            from_root, body = True, text[2:]
        parts = tuple(body.split(".")) if body else ()
        if any(not p for p in parts):
            raise CadParseError(pointer, f"{text!r} has an empty step (two dots or an end dot)")
        if len(parts) > _MAX_PATH_PARTS:
            raise CadParseError(pointer, f"must have at most {_MAX_PATH_PARTS} steps")
        return cls(text, parts, from_root)

    def resolve(self, item: Any, document: Any) -> tuple[bool, Any]:
        """(found, value): found is False when a step does not exist (a null value is found)."""
        value = document if self.from_root else item
        for part in self.parts:
            if isinstance(value, Mapping):
                if part not in value:
                    return False, None
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return False, None
        return True, value

    def pointer(self, item_pointer: str) -> str:
        """The JSON Pointer (RFC 6901) of this path's value, for error messages."""
        base = "" if self.from_root else item_pointer
        return base + "".join(f"/{_escape(p)}" for p in self.parts)


@dataclass(frozen=True, slots=True)
class Source:
    """One place a field's value may come from, and how to read it."""

    path: FeedPath | None = None
    join: tuple[FeedPath, ...] = ()
    sep: str = "/"
    partial: bool = False
    """Join the parts that are present; by default one absent part makes the value absent
    (a composite id missing a part must not become another incident's id)."""
    keyword: str | None = None
    """``first_seen`` or ``document_time``: not a path but a time the poller knows."""
    format: str = "iso"
    unknown: tuple[str | int | float | bool, ...] = ()
    """Values that mean "not known": the field is treated as absent."""
    value_map: Mapping[str, Any] = field(default_factory=dict)
    """Value translation, applied to the value's text before it is read (``"1"`` → ``"public"``)."""

    @property
    def label(self) -> str:
        """How this source is named on an incident's timeline."""
        if self.keyword == "document_time":
            return "document"
        if self.keyword is not None:
            return self.keyword
        if self.path is not None:
            return self.path.text
        return "+".join(p.text for p in self.join)

    def paths(self) -> tuple[FeedPath, ...]:
        return (self.path,) if self.path is not None else self.join


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field's sources in order: the first that gives a value wins."""

    sources: tuple[Source, ...]


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int) or (
        isinstance(value, float) and math.isfinite(value)
    )


def _check_format(fmt: Any, pointer: str) -> str:
    if not isinstance(fmt, str) or not fmt:
        raise CadParseError(pointer, "must be a string")
    if fmt in TIME_FORMATS:
        return fmt
    if "%" not in fmt or len(fmt) > 64:
        choices = ", ".join(TIME_FORMATS)
        raise CadParseError(pointer, f"must be one of {choices} or a strptime pattern")
    try:  # a pattern that cannot read back what it writes is a typo
        sample = datetime(2026, 1, 2, 13, 4, 5, tzinfo=UTC).strftime(fmt)
        datetime.strptime(sample, fmt)  # noqa: DTZ007 - only checks that the pattern reads
    except ValueError as exc:
        raise CadParseError(pointer, f"is not a usable strptime pattern: {exc}") from None
    return fmt


def _unknown(value: Any, pointer: str) -> tuple[str | int | float | bool, ...]:
    values = value if isinstance(value, list) else [value]
    if len(values) > _MAX_UNKNOWN or not all(_scalar(v) for v in values):
        raise CadParseError(pointer, f"must be a value or a list of at most {_MAX_UNKNOWN} values")
    return tuple(values)


def _value_map(value: Any, pointer: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or len(value) > _MAX_MAP:
        raise CadParseError(pointer, f"must be an object of at most {_MAX_MAP} entries")
    for key, target in value.items():
        if target is not None and not _scalar(target):
            raise CadParseError(f"{pointer}/{_escape(key)}", "must be a string, number or null")
    return dict(value)


def _source(config: Any, name: str, pointer: str, *, with_fallback: bool) -> Source:
    kind, _ = FIELD_KINDS[name]
    path_at = f"{pointer}/path"
    if isinstance(config, str):
        config, path_at = {"path": config}, pointer
    if not isinstance(config, Mapping):
        raise CadParseError(pointer, "must be a path or an object")
    allowed = _SOURCE_KEYS | ({"fallback"} if with_fallback else set())
    for key in config:
        if key not in allowed:
            raise CadParseError(f"{pointer}/{_escape(str(key))}", "is not a mapping option here")
    if ("path" in config) == ("join" in config):
        raise CadParseError(pointer, "needs exactly one of path or join")
    keyword = KEYWORDS.get(config["path"]) if "path" in config else None
    if keyword is not None and name != "received_at":
        raise CadParseError(path_at, f"{config['path']} is a source of received_at only")
    path = None
    if "path" in config and keyword is None:
        path = FeedPath.parse(config["path"], path_at)
    join: tuple[FeedPath, ...] = ()
    if "join" in config:
        parts = config["join"]
        if kind != "text" or not isinstance(parts, list) or not 2 <= len(parts) <= 8:
            raise CadParseError(f"{pointer}/join", "must list 2 to 8 paths of a text field")
        join = tuple(FeedPath.parse(p, f"{pointer}/join/{i}") for i, p in enumerate(parts))
    sep = config.get("sep", "/")
    if not isinstance(sep, str) or len(sep) > 8 or ("join" not in config and "sep" in config):
        raise CadParseError(f"{pointer}/sep", "must be a string of at most 8 characters (join)")
    partial = config.get("partial", False)
    if not isinstance(partial, bool) or ("join" not in config and "partial" in config):
        raise CadParseError(f"{pointer}/partial", "must be true or false (join)")
    fmt = "iso"
    if "format" in config:
        if kind != "time":
            raise CadParseError(f"{pointer}/format", "applies to time fields only")
        fmt = _check_format(config["format"], f"{pointer}/format")
    return Source(
        path=path,
        join=join,
        sep=sep,
        partial=partial,
        keyword=keyword,
        format=fmt,
        unknown=_unknown(config["unknown"], f"{pointer}/unknown") if "unknown" in config else (),
        value_map=_value_map(config["map"], f"{pointer}/map") if "map" in config else {},
    )


def _field(config: Any, name: str, pointer: str) -> FieldSpec:
    primary = _source(config, name, pointer, with_fallback=True)
    fallback = config.get("fallback", []) if isinstance(config, Mapping) else []
    if not isinstance(fallback, list) or len(fallback) > _MAX_FALLBACKS:
        raise CadParseError(f"{pointer}/fallback", f"must be a list of at most {_MAX_FALLBACKS}")
    rest = tuple(
        _source(c, name, f"{pointer}/fallback/{i}", with_fallback=False)
        for i, c in enumerate(fallback)
    )
    return FieldSpec((primary, *rest))


def _document_time(config: Any) -> Source:
    pointer = "/mapping/document_time"
    if isinstance(config, str):
        config = {"path": config}
    if not isinstance(config, Mapping) or "path" not in config:
        raise CadParseError(pointer, "must be a path or an object with a path")
    for key in config:
        if key not in ("path", "format", "unknown"):
            raise CadParseError(f"{pointer}/{_escape(str(key))}", "is not a mapping option here")
    # A document's time is found from the root whether or not the path says "$.".
    path = FeedPath.parse(config["path"], f"{pointer}/path", from_root=True)
    return Source(
        path=path,
        format=_check_format(config.get("format", "iso"), f"{pointer}/format"),
        unknown=_unknown(config["unknown"], f"{pointer}/unknown") if "unknown" in config else (),
    )


@dataclass(frozen=True, slots=True)
class FeedMapping:
    """A checked mapping. ``items`` locates the list of incidents in the document."""

    fields: Mapping[str, FieldSpec]
    items: FeedPath = field(default_factory=lambda: FeedPath("", (), True))
    document_time: Source | None = None

    @classmethod
    def from_config(cls, config: Any, *, strict: bool = True) -> FeedMapping:
        """Check a mapping; ``strict=False`` (stored mappings) ignores unknown top-level keys,
        as the first mapping format did."""
        if not isinstance(config, Mapping):
            raise CadParseError("/mapping", "must be an object")
        if strict:
            for key in config:
                if key not in _TOP_KEYS:
                    raise CadParseError(f"/mapping/{_escape(str(key))}", "is not a mapping key")
        items = FeedPath.parse(config.get("items", ""), "/mapping/items", from_root=True)
        fields = config.get("fields")
        if not isinstance(fields, Mapping):
            raise CadParseError("/mapping/fields", "must be an object of field → path")
        for name in REQUIRED:
            if fields.get(name) is None:
                raise CadParseError(f"/mapping/fields/{name}", "is required (a path)")
        specs: dict[str, FieldSpec] = {}
        for name, spec in fields.items():
            pointer = f"/mapping/fields/{_escape(str(name))}"
            if name not in FIELD_KINDS:
                raise CadParseError(pointer, "is not a mappable field")
            if spec is None or spec == "":
                raise CadParseError(pointer, "must be a path")
            specs[name] = _field(spec, name, pointer)
        document_time = (
            _document_time(config["document_time"]) if "document_time" in config else None
        )
        if document_time is None and any(
            s.keyword == "document_time" for s in specs["received_at"].sources
        ):
            raise CadParseError("/mapping/document_time", "is required by @document_time")
        if strict and ("lat" in specs) != ("lon" in specs):
            raise CadParseError("/mapping/fields/lat", "lat and lon are mapped together")
        return cls(fields=specs, items=items, document_time=document_time)
