"""Polled JSON feeds: a CAD publishes its active incidents as a JSON list; a mapping reads it.

The mapping is configuration, not code, because every CAD names its fields its
own way (the language is in :mod:`cad_adapters.feed_mapping`, ready mappings in
:mod:`cad_adapters.feed_templates`). A feed is a full snapshot: an incident
missing from the next poll has ended (the caller closes it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from cad_adapters.errors import CadParseError, UnknownLocation
from cad_adapters.feed_mapping import FeedMapping, FeedPath
from cad_adapters.feed_values import ItemContext, read_document_time, read_field
from cad_adapters.generic import decode_json
from cad_adapters.models import Address, CallType, Coordinates, IncidentReport, PlaceType
from cad_adapters.pidf import checked_coordinates

__all__ = [
    "MAX_ITEMS",
    "FeedItem",
    "FeedMapping",
    "FeedSnapshot",
    "RefusedItem",
    "SampleCheck",
    "check_sample",
    "map_document",
    "parse_feed",
]

MAX_ITEMS: Final = 5000
PINNED_SOURCES: Final = frozenset({"first_seen", "document"})
"""Received times the poller must keep from the first poll that saw the item."""


@dataclass(frozen=True, slots=True)
class FeedItem:
    report: IncidentReport
    received_from: str | None = None
    """None when ``received_at`` came from its own path; else the fallback that gave it:
    ``"first_seen"``, ``"document"`` or another path."""

    @property
    def pinned(self) -> bool:
        """The received time is an estimate made at first sight, not the CAD's."""
        return self.received_from in PINNED_SOURCES


@dataclass(frozen=True, slots=True)
class RefusedItem:
    index: int
    error: CadParseError
    incident_id: str | None
    """The item's id when it could be read: closing that incident must wait."""
    item: Any


@dataclass(frozen=True, slots=True)
class FeedSnapshot:
    items: list[FeedItem]
    refused: list[RefusedItem] = field(default_factory=list)
    """Items refused one by one; the rest of the feed still counts."""
    item_count: int = 0
    document_time: datetime | None = None

    @property
    def reports(self) -> list[IncidentReport]:
        return [i.report for i in self.items]

    @property
    def rejected(self) -> list[CadParseError]:
        return [r.error for r in self.refused]


def _place(raw: str | None) -> tuple[PlaceType, str | None]:
    try:
        place = PlaceType(raw.lower()) if raw else PlaceType.UNKNOWN
    except ValueError:
        place = PlaceType.UNKNOWN
    return place, raw if place is PlaceType.UNKNOWN else None


def _item(ctx: ItemContext, mapping: FeedMapping, source: str) -> FeedItem:
    if not isinstance(ctx.item, Mapping):
        raise CadParseError(ctx.pointer, "must be an object")
    values: dict[str, Any] = {}
    used: dict[str, str] = {}
    for name, spec in mapping.fields.items():
        value, src, pointer = read_field(spec, name, ctx)
        values[name] = value
        used[name] = pointer
        fell_back = value is not None and src is not spec.sources[0]
        if name == "received_at" and (fell_back or src.keyword is not None):
            values["received_from"] = src.label
    for name in ("id", "call_type_code", "received_at"):
        if values.get(name) is None:
            raise CadParseError(used[name], "is required")
    location: Coordinates | None = None
    lat, lon = values.get("lat"), values.get("lon")
    if lat is not None and lon is not None:
        try:
            location = checked_coordinates(lat, lon, pointer=used["lat"])
        except UnknownLocation:
            location = None
    place, detail = _place(values.get("place_type"))
    address = values.get("address")
    report = IncidentReport(
        source=source,
        source_incident_id=values["id"],
        call_type=CallType(code=values["call_type_code"], text=values.get("call_type_text")),
        received_at=values["received_at"],
        location=location,
        address=Address(text=address) if address else None,
        place_type=place,
        place_detail=detail,
        is_cardiac_arrest=values.get("is_cardiac_arrest"),
        is_test=bool(values.get("is_test")),
        source_updated_at=values.get("updated_at"),
    )
    return FeedItem(report, values.get("received_from"))


def _readable_id(ctx: ItemContext, mapping: FeedMapping) -> str | None:
    try:
        value = read_field(mapping.fields["id"], "id", ctx)[0]
    except CadParseError:
        return None
    return value if isinstance(value, str) else None


