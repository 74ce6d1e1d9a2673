"""The append-only audit log of supervisor (and operator) actions (migration 0011).

Entries are written in the transaction of the change they record, so a change without
its entry cannot commit. Values are kept as JSON; names, phone numbers and secrets are
never written here (``jsonable`` callers pass settings, states and ids).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from uuid import UUID

from asyncpg import Record

from dispatch.db.types import Conn


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a supervisor (by id) or the operator at the command line."""

    supervisor_id: int | None

    @property
    def label(self) -> str:
        return f"supervisor:{self.supervisor_id}" if self.supervisor_id is not None else "cli"


CLI = Actor(None)


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


async def record(
    conn: Conn,
    *,
    agency_id: UUID,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object | None,
    at: datetime,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log (agency_id, supervisor_id, actor, action, target_type, target_id,
                               at, before, after)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        agency_id,
        actor.supervisor_id,
        actor.label,
        action,
        target_type,
        None if target_id is None else str(target_id),
        at,
        None if before is None else jsonable(before),
        None if after is None else jsonable(after),
    )


async def newest(
    conn: Conn, agency_id: UUID, *, limit: int, before_id: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT id, actor, supervisor_id, action, target_type, target_id, at, before, after
        FROM audit_log WHERE agency_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3
        """,
        agency_id,
        before_id,
        limit,
    )
    fields = ("actor", "supervisor_id", "action", "target_type", "target_id", "before", "after")
    return [_entry(r, fields) for r in rows]


async def about_volunteer(conn: Conn, volunteer_id: int) -> list[dict[str, Any]]:
    """Entries whose target is this volunteer (for their export)."""
    rows = await conn.fetch(
        """
        SELECT id, actor, action, at, before, after FROM audit_log
        WHERE (target_type = 'volunteer' AND target_id = $1) OR after ->> 'volunteer_id' = $1
        ORDER BY id
        """,
        str(volunteer_id),
    )
    return [_entry(r, ("actor", "action", "before", "after")) for r in rows]


def _entry(row: Record, fields: tuple[str, ...]) -> dict[str, Any]:
    """An entry as shown: its place in the log, its time, then ``fields`` as stored."""
    return {"seq": row["id"], "at": row["at"].isoformat(), **{f: row[f] for f in fields}}
