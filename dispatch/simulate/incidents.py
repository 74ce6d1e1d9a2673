"""Incidents to replay: SF Fire "Calls for Service", Seattle Real Time Fire 911, our documents.

Each reader returns :class:`SimIncident` values (received time, position, and where the
source knows them the dispatch time and the first EMS unit on scene) plus notes on what
it skipped and why; the notes go into the report. Public data has no cardiac-arrest
coding, so a named list of call types stands in for arrests (``--call-types``); documents
in our own formats (generic JSON, EIDO, CAP) go through ``cad_adapters`` and the agency's
cardiac-arrest rules, as they would at intake.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Final
from uuid import UUID

from cad_adapters import CadParseError, IncidentReport, PlaceType
from cad_adapters.cap import parse_cap
from cad_adapters.eido import parse_eido
from cad_adapters.generic import decode_json, parse_generic
from dispatch.domain.intake import EMS_ON_SCENE, apply_agency_rules
from dispatch.domain.models import AgencyPolicy

MAX_INCIDENTS: Final = 1_000_000
SF_DEFAULT_TYPES: Final = ("Medical Incident",)
SEATTLE_DEFAULT_TYPES: Final = ("Medic Response*",)


class IncidentsError(ValueError):
    """Incidents that cannot be read; names the file and line or field."""


@dataclass(frozen=True, slots=True)
class SimIncident:
    incident_id: str
    received_at: datetime
    lat: float
    lon: float
    call_type: str
    place_type: PlaceType = PlaceType.UNKNOWN
    alert_delay_s: float | None = None
    """Call received to volunteers alerted (the source's first dispatch), when known."""
    ems_s: float | None = None
    """Call received to the first unit on scene, when known."""
    is_test: bool = False
    uncertainty_m: float | None = None
    """The stated uncertainty of the location, when the source gives one."""


@dataclass(slots=True)
class IncidentSet:
    incidents: list[SimIncident]
    source: str
    notes: list[str] = field(default_factory=list)
    stand_in: str | None = None
    """How arrests were chosen when the data has no cardiac-arrest coding."""

    @property
    def span_days(self) -> float:
        if not self.incidents:
            return 0.0
        times = [i.received_at for i in self.incidents]
        return (max(times) - min(times)).total_seconds() / 86400


def _matcher(patterns: Sequence[str]) -> tuple[str, ...]:
    return tuple(p.strip().upper() for p in patterns if p.strip())


def _by_call_type(
    incidents: list[SimIncident], source: str, notes: list[str], call_types: Sequence[str]
) -> IncidentSet:
    """A public data set without cardiac-arrest coding: its calls of ``call_types`` stand in."""
    return IncidentSet(
        sorted(incidents, key=lambda i: i.received_at),
        source,
        notes,
        stand_in=f"call types {', '.join(call_types)} (no cardiac-arrest coding in this data)",
    )


def _matches(call_type: str, patterns: tuple[str, ...]) -> bool:
    upper = call_type.strip().upper()
    return any(fnmatchcase(upper, p) for p in patterns)


_SF_TIME = "%m/%d/%Y %I:%M:%S %p"
_LOCATION = re.compile(r"^\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)$")


def _local(text: str, fmt: str, tz: tzinfo) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    return datetime.strptime(text, fmt).replace(tzinfo=tz).astimezone(UTC)


def _latlon(lat: float, lon: float) -> tuple[float, float] | None:
    if lat == 0 and lon == 0:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def _rows(path: Path, required: Iterable[str]) -> Iterable[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise IncidentsError(f"{path.name}: column {missing[0]!r} is missing")
        for line, row in enumerate(reader, start=2):
            if line > MAX_INCIDENTS * 20:
                raise IncidentsError(f"{path.name}: more rows than this tool reads")
            yield line, row


@dataclass(slots=True)
class _SfIncident:
    received: datetime
    where: tuple[float, float]
    call_type: str
    dispatched: datetime | None = None
    on_scene: datetime | None = None


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b < a) else a


def read_sf_calls(
    path: Path, *, tz: tzinfo, call_types: Sequence[str] = SF_DEFAULT_TYPES
) -> IncidentSet:
    """DataSF "Fire Department Calls for Service": one row per unit; the first unit on scene."""
    patterns = _matcher(call_types)
    columns = ("Incident Number", "Call Type", "Received DtTm", "Dispatch DtTm", "On Scene DtTm")
    by_incident: dict[str, _SfIncident] = {}
    total: set[str] = set()
    bad = 0
    for line, row in _rows(path, (*columns, "Location")):
        number = row["Incident Number"].strip()
        total.add(number)
        if not _matches(row["Call Type"], patterns):
            continue
        try:
            received = _local(row["Received DtTm"], _SF_TIME, tz)
            dispatched = _local(row["Dispatch DtTm"], _SF_TIME, tz)
            on_scene = _local(row["On Scene DtTm"], _SF_TIME, tz)
            found = _LOCATION.match(row["Location"].strip())
            where = _latlon(float(found[1]), float(found[2])) if found else None
        except ValueError:
            raise IncidentsError(f"{path.name} line {line}: unreadable time or location") from None
        if received is None or where is None:
            bad += 1
            continue
        entry = by_incident.setdefault(
            number, _SfIncident(received, where, row["Call Type"].strip())
        )
        entry.received = min(entry.received, received)
        entry.dispatched = _earliest(entry.dispatched, dispatched)
        entry.on_scene = _earliest(entry.on_scene, on_scene)
    incidents = []
    no_ems = 0
    for number, e in by_incident.items():
        no_ems += e.on_scene is None
        incidents.append(
            SimIncident(
                incident_id=f"sf:{number}",
                received_at=e.received,
                lat=e.where[0],
                lon=e.where[1],
                call_type=e.call_type,
                alert_delay_s=(e.dispatched - e.received).total_seconds() if e.dispatched else None,
                ems_s=(e.on_scene - e.received).total_seconds() if e.on_scene else None,
            )
        )
    notes = [f"{len(incidents):,} of {len(total):,} incidents have a call type in the list"]
    if bad:
        notes.append(f"{bad:,} unit rows without a received time or location were skipped")
    if no_ems:
        notes.append(f"{no_ems:,} incidents have no unit on scene: their EMS time is drawn")
    return _by_call_type(incidents, "SF Fire Department Calls for Service", notes, call_types)


_SEATTLE_US = "%m/%d/%Y %I:%M:%S %p"
_SEATTLE_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})")


