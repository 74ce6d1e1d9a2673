"""A volunteer's own data: profile, alerts inbox, everything held (export), erasure."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Final
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.secrets import hash_token

PROFILE_FIELDS: Final = (
    "display_name",
    "language",
    "tier_requested",
    "on_duty",
    "quiet_from",
    "quiet_until",
    "time_zone",
    "daily_budget",
)
"""Columns a volunteer may change about themselves."""


def _plain(value: Any) -> Any:
    if isinstance(value, time):
        return value.isoformat(timespec="minutes")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


async def profile(conn: Conn, volunteer_id: int) -> dict[str, Any] | None:
    """The volunteer's row and channel preferences, JSON-ready."""
    row = await conn.fetchrow(
        """
        SELECT v.*, vc.preferred, coalesce(vc.refused, '{}') AS refused,
               coalesce(vc.sms_opt_out, false) AS sms_opt_out,
               coalesce(vc.phone_invalid, false) AS phone_invalid
        FROM volunteers v LEFT JOIN volunteer_channels vc ON vc.volunteer_id = v.id
        WHERE v.id = $1 AND v.erased_at IS NULL
        """,
        volunteer_id,
    )
    if row is None:
        return None
    return {key: _plain(value) for key, value in dict(row).items() if key != "token_hash"}


async def in_agency(conn: Conn, agency_id: UUID, volunteer_id: int) -> bool:
    found = await conn.fetchval(
        "SELECT true FROM volunteers WHERE id = $1 AND agency_id = $2 AND erased_at IS NULL",
        volunteer_id,
        agency_id,
    )
    return bool(found)


async def update_profile(conn: Conn, volunteer_id: int, changes: Mapping[str, Any]) -> None:
    assert set(changes) <= set(PROFILE_FIELDS)
    if not changes:
        return
    # Column names come from the fixed tuple above, never from input.
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=2))
    await conn.execute(
        f"UPDATE volunteers SET {assignments} WHERE id = $1",  # noqa: S608
        volunteer_id,
        *changes.values(),
    )


_OPEN = """
    (i.status = 'active' OR a.role = 'test')
    AND (a.state IN ('accepted', 'en_route', 'on_scene')
         OR (a.state IN ('queued', 'sent', 'delivered') AND a.expires_at > $2))
"""


async def alerts_inbox(
    conn: Conn, volunteer_id: int, *, now: datetime, since: datetime
) -> list[dict[str, Any]]:
    """Open alerts first, then the others since ``since``, newest first."""
    rows = await conn.fetch(
        f"""
        SELECT a.id, a.incident_id, a.state, a.role, a.created_at, a.expires_at, a.distance_m,
               a.answered_at, i.status AS incident_status, i.is_test, {_OPEN} AS open
        FROM alerts a JOIN incidents i ON i.id = a.incident_id
        WHERE a.volunteer_id = $1 AND (a.created_at > $3 OR ({_OPEN}))
        ORDER BY open DESC, a.created_at DESC LIMIT 500
        """,  # noqa: S608 - the interpolated part is a constant
        volunteer_id,
        now,
        since,
    )
    return [
        {
            "alert_id": str(r["id"]),
            "incident_id": str(r["incident_id"]),
            "open": r["open"],
            "state": r["state"],
            "role": r["role"],
            "test": r["role"] == "test",
            "incident_status": r["incident_status"],
            "created_at": r["created_at"].isoformat(),
            "expires_at": r["expires_at"].isoformat(),
            "answered_at": r["answered_at"].isoformat() if r["answered_at"] else None,
            "distance_m": round(r["distance_m"]),
        }
        for r in rows
    ]


# A volunteer's rows in the response log: every one belongs to an incident where they had an
# alert, so the incident index finds them (the log has no index by volunteer, on purpose:
# it is written on every event).
_THEIRS = """
    WHERE volunteer_id = $1
      AND incident_id IN (SELECT incident_id FROM alerts WHERE volunteer_id = $1)
"""


