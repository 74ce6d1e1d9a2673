"""The activations report: exact counts, medians and burden per range, month and hour.

A report is computed over every incident of its range (exact medians and percentiles do not
merge from partial sums), and a range that ended at least two days ago is kept in
``activations_cache`` once computed. A kept report is used only while the agency's
``report_changes`` count is the one it was computed at: migration 0018 makes every change
that can move a number of an incident received more than a day ago add one to that count,
in the same transaction. So a kept report is always the one a computation would give now.

Housekeeping keeps the standard ranges (settled calendar months and years) computed ahead
of any request, and computes them again after a change moved the count (``warm``); those
are marked ``warmed`` and never pushed out by the limit on other kept ranges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn

# Reports kept per agency besides the warmed ones: the ones computed most recently.
CACHE_PER_AGENCY = 64

# Per incident of the range: its local month and hour, and its firsts and counts (the log's,
# summed per incident in incident_review).
_FACTS = """
    inc AS (
        SELECT i.id, i.created_at AS receipt, i.is_test, i.alert_blocked,
               i.alerting_started_at IS NOT NULL AS activated,
               i.first_ems_on_scene_at AS ems_at,
               to_char(i.received_at AT TIME ZONE $4, 'YYYY-MM') AS month,
               extract(hour FROM i.received_at AT TIME ZONE $4)::int AS hour
        FROM incidents i
        WHERE i.agency_id = $1 AND i.received_at >= $2 AND i.received_at < $3
    ),
    facts AS MATERIALIZED (
        SELECT inc.*,
               coalesce(r.alerts_sent, 0) AS sent,
               coalesce(r.alerts_accepted, 0) AS accepted,
               coalesce(r.alerts_on_scene, 0) AS arrived,
               r.first_sent_at AS first_sent,
               r.first_accept_at AS first_accept,
               r.first_on_scene_at AS first_arrival,
               r.not_alertable AS reason
        FROM inc LEFT JOIN incident_review r ON r.incident_id = inc.id
    )
"""


def _seconds(column: str) -> str:
    return f"extract(epoch FROM {column} - receipt)"


_ACTIVATIONS = f"""
    WITH {_FACTS},
    counted AS MATERIALIZED (
        SELECT id, month, hour,
               CASE WHEN is_test THEN 'test'
                    WHEN activated THEN NULL
                    ELSE coalesce(reason, alert_blocked, 'other') END AS excluded,
               NOT is_test AND activated AS act, sent, accepted, arrived,
               {_seconds("first_sent")} AS to_alert,
               {_seconds("first_accept")} AS to_accept,
               {_seconds("first_arrival")} AS to_arrival,
               {_seconds("ems_at")} AS to_ems,
               extract(epoch FROM ems_at - first_arrival) AS lead
        FROM facts
    ),
    totals AS (
        SELECT grouping(month) AS all_months, grouping(hour) AS all_hours, month, hour,
               count(*) FILTER (WHERE act) AS activations,
               count(*) FILTER (WHERE act AND sent = 0) AS activations_without_alert,
               coalesce(sum(sent) FILTER (WHERE act), 0) AS alerts_sent,
               coalesce(sum(accepted) FILTER (WHERE act), 0) AS alerts_accepted,
               count(*) FILTER (WHERE act AND arrived > 0) AS with_volunteer_on_scene,
               count(*) FILTER (WHERE act AND to_arrival IS NOT NULL AND to_ems IS NOT NULL)
                   AS volunteer_and_ems_on_scene,
               count(*) FILTER (WHERE act AND lead > 0) AS volunteer_before_ems,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY lead) FILTER (WHERE act AND lead > 0)
                   AS median_lead_s,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY to_alert) FILTER (WHERE act)
                   AS median_s_to_first_alert,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY to_accept) FILTER (WHERE act)
                   AS median_s_to_first_accept,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY to_arrival) FILTER (WHERE act)
                   AS median_s_to_first_volunteer_on_scene,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY to_ems) FILTER (WHERE act)
                   AS median_s_to_first_ems_on_scene,
               count(*) FILTER (WHERE excluded IS NOT NULL) AS excluded
        FROM counted
        GROUP BY GROUPING SETS ((), (month), (hour))
    ),
    exclusions AS (
        SELECT grouping(month) AS all_months, grouping(hour) AS all_hours, month, hour,
               excluded AS reason, count(*) AS n
        FROM counted WHERE excluded IS NOT NULL
        GROUP BY GROUPING SETS ((excluded), (month, excluded), (hour, excluded))
    ),
    sent AS (
        SELECT f.volunteer_id, c.month, c.hour
        FROM counted c
        JOIN alert_firsts f ON f.incident_id = c.id AND f.event = 'alert_sent'
        WHERE c.act
    ),
    per_volunteer AS (
        SELECT grouping(month) AS all_months, grouping(hour) AS all_hours, month, hour,
               count(*) AS n
        FROM sent
        GROUP BY GROUPING SETS ((volunteer_id), (month, volunteer_id), (hour, volunteer_id))
    ),
    burden AS (
        SELECT all_months, all_hours, month, hour, count(*) AS volunteers_alerted,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY n) AS alerts_per_volunteer_median,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY n) AS alerts_per_volunteer_p90
        FROM per_volunteer
        GROUP BY all_months, all_hours, month, hour
    )
    SELECT 'totals' AS part, to_jsonb(t) AS row FROM totals t
    UNION ALL SELECT 'exclusions', to_jsonb(e) FROM exclusions e
    UNION ALL SELECT 'burden', to_jsonb(b) FROM burden b
    UNION ALL SELECT 'stamp', jsonb_build_object(
        'changes', coalesce((SELECT changes FROM report_changes WHERE agency_id = $1), 0),
        'settled', $3 <= now() - interval '2 days', 'at', now())