def _items_of(document: Any, mapping: FeedMapping) -> list[Any]:
    items = mapping.items.resolve(document, document)[1]
    if not isinstance(items, list):
        raise CadParseError(mapping.items.pointer(""), "must be a list of incidents")
    if len(items) > MAX_ITEMS:
        raise CadParseError(mapping.items.pointer(""), f"more than {MAX_ITEMS} incidents")
    return items


def map_document(
    document: Any,
    mapping: FeedMapping,
    *,
    source: str,
    default_tz: tzinfo = UTC,
    now: datetime | None = None,
) -> FeedSnapshot:
    """One decoded document → items and refusals. ``now`` is the poll's time (``@first_seen``)."""
    items = _items_of(document, mapping)
    doc_time: datetime | CadParseError | None = None
    if mapping.document_time is not None:
        try:
            doc_time = read_document_time(mapping.document_time, document, default_tz)
        except CadParseError as exc:
            doc_time = exc
    base = mapping.items.pointer("")
    time_at = mapping.document_time.paths()[0].pointer("") if mapping.document_time else ""
    mapped: list[FeedItem] = []
    refused: list[RefusedItem] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        ctx = ItemContext(item, document, f"{base}/{index}", default_tz, now, doc_time, time_at)
        try:
            result = _item(ctx, mapping, source)
        except CadParseError as exc:
            incident_id = _readable_id(ctx, mapping) if isinstance(item, Mapping) else None
            refused.append(RefusedItem(index, exc, incident_id, item))
            continue
        incident_id = result.report.source_incident_id
        if incident_id in seen:
            error = CadParseError(ctx.pointer, "repeats an incident id of this feed")
            refused.append(RefusedItem(index, error, incident_id, item))
            continue
        seen.add(incident_id)
        mapped.append(result)
    return FeedSnapshot(
        mapped,
        refused,
        item_count=len(items),
        document_time=doc_time if isinstance(doc_time, datetime) else None,
    )


def parse_feed(
    body: bytes,
    mapping: FeedMapping,
    *,
    source: str,
    default_tz: tzinfo = UTC,
    now: datetime | None = None,
) -> FeedSnapshot:
    """One poll's answer → reports. A broken document raises; a broken item is set aside."""
    return map_document(decode_json(body), mapping, source=source, default_tz=default_tz, now=now)


@dataclass(frozen=True, slots=True)
class SampleCheck:
    """What a mapping gives for one fetched document, and why it would be refused."""

    snapshot: FeedSnapshot
    problems: list[str]
    notes: list[str]


def _matches(path: FeedPath, document: Any, items: list[Any]) -> bool:
    if path.from_root:
        return path.resolve(document, document)[0]
    return any(path.resolve(item, document)[0] for item in items)


def check_sample(
    document: Any, mapping: FeedMapping, *, source: str, default_tz: tzinfo, now: datetime
) -> SampleCheck:
    """Check a mapping against a sample document: every path must match something.

    Item paths are checked against all items (a field may be absent from some);
    ``$.`` paths and the document time against the document. A sample with no item
    cannot check item paths, which is said in ``notes``.
    """
    snapshot = map_document(document, mapping, source=source, default_tz=default_tz, now=now)
    items = _items_of(document, mapping)
    problems: list[str] = []
    notes: list[str] = []
    where = f"the sample's {len(items)} items"
    checked: list[tuple[str, FeedPath]] = [
        (f"fields/{name}", path)
        for name, spec in mapping.fields.items()
        for src in spec.sources
        for path in src.paths()
    ]
    if mapping.document_time is not None and mapping.document_time.path is not None:
        checked.append(("document_time", mapping.document_time.path))
    for label, path in checked:
        if not path.from_root and not items:
            continue
        if not _matches(path, document, items):
            place = "the sample document" if path.from_root else where
            problems.append(f"{label}: path {path.text!r} matches nothing in {place}")
    if not items:
        notes.append("the sample lists no incidents, so item paths could not be checked")
    elif not snapshot.items:
        first = snapshot.refused[0].error
        problems.append(
            f"every one of {where} is refused; the first: {first.pointer or '/'}: {first.detail}"
        )
    if mapping.document_time is not None and snapshot.document_time is None:
        notes.append("the sample has no readable document time")
    return SampleCheck(snapshot, problems, notes)
