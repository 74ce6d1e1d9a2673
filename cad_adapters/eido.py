"""NENA EIDO 1.0 (NENA-STA-021) JSON → :class:`IncidentReport`.

An EIDO is a *full snapshot* of an incident as its sender knows it; there is no
delta or cancel message, so the caller diffs successive snapshots (ordered by
``source_updated_at`` = the root ``lastUpdateTimeStamp``).

Mapping (see ``shared/notes/cad_formats.md`` §1.4):

* ``source_incident_id``: the Incident Tracking Identifier, the root ``$id``
  (``incidentTrackingIdentifier`` wins where a pre-standard draft sends it).
* ``call_type``: ``incidentTypeCommonRegistryText`` (APCO 2.103.2 common code,
  required) with ``incidentTypeInternalCode`` / ``incidentTypeInternalText``.
  ``is_cardiac_arrest`` stays ``None``: the agency's rules in
  :mod:`cad_adapters.call_types` decide.
* ``status``: ``incidentStatusCommonRegistryText`` containing ``Cancelled`` →
  cancelled, ``Closed`` (without ``ReOpened``) → closed, else active;
  ``closed_at`` is then the incident component's ``lastUpdateTimeStamp``.
* location: one ``locationComponent`` — the ``CurrentIncident`` one, else
  ``InitialIncident``, else ``Caller`` (the latest-updated when a type repeats).
  Its PIDF-LO ``locationByValue`` gives coordinates and civic address. Parts of
  different components are never mixed (a caller may be far from the patient); a
  location sent only by reference (``locationByReferenceUrl``) is not fetched and
  gives ``location=None``.
* ``received_at``: the earliest ``callComponent.callStartTimestamp``, else the
  incident component's, else the root's ``lastUpdateTimeStamp``.
  ``dispatched_at``: the earliest ``dispatchComponent`` ``lastUpdateTimeStamp``
  (EIDO 1.0 has no dispatch time element).
* ``units``: ``emergencyResourceComponent`` → :class:`UnitReport` (see
  :func:`unit_status`).
* ``agency_id``: the agency with ``incidentOwningAgencyIndicator``, else the one
  with role ``Dispatching``, else the first; ``agency_name`` from its jCard ``fn``.
* ``is_test``: common code ``NCRTESTF`` ("Test Call"), internal code ``TEST`` or an
  internal text starting with the word ``TEST``. EIDO has no other test flag.

An EIDO without an ``incidentComponent`` (the NENA call-transfer sample) is refused
with pointer ``/incidentComponent``: without a call type there is nothing to dispatch.
Draft key spellings (``EIDOVersion``, ``LastUpdateTimeStamp``,
``locationInformationComponent``, ``organizationIdentification``) are tolerated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from cad_adapters._time import parse_timestamp
from cad_adapters.errors import CadParseError
from cad_adapters.models import (
    Address,
    CallType,
    Coordinates,
    IncidentReport,
    IncidentStatus,
    PlaceType,
    UnitReport,
    UnitStatus,
)
from cad_adapters.pidf import civic_address_text, civic_place_type, parse_pidf_lo

MAX_EIDO_BYTES = 2 * 1024 * 1024
"""Largest EIDO JSON document accepted as bytes (2 MiB)."""

MAX_JSON_DEPTH = 64

INCIDENT_TYPE_SCHEME = "EIDO-IncidentType-Common"
TEST_INCIDENT_TYPES = frozenset({"NCRTESTF"})
LOCATION_PRIORITY = ("CurrentIncident", "InitialIncident", "Caller")

_TEST_TEXT = re.compile(r"\s*TEST\b", re.IGNORECASE)

# Secondary unit status registry → normalized, most advanced first. Values combine:
# "EnRoute"+"Hospital" is transporting, "Arrived"+"Hospital" is at hospital.
_CANCELLED = frozenset({"assignmentcancelled"})
_AVAILABLE = frozenset({"cleared", "inservice", "backtoassignedarea"})
_ARRIVED = frozenset({"arrived", "onscene"})
_SECONDARY_ORDER: tuple[tuple[frozenset[str], UnitStatus], ...] = (
    (frozenset({"patientcontact"}), UnitStatus.PATIENT_CONTACT),
    (_ARRIVED, UnitStatus.ON_SCENE),
    (frozenset({"staging"}), UnitStatus.STAGED),
    (frozenset({"enroute"}), UnitStatus.EN_ROUTE),
    (frozenset({"acknowledgedtransmission"}), UnitStatus.ACKNOWLEDGED),
    (frozenset({"dispatched", "assigned"}), UnitStatus.DISPATCHED),
)

INTERNAL_UNIT_STATUS: Mapping[str, UnitStatus] = {
    "DP": UnitStatus.DISPATCHED,
    "AK": UnitStatus.ACKNOWLEDGED,
    "ER": UnitStatus.EN_ROUTE,
    "SG": UnitStatus.STAGED,
    "OS": UnitStatus.ON_SCENE,
    "AE": UnitStatus.ON_SCENE,
    "TR": UnitStatus.TRANSPORTING,
    "TA": UnitStatus.AT_HOSPITAL,
    "AR": UnitStatus.AVAILABLE,
    "AQ": UnitStatus.AVAILABLE,
}
"""Fallback for ``unitStatusInternal`` codes when the registry values say nothing:
the PulsePoint dispatch-status vocabulary many CADs share (DP, AK, ER, SG, OS, AE,
TR, TA, AR, AQ). Agency-specific codes outside it stay ``unknown``."""


def unit_status(
    primary: str | None, secondary: Sequence[str], internal: Sequence[str]
) -> UnitStatus:
    """Normalize EIDO unit statuses.

    Secondary registry values decide (``AssignmentCancelled`` → cancelled;
    ``Cleared``/``InService``/``BacktoAssignedArea`` → available; ``Hospital`` with
    ``Arrived``/``OnScene`` → at hospital, otherwise transporting; then patient
    contact, on scene, staged, en route, acknowledged, dispatched). Without one, a
    primary ``Available`` → available, then the internal-code fallback
    :data:`INTERNAL_UNIT_STATUS`, else unknown.
    """
    values = {s.strip().casefold() for s in secondary}
    if values & _CANCELLED:
        return UnitStatus.CANCELLED
    if values & _AVAILABLE:
        return UnitStatus.AVAILABLE
    if "hospital" in values:
        return UnitStatus.AT_HOSPITAL if values & _ARRIVED else UnitStatus.TRANSPORTING
    for names, status in _SECONDARY_ORDER:
        if values & names:
            return status
    if primary is not None and primary.strip().casefold() == "available":
        return UnitStatus.AVAILABLE
    for code in internal:
        mapped = INTERNAL_UNIT_STATUS.get(code.strip().upper())
        if mapped is not None:
            return mapped
    return UnitStatus.UNKNOWN


# --- JSON access helpers -------------------------------------------------------------


def _ptr(base: str, key: str | int) -> str:
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{base}/{token}"


def _get(obj: Mapping[str, Any], base: str, *keys: str) -> tuple[str, Any]:
    """The first key present (draft spellings as alternatives) → (pointer, value)."""
    for key in keys:
        if key in obj and obj[key] is not None:
            return _ptr(base, key), obj[key]
    return _ptr(base, keys[0]), None


def _opt_str(obj: Mapping[str, Any], base: str, *keys: str) -> str | None:
    pointer, value = _get(obj, base, *keys)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CadParseError(pointer, f"expected a string, got {type(value).__name__}")
    return value.strip() or None


def _req_str(obj: Mapping[str, Any], base: str, *keys: str) -> str:
    value = _opt_str(obj, base, *keys)
    if value is None:
        raise CadParseError(_ptr(base, keys[0]), "required field is missing or empty")
    return value


def _str_list(obj: Mapping[str, Any], base: str, key: str) -> list[str]:
    """A list of strings; a lone string is accepted as a one-element list."""
    pointer, value = _get(obj, base, key)
    if isinstance(value, str):
        return [value]
    items = _array(pointer, value, str, "strings", "a string")
    return [item.strip() for _, item in items if item.strip()]


def _components(root: Mapping[str, Any], *keys: str) -> list[tuple[str, Mapping[str, Any]]]:
    """A component array (or, as EIDO 1.0 has for incidentComponent, a single object)."""
    pointer, value = _get(root, "", *keys)
    return _array(pointer, value, Mapping, "objects", "an object")


def _array(
    pointer: str, value: Any, kind: type, plural: str, singular: str
) -> list[tuple[str, Any]]:
    """The items of an array that must hold only ``kind``, each with its pointer.

    Absent (None) is an empty array; a lone ``kind`` stands for an array of one.
    """
    if value is None:
        return []
    if isinstance(value, kind):
        return [(pointer, value)]
    if not isinstance(value, list):
        raise CadParseError(pointer, f"expected an array of {plural}, got {type(value).__name__}")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, kind):
            raise CadParseError(_ptr(pointer, index), f"expected {singular}")
        out.append((_ptr(pointer, index), item))
    return out


def _stamp(obj: Mapping[str, Any], base: str, tz: tzinfo, *keys: str) -> datetime | None:
    keys = keys or ("lastUpdateTimeStamp", "LastUpdateTimeStamp")
    pointer, value = _get(obj, base, *keys)
    if value is None:
        return None
    return parse_timestamp(value, pointer=pointer, default_tz=tz)


def _check_depth(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise CadParseError("", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def _refuse_constant(name: str) -> Any:
    raise CadParseError("", f"JSON constant {name} is not accepted")


def _load(document: Mapping[str, Any] | bytes) -> Mapping[str, Any]:
    if isinstance(document, bytes | bytearray | memoryview):
        data = bytes(document)
        if len(data) > MAX_EIDO_BYTES:
            raise CadParseError("", f"EIDO document larger than {MAX_EIDO_BYTES} bytes")
        try:
            loaded = json.loads(data, parse_constant=_refuse_constant)
        except CadParseError:
            raise
        except RecursionError:
            raise CadParseError("", "JSON nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise CadParseError("", f"not valid JSON: {exc}") from None
        _check_depth(loaded)
        document = loaded
    if not isinstance(document, Mapping):
        raise CadParseError("", f"an EIDO must be a JSON object, got {type(document).__name__}")
    return document


# --- components ----------------------------------------------------------------------


def _incident_status(statuses: Sequence[str]) -> IncidentStatus:
    values = {s.casefold() for s in statuses}
    if "cancelled" in values or "canceled" in values:
        return IncidentStatus.CANCELLED
    if "closed" in values and "reopened" not in values:
        return IncidentStatus.CLOSED
    return IncidentStatus.ACTIVE


def _jcard_name(jcard: str | None) -> str | None:
    """``fn`` of a jCard (RFC 7095) string, best effort."""
    if jcard is None:
        return None
    try:
        card = json.loads(jcard, parse_constant=lambda _: None)
    except (ValueError, RecursionError):
        return None
    if isinstance(card, list) and len(card) == 2 and isinstance(card[1], list):
        for prop in card[1]:
            if (
                isinstance(prop, list)
                and len(prop) >= 4
                and prop[0] == "fn"
                and isinstance(prop[3], str)
            ):
                return prop[3].strip() or None
    return None


def _agency(root: Mapping[str, Any]) -> tuple[str | None, str | None]:
    agencies = _components(root, "agencyComponent")
    if not agencies:
        return None, None
    chosen = agencies[0]
    for pointer, agency in agencies:
        if agency.get("incidentOwningAgencyIndicator") is True:
            chosen = (pointer, agency)
            break
    else:
        for pointer, agency in agencies:
            roles = _str_list(agency, pointer, "agencyRoleDescriptionRegistryText")
            if "Dispatching" in roles:
                chosen = (pointer, agency)
                break
    pointer, agency = chosen
    # Drafts give the agency identifier in organizationIdentification and a component id in $id.
    agency_id = _opt_str(agency, pointer, "organizationIdentification") or _opt_str(
        agency, pointer, "$id"
    )
    return agency_id, _jcard_name(_opt_str(agency, pointer, "agencyJcard"))


def _later(stamp: datetime | None, than: datetime | None) -> bool:
    return stamp is not None and (than is None or stamp > than)


def _location(
    root: Mapping[str, Any], tz: tzinfo
) -> tuple[Coordinates | None, Address | None, PlaceType, str | None, str | None]:
    """(coordinates, address, place type, place detail, location source)."""
    best: tuple[int, datetime | None, str, Mapping[str, Any], str] | None = None
    for pointer, component in _components(
        root, "locationComponent", "locationInformationComponent"
    ):
        kind = _req_str(component, pointer, "locationTypeDescriptionRegistryText")
        if kind not in LOCATION_PRIORITY:
            continue
        rank = LOCATION_PRIORITY.index(kind)
        stamp = _stamp(component, pointer, tz)
        newer = best is not None and rank == best[0] and _later(stamp, best[1])
        if best is None or rank < best[0] or newer:
            best = (rank, stamp, pointer, component, kind)
    if best is None:
        return None, None, PlaceType.UNKNOWN, None, None
    _, _, pointer, component, kind = best
    description = _opt_str(component, pointer, "locationDescriptionText")
    by_value = _opt_str(component, pointer, "locationByValue")
    if by_value is None:
        address = Address(text=description) if description else None
        return None, address, PlaceType.UNKNOWN, None, f"eido:{kind}"
    pidf = parse_pidf_lo(by_value, pointer=_ptr(pointer, "locationByValue"))
    text = civic_address_text(pidf.civic) or description
    address = Address(text=text, civic=dict(pidf.civic)) if (text or pidf.civic) else None
    return (
        pidf.coordinates,
        address,
        civic_place_type(pidf.civic),
        pidf.civic.get("PLC"),
        f"eido:{kind}",
    )


def _units(root: Mapping[str, Any], tz: tzinfo) -> tuple[UnitReport, ...]:
    units = []
    for pointer, component in _components(root, "emergencyResourceComponent"):
        name = _opt_str(component, pointer, "emergencyResourceName") or _opt_str(
            component, pointer, "$id"
        )
        if name is None:
            raise CadParseError(
                _ptr(pointer, "emergencyResourceName"), "a unit needs a name or $id"
            )
        primary = _opt_str(component, pointer, "primaryUnitStatusRegistryText")
        secondary = _str_list(component, pointer, "secondaryUnitStatusRegistryText")
        internal = _str_list(component, pointer, "unitStatusInternal")
        raw = [f"primary={primary}"] if primary else []
        if secondary:
            raw.append("secondary=" + ",".join(secondary))
        if internal:
            raw.append("internal=" + ",".join(internal))
        units.append(
            UnitReport(
                unit_id=name,
                status=unit_status(primary, secondary, internal),
                status_raw="; ".join(raw) or None,
                at=_stamp(component, pointer, tz),
            )
        )
    return tuple(units)


def _earliest(stamps: Sequence[datetime | None]) -> datetime | None:
    present = [s for s in stamps if s is not None]
    return min(present) if present else None


def parse_eido(document: Mapping[str, Any] | bytes, *, default_tz: tzinfo = UTC) -> IncidentReport:
    """Parse one NENA EIDO 1.0 JSON document (a mapping or the raw bytes).

    Raises :class:`CadParseError` with a JSON Pointer (e.g.
    ``/incidentComponent/0/incidentTypeCommonRegistryText``) for anything refused.
    Time stamps without an offset are read in ``default_tz``.
    """
    root = _load(document)
    version = _req_str(root, "", "eidoVersion", "EIDOVersion")
    if version != "1.0":
        raise CadParseError("/eidoVersion", f"unsupported EIDO version {version[:20]!r}")
    incident_id = _opt_str(root, "", "incidentTrackingIdentifier") or _req_str(root, "", "$id")
    updated_at = _stamp(root, "", default_tz)
    if updated_at is None:
        raise CadParseError("/lastUpdateTimeStamp", "required field is missing")

    incidents = _components(root, "incidentComponent")
    if not incidents:
        raise CadParseError(
            "/incidentComponent", "no incident component (e.g. a call-transfer EIDO)"
        )
    pointer, incident = incidents[0]
    common = _req_str(incident, pointer, "incidentTypeCommonRegistryText")
    internal_code = _opt_str(incident, pointer, "incidentTypeInternalCode")
    internal_text = _opt_str(incident, pointer, "incidentTypeInternalText")
    status = _incident_status(_str_list(incident, pointer, "incidentStatusCommonRegistryText"))
    incident_updated = _stamp(incident, pointer, default_tz)

    calls = _components(root, "callComponent")
    call_starts = [_stamp(c, p, default_tz, "callStartTimestamp") for p, c in calls]
    received_at = _earliest(call_starts) or incident_updated or updated_at
    dispatched_at = _earliest(
        [_stamp(c, p, default_tz) for p, c in _components(root, "dispatchComponent")]
    )
    coordinates, address, place_type, place_detail, location_source = _location(root, default_tz)
    agency_id, agency_name = _agency(root)
    is_test = (
        common.upper() in TEST_INCIDENT_TYPES
        or (internal_code or "").upper() == "TEST"
        or bool(internal_text and _TEST_TEXT.match(internal_text))
    )
    return IncidentReport(
        source="eido",
        source_incident_id=incident_id,
        call_type=CallType(
            code=common,
            text=internal_text,
            internal_code=internal_code,
            scheme=INCIDENT_TYPE_SCHEME,
        ),
        received_at=received_at,
        location=coordinates,
        local_incident_number=_opt_str(incident, pointer, "internalIncidentId"),
        address=address,
        place_type=place_type,
        place_detail=place_detail,
        dispatched_at=dispatched_at,
        closed_at=(incident_updated or updated_at) if status is not IncidentStatus.ACTIVE else None,
        status=status,
        is_test=is_test,
        source_updated_at=updated_at,
        units=_units(root, default_tz),
        agency_id=agency_id,
        agency_name=agency_name,
        location_source=location_source if coordinates is not None else None,
    )
