"""Volunteers and their last known positions (never a history)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.domain.eligibility import Tier, VolunteerProfile
from dispatch.domain.volunteer_settings import CERTIFICATE_VALIDITY
from dispatch.domain.volunteer_settings import FIELDS as VOLUNTEER_FIELDS
from dispatch.secrets import TokenKind, hash_token, new_token, token_matches
from dispatch.store.unnest import columns
from geoindex import point_cell


@dataclass(frozen=True, slots=True)
class VolunteerIdentity:
    volunteer_id: int
    agency_id: UUID
    eligible: bool
    on_duty: bool = True
    session_id: int | None = None
    """The device session the request came through (None: a supervisor-issued token)."""


@dataclass(frozen=True, slots=True)
class PositionRow:
    volunteer_id: int
    agency_id: UUID
    lat: float
    lon: float
    accuracy_m: float | None
    reported_at: datetime


async def create_volunteer(
    conn: Conn,
    *,
    agency_id: UUID,
    display_name: str,
    phone_e164: str | None = None,
    language: str = "en",
    settings: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> tuple[int, str]:
    """Create a volunteer; returns (id, bearer token). Only the token's hash is stored.

    ``settings`` are validated columns (``dispatch.domain.volunteer_settings``); an
    administrator registering a volunteer attests a current CPR certificate, valid
    for the usual two years unless its own expiry is given.
    """
    token = new_token(TokenKind.VOLUNTEER)
    values = dict(settings or {})
    values.setdefault("certified_until", (now or datetime.now(UTC)) + CERTIFICATE_VALIDITY)
    names = ["agency_id", "display_name", "phone_e164", "language", "token_hash", *values]
    assert set(values) <= set(VOLUNTEER_FIELDS)
    placeholders = ", ".join(f"${i}" for i in range(1, len(names) + 1))
    # Column names come from the validated, fixed field list, never from input.
    sql = f"INSERT INTO volunteers ({', '.join(names)}) VALUES ({placeholders}) RETURNING id"  # noqa: S608
    volunteer_id: int = await conn.fetchval(
        sql,
        agency_id,
        display_name,
        phone_e164,
        language,
        hash_token(token),
        *values.values(),
    )
    return volunteer_id, token


async def update_settings(
    conn: Conn, agency_id: UUID, volunteer_id: int, changes: Mapping[str, Any]
) -> bool:
    """Apply validated changes; False when the volunteer is not this agency's."""
    assert set(changes) <= set(VOLUNTEER_FIELDS)
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=3))
    status: str = await conn.execute(
        f"UPDATE volunteers SET {assignments} WHERE agency_id = $1 AND id = $2",  # noqa: S608
        agency_id,
        volunteer_id,
        *changes.values(),
    )
    return status.endswith(" 1")


async def lock(conn: Conn, volunteer_id: int) -> None:
    """Row-lock the volunteer until the transaction ends (serialises their own requests)."""
    await conn.execute("SELECT 1 FROM volunteers WHERE id = $1 FOR NO KEY UPDATE", volunteer_id)


async def ids_of_agency(conn: Conn, agency_id: UUID) -> list[int]:
    rows = await conn.fetch("SELECT id FROM volunteers WHERE agency_id = $1 ORDER BY id", agency_id)
    return [r["id"] for r in rows]


async def certified_until(conn: Conn, volunteer_id: int) -> datetime | None:
    until: datetime | None = await conn.fetchval(
        "SELECT certified_until FROM volunteers WHERE id = $1", volunteer_id
    )
    return until


async def settings_of(conn: Conn, agency_id: UUID, volunteer_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT * FROM volunteers WHERE agency_id = $1 AND id = $2", agency_id, volunteer_id
    )
    if row is None:
        return None
    out: dict[str, Any] = {"volunteer_id": row["id"], "display_name": row["display_name"]}
    for name in VOLUNTEER_FIELDS:
        value = row[name]
        if isinstance(value, time):
            value = value.isoformat(timespec="minutes")
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[name] = value
    return out


async def authenticate(conn: Conn, presented: str) -> VolunteerIdentity | None:
    row = await conn.fetchrow(
        "SELECT id, agency_id, token_hash, verified AND available AS eligible, on_duty"
        " FROM volunteers WHERE token_hash = $1 AND erased_at IS NULL",
        hash_token(presented),
    )
    if row is None or not token_matches(presented, row["token_hash"]):
        return None
    return VolunteerIdentity(row["id"], row["agency_id"], row["eligible"], row["on_duty"])


