"""What supervisors review: the incident list, the volunteer roster, the Utstein rows.

Queries are built from the filters actually given (fixed fragments, values always bound),
so each combination gets a plan for itself rather than one generic plan full of
``$n IS NULL OR ...`` branches. Pages are keyset pages: newest first by (received_at, id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn


def like_pattern(text: str) -> str:
    """``text`` as a substring pattern for ILIKE, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Where:
    """Conditions joined by AND, with their values as numbered parameters."""

    def __init__(self, *args: Any) -> None:
        self.args: list[Any] = list(args)
        self.parts: list[str] = []

    def param(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str) -> None:
        self.parts.append(condition)

    def one_of(self, column: str, values: Sequence[str]) -> str:
        # One value as "=": the planner then reads that value's index in received order
        # (with "= ANY" it cannot know the rows come out in order, and sorts them all).
        if len(values) == 1:
            return f"{column} = {self.param(values[0])}"
        return f"{column} = ANY({self.param(list(values))}::text[])"

    def sql(self) -> str:
        return " AND ".join(self.parts) if self.parts else "true"


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    received_from: datetime | None = None
    received_to: datetime | None = None
    states: Sequence[str] = ()
    cardiac_arrest: bool | None = None
    is_test: bool | None = None
    call_types: Sequence[str] = ()
    text: str | None = None
    after: tuple[datetime, UUID] | None = None


def _incident_where(agency_id: UUID, f: IncidentFilter) -> _Where:
    w = _Where(agency_id)
    w.add("i.agency_id = $1")
    if f.received_from is not None:
        w.add(f"i.received_at >= {w.param(f.received_from)}")
    if f.received_to is not None:
        w.add(f"i.received_at < {w.param(f.received_to)}")
    if f.states:
        w.add(w.one_of("i.state", f.states))
    if f.cardiac_arrest is True:
        w.add("i.is_cardiac_arrest")
    elif f.cardiac_arrest is False:
        w.add("i.is_cardiac_arrest IS NOT TRUE")
    if f.is_test is not None:
        w.add(f"i.is_test = {w.param(f.is_test)}")
    if f.call_types:
        w.add(w.one_of("i.call_type_code", f.call_types))
    if f.text:
        pattern = w.param(like_pattern(f.text))
        w.add(
            f"(i.source_incident_id ILIKE {pattern} OR"
            f" (i.report #>> '{{address,text}}') ILIKE {pattern})"
        )
    if f.after is not None:
        at, incident_id = f.after
        w.add(f"(i.received_at, i.id) < ({w.param(at)}, {w.param(incident_id)})")
    return w


@dataclass(frozen=True, slots=True)
class IncidentRow:
    incident_id: UUID
    incident_number: str
    source: str
    received_at: datetime
    state: str
    status: str
    call_type: str
    cardiac_arrest: bool | None
    test: bool
    address: str | None
    alerted: int
    accepted: int
    on_scene: int
    first_ems_on_scene_at: datetime | None


