"""The append-only response log: one row per thing that happened to an incident.

Partitioned by UTC month on ``at`` (migration 0019); the upkeep of its partitions is here
too, driven by housekeeping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from dispatch.db.types import Conn


@dataclass(frozen=True, slots=True)
class LogEvent:
    agency_id: UUID
    incident_id: UUID
    event: str
    at: datetime
    alert_id: UUID | None = None
    volunteer_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


async def append(conn: Conn, events: Sequence[LogEvent]) -> None:
    """Append events in one statement (one round trip however many there are)."""
    if not events:
        return
    await conn.execute(
        """
        INSERT INTO response_log
            (agency_id, incident_id, alert_id, volunteer_id, event, at, details)
        SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[],
                             $6::timestamptz[], $7::jsonb[])
        """,
        *columns(events),
    )


def columns(events: Sequence[LogEvent]) -> tuple[list[Any], ...]:
    """The events as the seven arrays an ``unnest`` insert into response_log takes."""
    return (
        [e.agency_id for e in events],
        [e.incident_id for e in events],
        [e.alert_id for e in events],
        [e.volunteer_id for e in events],
        [e.event for e in events],
        [e.at for e in events],
        [dict(e.details) for e in events],
    )


async def metric_inputs(
    conn: Conn, incident_id: UUID
) -> tuple[datetime, list[tuple[str, datetime, Any]]]:
    """When we received the incident, and the events the incident's metrics are made of."""
    # Intake logs ``incident_received`` in the transaction that stores the incident.
    received_at: datetime = await conn.fetchval(
        "SELECT min(at) FROM response_log WHERE incident_id = $1 AND event = 'incident_received'",
        incident_id,
    )
    rows = await conn.fetch(
        "SELECT event, at, details FROM response_log WHERE incident_id = $1"
        " AND event IN ('alert_sent', 'alert_accepted', 'alert_on_scene', 'unit_status')",
        incident_id,
    )
    return received_at, [(r["event"], r["at"], r["details"]) for r in rows]


async def timeline(conn: Conn, incident_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, at, event, alert_id, volunteer_id, details
        FROM response_log WHERE incident_id = $1 ORDER BY at, id
        """,
        incident_id,
    )
    return [
        {
            "seq": r["id"],
            "at": r["at"].isoformat(),
            "event": r["event"],
            "alert_id": str(r["alert_id"]) if r["alert_id"] else None,
            "volunteer_id": r["volunteer_id"],
            "details": r["details"],
        }
        for r in rows
    ]


# --- monthly partitions (migration 0019) -------------------------------------------------

_PARTITION_LOCK: Final = 0x44535052544C4F47 >> 8
"""Advisory lock for partition upkeep ("DSPRTLOG"): one process at a time."""

_LOCK_TIMEOUT: Final = "500ms"
"""Detaching waits for every reader of the log and, while it waits, holds up every write
queued behind it (intake included): rather than stall intake behind a long read, give up
and try again next round. Attaching waits likewise on the default partition's readers
(months are created three ahead, so a skipped round costs nothing)."""

# A bound as PostgreSQL prints it ("FOR VALUES FROM ('…') TO ('…')", MINVALUE unquoted,
# or "DEFAULT"), read back as timestamptz in the same session, so its time zone matches.
_PARTITIONS_SQL: Final = r"""
    SELECT c.relname AS name,
           pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'FROM \(''([^'']*)''\)'))[1]::timestamptz AS lower,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                         'TO \(''([^'']*)''\)'))[1]::timestamptz AS upper
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'response_log'::regclass
    ORDER BY upper NULLS LAST, name
"""


_COLUMNS: Final = "id, agency_id, incident_id, alert_id, volunteer_id, event, at, details"


@dataclass(frozen=True, slots=True)
class LogPartition:
    name: str
    lower: datetime | None
    """None: unbounded below (the partition the pre-0019 table became), or the default."""
    upper: datetime | None
    is_default: bool = False


async def partitions(conn: Conn) -> list[LogPartition]:
    rows = await conn.fetch(_PARTITIONS_SQL)
    return [LogPartition(r["name"], r["lower"], r["upper"], r["is_default"]) for r in rows]


async def try_partition_lock(conn: Conn) -> bool:
    """Take the partition-upkeep lock for this session unless another process has it.

    A session lock, not a transaction's: each change then commits on its own.
    """
    taken: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", _PARTITION_LOCK)
    return taken


async def release_partition_lock(conn: Conn) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", _PARTITION_LOCK)


def _literal(at: datetime) -> str:
    # DDL takes no parameters; the value is a datetime we made, printed in ISO form.
    return "'" + at.astimezone(UTC).isoformat() + "'"


async def add_month(
    conn: Conn, name: str, start: datetime, end: datetime, default: str | None
) -> int:
    """Create the partition [start, end), moving in the rows the default partition holds for
    it; returns how many moved. Call inside a transaction.

    Built beside the log and then attached: attaching locks the log only against schema
    changes (SHARE UPDATE EXCLUSIVE), where CREATE TABLE … PARTITION OF would lock it
    against every read and write. The moved rows are inserted into the new table, not
    through the log, so the summary trigger does not see them a second time.
    """
    await conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
    await conn.execute(f'CREATE TABLE "{name}" (LIKE response_log INCLUDING DEFAULTS)')
    moved = 0
    if default is not None:
        # Nothing may land in the default for this month between the move and the attach.
        await conn.execute(f'LOCK TABLE "{default}" IN EXCLUSIVE MODE')
        status = await conn.execute(
            f"""
            WITH moved AS (
                DELETE FROM "{default}" WHERE at >= $1 AND at < $2 RETURNING *
            )
            INSERT INTO "{name}" ({_COLUMNS}) SELECT {_COLUMNS} FROM moved
            """,  # noqa: S608 - table names are ours
            start,
            end,
        )
        moved = int(status.split()[-1])
    await conn.execute(
        f'ALTER TABLE response_log ATTACH PARTITION "{name}"'
        f" FOR VALUES FROM ({_literal(start)}) TO ({_literal(end)})"
    )
    return moved


async def drop_partition(conn: Conn, name: str) -> None:
    """Detach and drop a partition. Call inside a transaction."""
    await conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
    await conn.execute(f'ALTER TABLE response_log DETACH PARTITION "{name}"')
    await conn.execute(f'DROP TABLE "{name}"')


async def purge_default(conn: Conn, default: str, before: datetime) -> int:
    """Delete rows older than ``before`` from the default partition (indexed on ``at``)."""
    status = await conn.execute(
        f'DELETE FROM "{default}" WHERE at < $1',  # noqa: S608 - table name is ours
        before,
    )
    return int(status.split()[-1])