async def held_about(conn: Conn, volunteer_id: int) -> dict[str, Any]:
    """Devices, position, alerts with the timeline events about the volunteer, and their own
    timeline: the parts of an export that only this module reads."""
    devices = await conn.fetch(
        "SELECT id, platform, fcm_token, active, deactivated_reason, created_at, updated_at"
        " FROM devices WHERE volunteer_id = $1 ORDER BY id",
        volunteer_id,
    )
    subscriptions = await conn.fetch(
        "SELECT id, endpoint, active, deactivated_reason, created_at, updated_at"
        " FROM webpush_subscriptions WHERE volunteer_id = $1 ORDER BY id",
        volunteer_id,
    )
    position = await conn.fetchrow(
        "SELECT lat, lon, accuracy_m, reported_at FROM volunteer_positions WHERE volunteer_id = $1",
        volunteer_id,
    )
    alerts = await conn.fetch(
        """
        SELECT a.id, a.incident_id, a.state, a.role, a.wave, a.distance_m, a.created_at,
               a.expires_at, a.answered_at, i.is_test
        FROM alerts a JOIN incidents i ON i.id = a.incident_id
        WHERE a.volunteer_id = $1 ORDER BY a.created_at
        """,
        volunteer_id,
    )
    events = await conn.fetch(
        "SELECT alert_id, incident_id, event, at, details FROM response_log"  # noqa: S608
        f" {_THEIRS} ORDER BY at, id",  # the interpolated part is a constant
        volunteer_id,
    )
    own = await conn.fetch(
        "SELECT event, at, details FROM volunteer_events WHERE volunteer_id = $1 ORDER BY id",
        volunteer_id,
    )
    presence = await conn.fetch(
        "SELECT hour_of_week, cell, last_seen_at FROM coverage_presence WHERE volunteer_id = $1"
        " ORDER BY hour_of_week, cell",
        volunteer_id,
    )
    by_alert: dict[Any, list[dict[str, Any]]] = {}
    for e in events:
        by_alert.setdefault(e["alert_id"], []).append(
            {"event": e["event"], "at": e["at"].isoformat(), "details": e["details"]}
        )
    return {
        "devices": [{k: _plain(v) for k, v in dict(d).items()} for d in devices],
        "web_push_subscriptions": [
            {k: _plain(v) for k, v in dict(s).items()} for s in subscriptions
        ],
        "position": {k: _plain(v) for k, v in dict(position).items()} if position else None,
        "alerts": [
            {
                **{k: _plain(v) for k, v in dict(a).items() if k != "id"},
                "alert_id": str(a["id"]),
                "events": by_alert.get(a["id"], []),
            }
            for a in alerts
        ],
        "timeline": [
            {"event": e["event"], "at": e["at"].isoformat(), "details": e["details"]} for e in own
        ],
        # The coverage report's coarse record: hour of the week (UTC), H3 cell, last seen.
        "coverage_presence": [
            {
                "hour_of_week": p["hour_of_week"],
                "cell": f"{p['cell']:x}",
                "last_seen_at": p["last_seen_at"].isoformat(),
            }
            for p in presence
        ],
    }


@dataclass(frozen=True, slots=True)
class Erased:
    agency_id: UUID
    phone_e164: str | None
    pseudonym_id: int
    pseudonym: str


async def erase(conn: Conn, volunteer_id: int, now: datetime) -> Erased | None:
    """Replace the volunteer by a pseudonym in every fact kept, then delete them.

    Alerts and response-log rows move to a new row that holds nothing but a random name,
    so incident timelines, metrics and reports keep their counts and times; deleting the
    volunteer's own row takes devices, position, channels, sessions, credentials and
    scans, feedback, notices and their own timeline with it (foreign keys cascade).
    Call inside a transaction.
    """
    # The position goes first: writing positions takes the position change lock and then
    # checks the volunteer row, so locking the row first and then deleting the position
    # (by cascade) could deadlock with another process's position flush.
    await conn.execute("DELETE FROM volunteer_positions WHERE volunteer_id = $1", volunteer_id)
    row = await conn.fetchrow(
        "SELECT agency_id, phone_e164 FROM volunteers WHERE id = $1 AND erased_at IS NULL"
        " FOR UPDATE",
        volunteer_id,
    )
    if row is None:
        return None
    pseudonym = f"erased-{secrets.token_hex(6)}"
    pseudonym_id: int = await conn.fetchval(
        """
        INSERT INTO volunteers (agency_id, display_name, phone_e164, language, token_hash,
            verified, available, on_duty, certified_until, erased_at, created_at)
        VALUES ($1, $2, NULL, 'und', $3, false, false, false, NULL, $4, $4) RETURNING id
        """,
        row["agency_id"],
        pseudonym,
        hash_token(secrets.token_urlsafe(32)),
        now,
    )
    await conn.execute(
        f"UPDATE response_log SET volunteer_id = $2 {_THEIRS}",  # noqa: S608 - constant
        volunteer_id,
        pseudonym_id,
    )
    await conn.execute(
        "UPDATE alerts SET volunteer_id = $2 WHERE volunteer_id = $1", volunteer_id, pseudonym_id
    )
    # The review summary's copy of who was alerted (the burden per volunteer) follows.
    await conn.execute(
        "UPDATE alert_firsts SET volunteer_id = $1"
        " WHERE alert_id IN (SELECT id FROM alerts WHERE volunteer_id = $1)",
        pseudonym_id,
    )
    # Nothing more goes out to someone who is gone.
    await conn.execute(
        """
        UPDATE outbox SET done_at = $2, outcome = 'erased', lease_until = NULL
        WHERE done_at IS NULL AND alert_id IN (SELECT id FROM alerts WHERE volunteer_id = $1)
        """,
        pseudonym_id,
        now,
    )
    await conn.execute("DELETE FROM volunteers WHERE id = $1", volunteer_id)
    return Erased(row["agency_id"], row["phone_e164"], pseudonym_id, pseudonym)