async def upsert_positions(conn: Conn, rows: Sequence[PositionRow]) -> None:
    """Write a batch of last positions in one round trip; an older fix never overwrites a newer.

    A fix of a volunteer who is off duty, or gone, by the time it is written is dropped:
    going off duty deletes the position, and a fix still queued must not bring it back.
    An update keeps the change number its row drew (the followers' feed; see
    :mod:`dispatch.store.position_changes`).
    """
    await conn.execute(
        """
        INSERT INTO volunteer_positions AS p
            (volunteer_id, agency_id, lat, lon, accuracy_m, reported_at, cell)
        SELECT u.* FROM unnest($1::bigint[], $2::uuid[], $3::float8[], $4::float8[],
                               $5::float8[], $6::timestamptz[], $7::bigint[])
            AS u(volunteer_id, agency_id, lat, lon, accuracy_m, reported_at, cell)
        JOIN volunteers v ON v.id = u.volunteer_id AND v.on_duty AND v.erased_at IS NULL
        ON CONFLICT (volunteer_id) DO UPDATE
            SET lat = EXCLUDED.lat, lon = EXCLUDED.lon, accuracy_m = EXCLUDED.accuracy_m,
                reported_at = EXCLUDED.reported_at, cell = EXCLUDED.cell,
                change_seq = EXCLUDED.change_seq
            WHERE p.reported_at <= EXCLUDED.reported_at
        """,
        *columns(rows, "volunteer_id", "agency_id", "lat", "lon", "accuracy_m", "reported_at"),
        # Computed once per write so a rebuild needs no h3 call per row.
        [point_cell(r.lat, r.lon) for r in rows],
    )


async def delete_position(conn: Conn, volunteer_id: int) -> bool:
    status: str = await conn.execute(
        "DELETE FROM volunteer_positions WHERE volunteer_id = $1", volunteer_id
    )
    return status.endswith(" 1")


async def freshness_limits(conn: Conn) -> dict[UUID, int]:
    """Each agency's position freshness limit in seconds."""
    rows = await conn.fetch("SELECT id, position_max_age_s FROM agencies")
    return {r["id"]: r["position_max_age_s"] for r in rows}


async def purge_stale_positions(conn: Conn, now: datetime) -> int:
    """Delete positions older than their agency's freshness limit (privacy: no old whereabouts)."""
    status: str = await conn.execute(
        """
        DELETE FROM volunteer_positions p USING agencies a
        WHERE p.agency_id = a.id
          AND p.reported_at < $1::timestamptz - a.position_max_age_s * interval '1 second'
        """,
        now,
    )
    return int(status.rsplit(" ", 1)[-1])


async def purge_off_duty_positions(conn: Conn) -> int:
    """Positions of volunteers off duty (a fix written just as they went off duty)."""
    status: str = await conn.execute(
        """
        DELETE FROM volunteer_positions p USING volunteers v
        WHERE v.id = p.volunteer_id AND NOT v.on_duty
        """
    )
    return int(status.rsplit(" ", 1)[-1])


async def profiles(
    conn: Conn, agency_id: UUID, volunteer_ids: Sequence[int], *, incident_id: UUID, now: datetime
) -> dict[int, VolunteerProfile]:
    """Eligibility facts for candidates, in one query: profile, busy elsewhere, alerts in 24 h."""
    rows = await conn.fetch(
        """
        SELECT v.id, v.tier, v.verified AND v.available AS verified, v.certified_until,
               v.on_duty, v.quiet_from, v.quiet_until, v.time_zone, v.daily_budget, v.is_tester,
               v.tier_requested, v.professional_until,
               EXISTS (
                   SELECT 1 FROM alerts a JOIN incidents i ON i.id = a.incident_id
                   WHERE a.volunteer_id = v.id AND a.incident_id <> $3
                     AND a.state IN ('accepted', 'en_route', 'on_scene') AND i.status = 'active'
               ) AS busy,
               (SELECT count(*) FROM alerts a
                WHERE a.volunteer_id = v.id AND a.role <> 'test'
                  AND a.created_at > $4::timestamptz - interval '24 hours') AS alerts_today
        FROM volunteers v WHERE v.agency_id = $1 AND v.id = ANY($2::bigint[])
        """,
        agency_id,
        list(volunteer_ids),
        incident_id,
        now,
    )
    return {
        r["id"]: VolunteerProfile(
            volunteer_id=r["id"],
            tier=Tier(r["tier"]),
            verified=r["verified"],
            certified_until=r["certified_until"],
            on_duty=r["on_duty"],
            quiet_from=r["quiet_from"],
            quiet_until=r["quiet_until"],
            time_zone=r["time_zone"],
            daily_budget=r["daily_budget"],
            alerts_today=r["alerts_today"],
            is_tester=r["is_tester"],
            busy=r["busy"],
            tier_requested=Tier(r["tier_requested"]) if r["tier_requested"] else None,
            professional_until=r["professional_until"],
        )
        for r in rows
    }


async def position_of(conn: Conn, volunteer_id: int) -> PositionRow | None:
    r = await conn.fetchrow(
        "SELECT volunteer_id, agency_id, lat, lon, accuracy_m, reported_at"
        " FROM volunteer_positions WHERE volunteer_id = $1",
        volunteer_id,
    )
    if r is None:
        return None
    return PositionRow(
        r["volunteer_id"], r["agency_id"], r["lat"], r["lon"], r["accuracy_m"], r["reported_at"]
    )