"""  # noqa: S608 - built from fixed fragments only


GroupKey = tuple[str, str | int | None]
Groups = dict[GroupKey, dict[str, Any]]
_KEYS = ("all_months", "all_hours", "month", "hour")


def _group(row: dict[str, Any]) -> GroupKey:
    if row["all_months"] and row["all_hours"]:
        return ("total", None)
    if not row["all_months"]:
        return ("month", row["month"])
    return ("hour", row["hour"])


@dataclass(frozen=True, slots=True)
class Report:
    groups: Groups
    computed_at: datetime
    """The snapshot the numbers were computed in (the database's clock)."""
    kept: bool
    """Served from ``activations_cache`` rather than computed for this request."""


@dataclass(frozen=True, slots=True)
class Computed:
    groups: Groups
    changes: int
    """The agency's change count, read in the same snapshot as the incidents."""
    settled: bool
    computed_at: datetime


async def activations(
    conn: Conn, agency_id: UUID, start: datetime, stop: datetime, zone: str
) -> Report:
    """Activation counts, medians, exclusions and alert burden of the incidents received in
    [start, stop): for the whole range (``("total", None)``), each local month
    (``("month", "YYYY-MM")``) and each local hour of day (``("hour", 0..23)``).

    Groups without incidents are absent; values not defined for a group (a median of
    nothing) are None. A kept report of the same range is returned when it is still valid;
    otherwise the report is computed, and kept if its range is settled.
    """
    kept = await _kept(conn, agency_id, start, stop, zone)
    if kept is not None:
        return kept
    done = await compute(conn, agency_id, start, stop, zone)
    if done.settled:
        await _keep(conn, agency_id, start, stop, zone, done, warmed=False)
    return Report(done.groups, done.computed_at, kept=False)


async def compute(
    conn: Conn, agency_id: UUID, start: datetime, stop: datetime, zone: str
) -> Computed:
    """The report computed from the incidents, never from what is kept; with the agency's
    change count read in the same snapshot, and whether the range is settled."""
    groups: Groups = {}
    async with conn.transaction(readonly=True):
        # A year of incidents sorts a few MB per percentile: in memory, not on disk.
        await conn.execute("SET LOCAL work_mem = '32MB'")
        records = await conn.fetch(_ACTIVATIONS, agency_id, start, stop, zone)
    stamp: dict[str, Any] = {}
    for record in records:
        row: dict[str, Any] = _json(record["row"])
        if record["part"] == "stamp":
            stamp = row
            continue
        key = _group(row)
        values = groups.setdefault(key, {"exclusions": {}})
        if record["part"] == "exclusions":
            values["exclusions"][row["reason"]] = row["n"]
            continue
        values.update({k: v for k, v in row.items() if k not in _KEYS})
    return Computed(
        groups,
        changes=int(stamp["changes"]),
        settled=bool(stamp["settled"]),
        computed_at=datetime.fromisoformat(stamp["at"]),
    )


def _json(value: Any) -> Any:
    # The pool decodes jsonb; a bare connection hands over its text.
    return json.loads(value) if isinstance(value, str) else value


async def _kept(
    conn: Conn, agency_id: UUID, start: datetime, stop: datetime, zone: str
) -> Report | None:
    row = await conn.fetchrow(
        """
        SELECT c.groups::text AS groups, c.computed_at FROM activations_cache c
        WHERE c.agency_id = $1 AND c.time_zone = $4 AND c.range_from = $2 AND c.range_to = $3
          AND c.changes = coalesce(
              (SELECT k.changes FROM report_changes k WHERE k.agency_id = $1), 0)
        """,
        agency_id,
        start,
        stop,
        zone,
    )
    if row is None:
        return None
    groups = {(group, key): values for group, key, values in json.loads(row["groups"])}
    return Report(groups, row["computed_at"], kept=True)


async def _keep(
    conn: Conn,
    agency_id: UUID,
    start: datetime,
    stop: datetime,
    zone: str,
    done: Computed,
    *,
    warmed: bool,
) -> None:
    # JSON keeps every number as it was: floats are written in their shortest exact form.
    text = json.dumps([[group, key, values] for (group, key), values in done.groups.items()])
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO activations_cache AS c
                (agency_id, time_zone, range_from, range_to, changes, groups, computed_at,
                 warmed)
            VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8)
            ON CONFLICT (agency_id, time_zone, range_from, range_to) DO UPDATE
                SET changes = EXCLUDED.changes, groups = EXCLUDED.groups,
                    computed_at = EXCLUDED.computed_at, warmed = c.warmed OR EXCLUDED.warmed
                WHERE c.changes <= EXCLUDED.changes
            """,
            agency_id,
            zone,
            start,
            stop,
            done.changes,
            text,
            done.computed_at,
            warmed,
        )
        # Reports of an older count can never be used again; past the limit, the ranges
        # computed longest ago go, except the standard ones housekeeping keeps computed.
        await conn.execute(
            """
            DELETE FROM activations_cache c
            WHERE c.agency_id = $1 AND (c.changes < $2 OR (NOT c.warmed
                AND (c.time_zone, c.range_from, c.range_to) NOT IN (
                    SELECT k.time_zone, k.range_from, k.range_to FROM activations_cache k
                    WHERE k.agency_id = $1 AND NOT k.warmed
                    ORDER BY k.computed_at DESC LIMIT $3)))
            """,
            agency_id,
            done.changes,
            CACHE_PER_AGENCY,
        )


# --- kept ahead of requests ---------------------------------------------------------------------

# Advisory lock key for the warm-up ("DSRPTWRM"): one process computes at a time.
_WARM_LOCK = 0x4453_5250_5457_524D


@dataclass(frozen=True, slots=True)
class AgencyHistory:
    agency_id: UUID
    time_zone: str
    first_received: datetime | None


async def try_warm_lock(conn: Conn) -> bool:
    """Take the warm-up lock for this session unless another process holds it."""
    taken: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", _WARM_LOCK)
    return taken


async def release_warm_lock(conn: Conn) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", _WARM_LOCK)


async def histories(conn: Conn) -> tuple[datetime, list[AgencyHistory]]:
    """The database's clock (the one that decides what is settled), and each agency's zone
    and first received incident."""
    rows = await conn.fetch(
        """
        SELECT now() AS now, a.id, a.time_zone,
               (SELECT min(i.received_at) FROM incidents i WHERE i.agency_id = a.id) AS first
        FROM agencies a ORDER BY a.id
        """
    )
    if not rows:
        return await conn.fetchval("SELECT now()"), []
    return rows[0]["now"], [AgencyHistory(r["id"], r["time_zone"], r["first"]) for r in rows]


async def warm(
    conn: Conn,
    agency_id: UUID,
    zone: str,
    ranges: Sequence[tuple[datetime, datetime]],
    *,
    limit: int,
) -> int:
    """Compute and keep, in the order given, up to ``limit`` of ``ranges`` that have no
    valid kept report; returns how many were computed."""
    valid = {
        (r["range_from"], r["range_to"]): r["warmed"]
        for r in await conn.fetch(
            """
            SELECT c.range_from, c.range_to, c.warmed FROM activations_cache c
            WHERE c.agency_id = $1 AND c.time_zone = $2
              AND c.changes = coalesce(
                  (SELECT k.changes FROM report_changes k WHERE k.agency_id = $1), 0)
            """,
            agency_id,
            zone,
        )
    }
    # A standard range a request computed first is kept like the others from now on.
    unmarked = [r for r in ranges if valid.get(r) is False]
    if unmarked:
        await conn.execute(
            """
            UPDATE activations_cache SET warmed = true
            WHERE agency_id = $1 AND time_zone = $2
              AND (range_from, range_to) IN (
                  SELECT * FROM unnest($3::timestamptz[], $4::timestamptz[]))
            """,
            agency_id,
            zone,
            [r[0] for r in unmarked],
            [r[1] for r in unmarked],
        )
    computed = 0
    for start, stop in ranges:
        if computed >= limit:
            break
        if (start, stop) in valid:
            continue
        done = await compute(conn, agency_id, start, stop, zone)
        if done.settled:
            await _keep(conn, agency_id, start, stop, zone, done, warmed=True)
        computed += 1
    return computed