def _seattle_time(text: str, tz: tzinfo) -> datetime:
    """Seattle's floating local times; the "+0000" suffix is not trusted, hour 24 is midnight."""
    text = text.strip()
    iso = _SEATTLE_ISO.match(text)
    if iso:
        day = datetime.strptime(iso[1], "%Y-%m-%d").replace(tzinfo=tz)
        local = day + timedelta(hours=int(iso[2]), minutes=int(iso[3]), seconds=int(iso[4]))
        return local.astimezone(UTC)
    stamp = _local(text.rsplit(" ", 1)[0] if text.endswith("+0000") else text, _SEATTLE_US, tz)
    if stamp is None:
        raise ValueError(text)
    return stamp


def read_seattle(
    path: Path, *, tz: tzinfo, call_types: Sequence[str] = SEATTLE_DEFAULT_TYPES
) -> IncidentSet:
    """Seattle Real Time Fire 911 Calls: one row per incident, no units (EMS time is drawn)."""
    patterns = _matcher(call_types)
    incidents, bad, total = [], 0, 0
    seen: set[str] = set()
    for line, row in _rows(path, ("Type", "Datetime", "Latitude", "Longitude", "Incident Number")):
        total += 1
        number = row["Incident Number"].strip()
        if not _matches(row["Type"], patterns) or number in seen:
            continue
        try:
            received = _seattle_time(row["Datetime"], tz)
        except ValueError:
            raise IncidentsError(f"{path.name} line {line}: unreadable Datetime") from None
        try:
            where = _latlon(float(row["Latitude"]), float(row["Longitude"]))
        except ValueError:
            where = None
        if where is None:
            bad += 1
            continue
        seen.add(number)
        incidents.append(
            SimIncident(f"seattle:{number}", received, where[0], where[1], row["Type"].strip())
        )
    notes = [
        f"{len(incidents):,} of {total:,} calls have a type in the list and a location",
        "no unit times in this layout: every EMS time is drawn from the EMS distribution",
        "times are read as local (the '+0000' suffix of this data set is not trusted)",
    ]
    if bad:
        notes.append(f"{bad:,} matching calls without a location were skipped")
    return _by_call_type(incidents, "Seattle Real Time Fire 911 Calls", notes, call_types)


