"""OASIS CAP 1.2 (also 1.1 and 1.0) XML → :class:`IncidentReport`.

CAP is a public-warning format: no units and no dispatch times. What it gives:

* ``status``: ``Actual`` → a real message; ``Exercise``, ``System``, ``Test`` and
  ``Draft`` → ``is_test=True`` (must never alert volunteers).
* ``msgType``: ``Alert`` starts an incident, ``Update`` changes it, ``Cancel``
  → ``status=cancelled`` (``closed_at = sent``). ``Ack`` and ``Error`` carry no
  incident and are refused.
* **Incident identity.** An ``Alert``'s ``source_incident_id`` is
  ``"{sender}/{identifier}"``. An ``Update`` or ``Cancel`` must carry
  ``<references>`` (whitespace-separated ``sender,identifier,sent`` triples); its
  ``source_incident_id`` is the ``"{sender}/{identifier}"`` of the *earliest-sent*
  referenced message (ties: the first listed), which for a well-behaved sender is
  the original ``Alert``, so every update and the cancel attach to the same
  incident. All referenced ids are exposed in ``references`` (document order) so a
  caller can still join a chain whose sender only references the previous update.
  The message's own ``identifier`` is not lost: ``source_updated_at`` = ``sent``
  orders the snapshots and the raw document is kept by the caller.
* ``call_type``: the first ``info``'s first non-empty ``eventCode`` (``scheme`` =
  its ``valueName``, e.g. ``SAME``) with ``text`` = ``event``; without an
  ``eventCode`` the ``event`` text is the code (``scheme="CAP-event"``). A
  ``Cancel`` without any ``info`` gets an empty code. ``is_cardiac_arrest`` stays
  ``None`` (CAP has no such notion; agency rules decide).
* location, from the first ``info``'s areas: the first ``circle``
  (``"lat,lon radius_km"`` → uncertainty in metres), else the first ``polygon``
  (area centroid, uncertainty = farthest vertex), else ``None`` (a ``geocode``
  has no coordinates). Every circle and polygon of that ``info`` is validated.
  ``address.text`` = the ``areaDesc`` of the area used (else the first area).
* ``agency_id`` = ``sender``; ``agency_name`` = ``info/senderName``;
  ``local_incident_number`` = ``<incidents>``; ``received_at`` = ``sent``.

Best effort where we do not need the element: a missing ``scope`` or empty
``urgency``/``severity``/``certainty`` is tolerated. An empty element is an absent
one (real senders write ``<polygon></polygon>`` next to valid geocodes), so a
required element that is empty is still refused, and an empty ``circle`` or
``polygon`` is skipped. This module reads one bare ``<alert>``; EDXL-DE envelopes
and signatures are handled by :mod:`cad_adapters.cap_document`. Atom feeds are not
unwrapped: their root is refused.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, tzinfo
from xml.etree.ElementTree import Element

from cad_adapters._time import parse_timestamp
from cad_adapters._xml import children, first_child, parse_xml, split_tag, text_of
from cad_adapters.errors import CadParseError, UnknownLocation
from cad_adapters.models import (
    Address,
    CallType,
    Coordinates,
    IncidentReport,
    IncidentStatus,
)
from cad_adapters.pidf import checked_coordinates, parse_number, polygon_centre

CAP_NAMESPACES = frozenset(
    {
        "urn:oasis:names:tc:emergency:cap:1.2",
        "urn:oasis:names:tc:emergency:cap:1.1",
        "http://www.incident.com/cap/1.0",
    }
)
TEST_STATUSES = frozenset({"Exercise", "System", "Test", "Draft"})
MSG_TYPES = frozenset({"Alert", "Update", "Cancel"})

_FORBIDDEN_ID_CHARS = frozenset(" \t\r\n,<&")


def _required(alert: Element, name: str, ns: frozenset[str]) -> str:
    value = text_of(first_child(alert, name, ns))
    if value is None:
        raise CadParseError(f"/alert/{name}", "required element is missing or empty")
    return value


def _check_id(value: str, pointer: str) -> str:
    if any(c in _FORBIDDEN_ID_CHARS for c in value):
        raise CadParseError(pointer, "must not contain spaces, commas, '<' or '&'")
    return value


def _references(text: str | None, default_tz: tzinfo) -> list[tuple[str, datetime]]:
    """``sender,identifier,sent`` triples → [(``"sender/identifier"``, sent)]."""
    out: list[tuple[str, datetime]] = []
    for triple in (text or "").split():
        parts = triple.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise CadParseError(
                "/alert/references", f"expected sender,identifier,sent, got {triple[:80]!r}"
            )
        sent = parse_timestamp(parts[2], pointer="/alert/references", default_tz=default_tz)
        out.append((f"{parts[0]}/{parts[1]}", sent))
    return out


def _circle(text: str) -> Coordinates:
    pointer = "/alert/info/area/circle"
    tokens = text.split()
    if len(tokens) != 2 or tokens[0].count(",") != 1:
        raise CadParseError(pointer, f"expected 'lat,lon radius_km', got {text[:80]!r}")
    lat_text, lon_text = tokens[0].split(",")
    lat = parse_number(lat_text, pointer=pointer, what="latitude")
    lon = parse_number(lon_text, pointer=pointer, what="longitude")
    radius_km = parse_number(tokens[1], pointer=pointer, what="radius")
    if radius_km < 0:
        raise CadParseError(pointer, "radius must not be negative")
    return checked_coordinates(lat, lon, radius_km * 1000.0, pointer=pointer)


def _polygon(text: str) -> Coordinates:
    pointer = "/alert/info/area/polygon"
    points = []
    for pair in text.split():
        if pair.count(",") != 1:
            raise CadParseError(pointer, f"expected 'lat,lon' pairs, got {pair[:40]!r}")
        lat_text, lon_text = pair.split(",")
        points.append(
            (
                parse_number(lat_text, pointer=pointer, what="latitude"),
                parse_number(lon_text, pointer=pointer, what="longitude"),
            )
        )
    if len(points) < 3:
        raise CadParseError(pointer, "a polygon needs at least 3 'lat,lon' pairs")
    return polygon_centre(points, pointer=pointer)


def _area(info: Element, ns: frozenset[str]) -> tuple[Coordinates | None, str | None, str | None]:
    """(coordinates, areaDesc, location source) for one ``info``."""
    circle: tuple[Coordinates, str | None] | None = None
    polygon: tuple[Coordinates, str | None] | None = None
    first_desc: str | None = None
    for area in children(info, "area", ns):
        desc = text_of(first_child(area, "areaDesc", ns))
        first_desc = first_desc or desc
        for element in children(area, "circle", ns):
            text = text_of(element)
            if text is not None:
                with contextlib.suppress(UnknownLocation):
                    circle = circle or (_circle(text), desc)
        for element in children(area, "polygon", ns):
            text = text_of(element)
            if text is not None:
                with contextlib.suppress(UnknownLocation):
                    polygon = polygon or (_polygon(text), desc)
    if circle is not None:
        return circle[0], circle[1] or first_desc, "cap:circle"
    if polygon is not None:
        return polygon[0], polygon[1] or first_desc, "cap:polygon-centroid"
    return None, first_desc, None


def _call_type(info: Element | None, ns: frozenset[str]) -> CallType:
    if info is None:
        return CallType(code="")
    event = text_of(first_child(info, "event", ns))
    if event is None:
        raise CadParseError("/alert/info/event", "required element is missing or empty")
    for code in children(info, "eventCode", ns):
        value = text_of(first_child(code, "value", ns))
        if value is not None:
            return CallType(
                code=value, text=event, scheme=text_of(first_child(code, "valueName", ns))
            )
    return CallType(code=event, text=event, scheme="CAP-event")


def parse_cap(xml: bytes, *, default_tz: tzinfo = UTC) -> IncidentReport:
    """Parse one CAP ``<alert>`` document (bytes, so its encoding declaration is honoured).

    Raises :class:`CadParseError` with an element path such as
    ``/alert/info/area/circle`` for anything refused, including DTDs and entities
    (see :mod:`cad_adapters._xml`). Time stamps without an offset are read in
    ``default_tz``.
    """
    return alert_report(parse_xml(xml), default_tz=default_tz)


def is_cap_alert(element: Element) -> bool:
    root_ns, root_name = split_tag(element.tag)
    return root_name == "alert" and root_ns in CAP_NAMESPACES


def alert_report(root: Element, *, default_tz: tzinfo = UTC) -> IncidentReport:
    """The report of one parsed ``<alert>`` element (see :func:`parse_cap`)."""
    root_ns, root_name = split_tag(root.tag)
    if not is_cap_alert(root):
        raise CadParseError("", f"not a CAP alert: root element {{{root_ns}}}{root_name}")
    ns = frozenset({root_ns})

    identifier = _check_id(_required(root, "identifier", ns), "/alert/identifier")
    sender = _check_id(_required(root, "sender", ns), "/alert/sender")
    sent = parse_timestamp(
        _required(root, "sent", ns), pointer="/alert/sent", default_tz=default_tz
    )
    cap_status = _required(root, "status", ns)
    if cap_status != "Actual" and cap_status not in TEST_STATUSES:
        raise CadParseError("/alert/status", f"unknown status {cap_status[:40]!r}")
    msg_type = _required(root, "msgType", ns)
    if msg_type not in MSG_TYPES:
        raise CadParseError("/alert/msgType", f"{msg_type[:40]!r} messages carry no incident")

    references = _references(text_of(first_child(root, "references", ns)), default_tz)
    if msg_type == "Alert":
        incident_id = f"{sender}/{identifier}"
    else:
        if not references:
            raise CadParseError(
                "/alert/references", f"a {msg_type} must reference earlier messages"
            )
        incident_id = min(references, key=lambda ref: ref[1])[0]

    info = first_child(root, "info", ns)
    if info is None and msg_type != "Cancel":
        raise CadParseError("/alert/info", f"an {msg_type} without info has no event")
    call_type = _call_type(info, ns)
    coordinates, area_desc, location_source = (
        _area(info, ns) if info is not None else (None, None, None)
    )
    cancelled = msg_type == "Cancel"
    return IncidentReport(
        source="cap",
        source_incident_id=incident_id,
        call_type=call_type,
        received_at=sent,
        location=coordinates,
        local_incident_number=text_of(first_child(root, "incidents", ns)),
        address=Address(text=area_desc) if area_desc else None,
        closed_at=sent if cancelled else None,
        status=IncidentStatus.CANCELLED if cancelled else IncidentStatus.ACTIVE,
        is_test=cap_status != "Actual",
        source_updated_at=sent,
        references=tuple(dict.fromkeys(ref for ref, _ in references)),
        agency_id=sender,
        agency_name=text_of(first_child(info, "senderName", ns)) if info is not None else None,
        location_source=location_source,
    )