async def incidents(
    conn: Conn, agency_id: UUID, f: IncidentFilter, *, limit: int
) -> list[IncidentRow]:
    """One page of the agency's incidents, newest first, with their volunteer counts.

    The counts are the response log's, summed per incident in ``incident_review``: alerts
    that were sent (on any channel), that were accepted, and whose volunteer arrived.
    """
    w = _incident_where(agency_id, f)
    limit_param = w.param(limit)
    # The page first, then its summary rows: a page chosen by sorting matches (text search)
    # would otherwise look up the summary of every match, not only of the page's.
    query = f"""
        SELECT i.*, coalesce(r.alerts_sent, 0) AS alerted,
               coalesce(r.alerts_accepted, 0) AS accepted,
               coalesce(r.alerts_on_scene, 0) AS on_scene
        FROM (
            SELECT i.id, i.source_incident_id, i.source, i.received_at, i.state, i.status,
                   i.call_type_code, i.is_cardiac_arrest, i.is_test,
                   i.report #>> '{{address,text}}' AS address, i.first_ems_on_scene_at
            FROM incidents i
            WHERE {w.sql()}
            ORDER BY i.received_at DESC, i.id DESC
            LIMIT {limit_param}
        ) i
        LEFT JOIN incident_review r ON r.incident_id = i.id
        ORDER BY i.received_at DESC, i.id DESC
        """  # noqa: S608 - fixed fragments; every value is a bound parameter
    if not f.text:
        rows = await conn.fetch(query, *w.args)
    else:
        # After five runs of a prepared statement PostgreSQL may switch to its generic plan,
        # which cannot know how rare the text is: it read the agency's incidents newest first
        # and filtered 11,000 of them for a page (68 ms). Planned for the text, it reads the
        # trigram indexes. The pages either plan reads are cached; priced as a disk's random
        # reads (the default 4), the trigram plan's few hundred lost to reading 11,000 rows
        # newest first even with the row estimate right (74 ms against 6 ms). At 1.1, the
        # usual figure for cached or solid-state data, a rare text takes the indexes and a
        # common one (17% of addresses: 1.8 ms) still the newest first.
        async with conn.transaction(readonly=True):
            await conn.execute(
                "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL random_page_cost = 1.1"
            )
            rows = await conn.fetch(query, *w.args)
    return [
        IncidentRow(
            incident_id=r["id"],
            incident_number=r["source_incident_id"],
            source=r["source"],
            received_at=r["received_at"],
            state=r["state"],
            status=r["status"],
            call_type=r["call_type_code"],
            cardiac_arrest=r["is_cardiac_arrest"],
            test=r["is_test"],
            address=r["address"],
            alerted=r["alerted"],
            accepted=r["accepted"],
            on_scene=r["on_scene"],
            first_ems_on_scene_at=r["first_ems_on_scene_at"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class VolunteerFilter:
    tiers: Sequence[str] = ()
    verified: bool | None = None
    certificate_before: datetime | None = None
    on_duty: bool | None = None
    after_id: int = 0


@dataclass(frozen=True, slots=True)
class VolunteerRow:
    volunteer_id: int
    display_name: str
    tier: str
    verified: bool
    available: bool
    on_duty: bool
    certified_until: datetime | None
    professional_until: datetime | None
    is_tester: bool
    self_registered: bool
    created_at: datetime


async def volunteers(
    conn: Conn, agency_id: UUID, f: VolunteerFilter, *, limit: int
) -> list[VolunteerRow]:
    """One page of the agency's roster by id; erased accounts and positions never appear."""
    w = _Where(agency_id, f.after_id)
    w.add("v.agency_id = $1 AND v.id > $2 AND v.erased_at IS NULL")
    if f.tiers:
        w.add(f"v.tier = ANY({w.param(list(f.tiers))}::text[])")
    if f.verified is not None:
        w.add(f"v.verified = {w.param(f.verified)}")
    if f.certificate_before is not None:
        # A volunteer with no certificate date has none to expire: not listed.
        w.add(f"v.certified_until < {w.param(f.certificate_before)}")
    if f.on_duty is not None:
        w.add(f"v.on_duty = {w.param(f.on_duty)}")
    limit_param = w.param(limit)
    rows = await conn.fetch(
        f"""
        SELECT v.id, v.display_name, v.tier, v.verified, v.available, v.on_duty,
               v.certified_until, v.professional_until, v.is_tester, v.self_registered,
               v.created_at
        FROM volunteers v
        WHERE {w.sql()}
        ORDER BY v.id
        LIMIT {limit_param}
        """,  # noqa: S608 - fixed fragments; every value is a bound parameter
        *w.args,
    )
    return [
        VolunteerRow(
            volunteer_id=r["id"],
            display_name=r["display_name"],
            tier=r["tier"],
            verified=r["verified"],
            available=r["available"],
            on_duty=r["on_duty"],
            certified_until=r["certified_until"],
            professional_until=r["professional_until"],
            is_tester=r["is_tester"],
            self_registered=r["self_registered"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


# --- coverage ----------------------------------------------------------------------------------


# The coverage report looks this far back; presence older than this is purged.
COVERAGE_WINDOW = timedelta(days=28)
# A cell with fewer volunteers than this is never shown: nobody can be located from it.
COVERAGE_MINIMUM = 3


@dataclass(frozen=True, slots=True)
class CoverageCells:
    cells: list[tuple[int, int]]
    """(resolution-8 cell, volunteers) of the cells shown, by cell."""
    suppressed: int
    """How many cells had volunteers but fewer than the minimum."""


async def coverage(
    conn: Conn,
    agency_id: UUID,
    *,
    utc_hour_of_week: int,
    since: datetime,
    minimum: int,
    after_cell: int,
    limit: int,
) -> CoverageCells:
    """Verified, available volunteers seen on duty in each cell in that hour of the week
    since ``since``; cells with fewer than ``minimum`` are only counted, never listed."""
    rows = await conn.fetch(
        """
        WITH per_cell AS (
            -- A volunteer has one row per hour of the week and cell (the primary key), so
            -- counting rows counts people, without sorting them for DISTINCT.
            SELECT p.cell, count(*) AS volunteers
            FROM coverage_presence p
            JOIN volunteers v ON v.id = p.volunteer_id
            WHERE p.agency_id = $1 AND p.hour_of_week = $2 AND p.last_seen_at >= $3
              AND v.verified AND v.available AND v.erased_at IS NULL
            GROUP BY p.cell
        )
        SELECT cell, volunteers, false AS hidden FROM (
            SELECT cell, volunteers FROM per_cell
            WHERE volunteers >= $4 AND cell > $5 ORDER BY cell LIMIT $6
        ) shown
        UNION ALL
        SELECT NULL, count(*), true FROM per_cell WHERE volunteers < $4
        """,
        agency_id,
        utc_hour_of_week,
        since,
        minimum,
        after_cell,
        limit,
    )
    cells = [(r["cell"], r["volunteers"]) for r in rows if not r["hidden"]]
    suppressed = next(r["volunteers"] for r in rows if r["hidden"])
    return CoverageCells(cells, suppressed)


async def purge_presence(conn: Conn, before: datetime) -> int:
    """Forget presence not seen since ``before`` (the coverage window's retention)."""
    status: str = await conn.execute(
        "DELETE FROM coverage_presence WHERE last_seen_at < $1", before
    )
    return int(status.split()[-1])


# --- Utstein rows --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UtsteinRow:
    incident_id: UUID
    incident_number: str
    received_at: datetime
    receipt_at: datetime
    activated: bool
    excluded_reason: str | None
    s_to_first_alert: float | None
    s_to_first_accept: float | None
    s_to_first_volunteer_arrival: float | None
    s_to_first_ems_arrival: float | None
    volunteers_alerted: int
    volunteers_accepted: int
    volunteers_arrived: int
    aed_fetched: bool
    volunteer_before_ems: bool | None


async def utstein(
    conn: Conn,
    agency_id: UUID,
    start: datetime,
    stop: datetime,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[UtsteinRow]:
    """One row per real (not test) cardiac arrest received in [start, stop), oldest first."""
    after_at, after_id = after if after is not None else (None, None)
    rows = await conn.fetch(
        """
        SELECT i.id, i.source_incident_id, i.received_at, i.created_at AS receipt,
               i.alerting_started_at IS NOT NULL AS activated, i.alert_blocked,
               i.first_ems_on_scene_at AS ems_at,
               coalesce(f.alerts_sent, 0) AS sent, coalesce(f.alerts_accepted, 0) AS accepted,
               coalesce(f.alerts_on_scene, 0) AS arrived, f.first_sent_at AS first_sent,
               f.first_accept_at AS first_accept, f.first_on_scene_at AS first_arrival,
               coalesce(f.aed_on_scene, false) AS aed, f.not_alertable AS reason
        FROM incidents i
        LEFT JOIN incident_review f ON f.incident_id = i.id
        WHERE i.agency_id = $1 AND i.received_at >= $2 AND i.received_at < $3
          AND i.is_cardiac_arrest AND NOT i.is_test
          AND ($4::timestamptz IS NULL OR (i.received_at, i.id) > ($4, $5::uuid))
        ORDER BY i.received_at, i.id
        LIMIT $6
        """,
        agency_id,
        start,
        stop,
        after_at,
        after_id,
        limit,
    )

    def since(receipt: datetime, at: datetime | None) -> float | None:
        return None if at is None else round((at - receipt).total_seconds(), 1)

    out = []
    for r in rows:
        arrival, ems = r["first_arrival"], r["ems_at"]
        out.append(
            UtsteinRow(
                incident_id=r["id"],
                incident_number=r["source_incident_id"],
                received_at=r["received_at"],
                receipt_at=r["receipt"],
                activated=r["activated"],
                excluded_reason=None
                if r["activated"]
                else (r["reason"] or r["alert_blocked"] or "other"),
                s_to_first_alert=since(r["receipt"], r["first_sent"]),
                s_to_first_accept=since(r["receipt"], r["first_accept"]),
                s_to_first_volunteer_arrival=since(r["receipt"], arrival),
                s_to_first_ems_arrival=since(r["receipt"], ems),
                volunteers_alerted=r["sent"],
                volunteers_accepted=r["accepted"],
                volunteers_arrived=r["arrived"],
                aed_fetched=bool(r["aed"]),
                volunteer_before_ems=None if arrival is None or ems is None else arrival < ems,
            )
        )
    return out