def _parse_document(path: Path, tz: tzinfo) -> list[IncidentReport]:
    raw = path.read_bytes()
    if path.suffix.lower() in (".xml", ".cap"):
        return [parse_cap(raw, default_tz=tz)]
    data = decode_json(raw)
    items = data if isinstance(data, list) else [data]
    reports = []
    for i, item in enumerate(items):
        try:
            if isinstance(item, dict) and ("eidoVersion" in item or "EIDOVersion" in item):
                reports.append(parse_eido(item, default_tz=tz))
            else:
                reports.append(parse_generic(item, default_tz=tz))
        except CadParseError as exc:
            where = f"/{i}" if isinstance(data, list) else ""
            raise CadParseError(where + exc.pointer, exc.detail) from None
    return reports


def read_documents(paths: Sequence[Path], *, agency: AgencyPolicy, tz: tzinfo) -> IncidentSet:
    """Generic JSON (one, or a list), EIDO JSON and CAP XML files; updates of one incident merge.

    The agency's call-type and place rules decide what is a cardiac arrest, as at intake.
    """
    reports: list[IncidentReport] = []
    for path in paths:
        try:
            reports.extend(_parse_document(path, tz))
        except CadParseError as exc:
            raise IncidentsError(f"{path.name}{exc.pointer or ''}: {exc.detail}") from None
    merged: dict[tuple[str, str], list[IncidentReport]] = {}
    for report in reports:
        merged.setdefault((report.source, report.source_incident_id), []).append(report)
    incidents = []
    for (source, ident), snapshots in merged.items():
        snapshots.sort(key=lambda r: r.version_key())
        resolved = [apply_agency_rules(r, agency) for r in snapshots]
        latest = resolved[-1]
        where = next((r.location for r in reversed(resolved) if r.location), None)
        if latest.is_cardiac_arrest is not True or where is None:
            continue
        received = min(r.received_at for r in snapshots)
        on_scene = [u.at for r in snapshots for u in r.units if u.status in EMS_ON_SCENE and u.at]
        dispatched = [r.dispatched_at for r in snapshots if r.dispatched_at]
        incidents.append(
            SimIncident(
                incident_id=f"{source}:{ident}",
                received_at=received,
                lat=where.lat,
                lon=where.lon,
                call_type=latest.call_type.code,
                place_type=latest.place_type,
                alert_delay_s=(min(dispatched) - received).total_seconds() if dispatched else None,
                ems_s=(min(on_scene) - received).total_seconds() if on_scene else None,
                is_test=latest.is_test,
                uncertainty_m=where.uncertainty_m,
            )
        )
    notes = [
        f"{len(incidents):,} of {len(merged):,} incidents are cardiac arrests with a location "
        "under the agency's rules"
    ]
    return IncidentSet(sorted(incidents, key=lambda i: i.received_at), "documents", notes)


def default_agency(time_zone: str) -> AgencyPolicy:
    """An agency with the shipped cardiac-arrest rules, for reading documents."""
    return AgencyPolicy(agency_id=UUID(int=0), time_zone=time_zone)


def sniff_layout(path: Path) -> str:
    """``sf``, ``seattle`` or ``documents``, from a CSV header or the file type."""
    if path.is_dir() or path.suffix.lower() not in (".csv",):
        return "documents"
    with path.open(encoding="utf-8-sig") as handle:
        header = handle.readline()
    if "Incident Number" in header and "Received DtTm" in header:
        return "sf"
    if "Datetime" in header and "Incident Number" in header:
        return "seattle"
    raise IncidentsError(f"{path.name}: not a layout this tool reads (SF, Seattle)")


def document_paths(path: Path) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".xml", ".cap"))
        if not found:
            raise IncidentsError(f"{path}: no .json, .xml or .cap files")
        return found
    return [path]
