"""Agencies, their integration keys and supervisors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from cad_adapters.call_types import DEFAULT_CARDIAC_ARREST_CODES, CallTypeRules
from dispatch.db.types import Conn
from dispatch.domain.agency_settings import FIELDS as SETTINGS_FIELDS
from dispatch.domain.models import AgencyPolicy, PlaceRules
from dispatch.domain.policy import AlertPolicy, policy_from_json
from dispatch.secrets import TokenKind, hash_token, new_token, token_matches


def call_type_rules(stored: Mapping[str, Any]) -> CallTypeRules:
    """The shipped defaults extended by an agency's stored rules (see migration 0002)."""
    return CallTypeRules(
        codes=DEFAULT_CARDIAC_ARREST_CODES | frozenset(stored.get("codes", ())),
        patterns=tuple(stored.get("patterns", ())),
        text_patterns=tuple(stored.get("text_patterns", ())),
        excluded_codes=frozenset(stored.get("excluded_codes", ())),
        excluded_patterns=tuple(stored.get("excluded_patterns", ())),
        mpds=bool(stored.get("mpds", True)),
    )


# The newest stored alert policy of agency ``a`` (NULLs when the agency has none yet).
_LATEST_POLICY = """
    (SELECT p.policy FROM alert_policies p WHERE p.agency_id = a.id
     ORDER BY p.version DESC LIMIT 1) AS alert_policy,
    (SELECT max(p.version) FROM alert_policies p WHERE p.agency_id = a.id) AS alert_policy_version,
    EXISTS (SELECT 1 FROM aeds WHERE aeds.agency_id = a.id AND aeds.active) AS has_aeds
"""


def _policy(row: asyncpg.Record) -> AgencyPolicy:
    places = row["place_rules"]
    return AgencyPolicy(
        agency_id=row["id"],
        position_max_age_s=row["position_max_age_s"],
        alert_ttl_s=row["alert_ttl_s"],
        time_zone=row["time_zone"],
        call_types=call_type_rules(row["call_type_rules"]),
        places=PlaceRules(
            residential=frozenset(places.get("residential", ())),
            public=frozenset(places.get("public", ())),
        ),
        require_signature=row["require_signature"],
        intake_rate_per_min=row["intake_rate_per_min"],
        max_incident_age_s=row["max_incident_age_s"],
        max_clock_skew_s=row["max_clock_skew_s"],
        max_location_uncertainty_m=row["max_location_uncertainty_m"],
        cap_signing_cert=row["cap_signing_cert"],
        has_aeds=row["has_aeds"],
        push_ack_timeout_s=row["push_ack_timeout_s"],
        next_channel_after_s=row["answer_timeout_s"],
        stored_alert_policy=(
            policy_from_json(row["alert_policy"], version=row["alert_policy_version"])
            if row["alert_policy"] is not None
            else None
        ),
    )


async def create_agency(
    conn: Conn, *, name: str, first_policy: AlertPolicy | None = None
) -> tuple[UUID, str]:
    """Create an agency with one integration key and its first alert policy (version 1);
    returns (agency id, key), the key unstored."""
    agency_id = uuid4()
    key = new_token(TokenKind.AGENCY_KEY)
    async with conn.transaction():
        # alert_radius_m and alert_limit are no longer read (the policy is): left to their
        # defaults until a later migration drops them.
        await conn.execute("INSERT INTO agencies (id, name) VALUES ($1, $2)", agency_id, name)
        await conn.execute(
            "INSERT INTO agency_keys (agency_id, key_hash, label) VALUES ($1, $2, 'initial')",
            agency_id,
            hash_token(key),
        )
        # As text: callers' connections need not have the JSON codec installed.
        await conn.execute(
            "INSERT INTO alert_policies (agency_id, version, policy)"
            " VALUES ($1, 1, $2::text::jsonb)",
            agency_id,
            json.dumps((first_policy or AlertPolicy()).to_json()),
        )
    return agency_id, key


async def policy(conn: Conn, agency_id: UUID) -> AgencyPolicy | None:
    row = await conn.fetchrow(
        f"SELECT a.*, {_LATEST_POLICY} FROM agencies a WHERE a.id = $1",  # noqa: S608 - constant
        agency_id,
    )
    return _policy(row) if row else None


@dataclass(frozen=True, slots=True)
class AgencyAuth:
    policy: AgencyPolicy
    key_hash: bytes
    """The matched key's hash: also the HMAC key for body signatures."""


MAX_LIVE_KEYS = 2
"""Two keys valid at once: the old one keeps working while the CAD switches to the new."""


class TooManyKeys(Exception):
    pass


async def authenticate_key(conn: Conn, agency_id: UUID, presented: str) -> AgencyAuth | None:
    """The agency's policy and matched key when ``presented`` is a live key, else None.

    Found by the key's hash (a unique index), so a wrong key costs one index probe
    and no policy work; the final comparison is constant-time.
    """
    row = await conn.fetchrow(
        f"""
        SELECT k.key_hash, a.*, {_LATEST_POLICY}
        FROM agency_keys k JOIN agencies a ON a.id = k.agency_id
        WHERE k.key_hash = $1 AND k.agency_id = $2 AND k.revoked_at IS NULL
        """,  # noqa: S608 - the interpolated part is a constant
        hash_token(presented),
        agency_id,
    )
    if row is None or not token_matches(presented, row["key_hash"]):
        return None
    return AgencyAuth(_policy(row), bytes(row["key_hash"]))


async def id_by_name(conn: Conn, name: str) -> UUID | None:
    found: UUID | None = await conn.fetchval("SELECT id FROM agencies WHERE name = $1", name)
    return found


async def exists(conn: Conn, agency_id: UUID) -> bool:
    return await conn.fetchval("SELECT 1 FROM agencies WHERE id = $1", agency_id) is not None


async def time_zone(conn: Conn, agency_id: UUID) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT time_zone FROM agencies WHERE id = $1", agency_id
    )
    return found


async def add_demo_key(conn: Conn, agency_id: UUID) -> str:
    """A fresh key for the demo agency, outside the live-key limit (the demo restarts often)."""
    key = new_token(TokenKind.AGENCY_KEY)
    await conn.execute(
        "INSERT INTO agency_keys (agency_id, key_hash, label) VALUES ($1, $2, 'demo')",
        agency_id,
        hash_token(key),
    )
    return key


async def add_key(
    conn: Conn, agency_id: UUID, *, label: str | None, now: datetime
) -> tuple[int, str]:
    """A new integration key (shown once); refused while two keys are live."""
    key = new_token(TokenKind.AGENCY_KEY)
    async with conn.transaction():
        # Lock the agency so two concurrent additions cannot both pass the count.
        found = await conn.fetchval(
            "SELECT id FROM agencies WHERE id = $1 FOR NO KEY UPDATE", agency_id
        )
        if found is None:
            raise LookupError(f"no agency {agency_id}")
        live = await conn.fetchval(
            "SELECT count(*) FROM agency_keys WHERE agency_id = $1 AND revoked_at IS NULL",
            agency_id,
        )
        if live >= MAX_LIVE_KEYS:
            raise TooManyKeys(f"{live} keys are live; revoke one before adding another")
        key_id: int = await conn.fetchval(
            "INSERT INTO agency_keys (agency_id, key_hash, label, created_at)"
            " VALUES ($1, $2, $3, $4) RETURNING id",
            agency_id,
            hash_token(key),
            label,
            now,
        )
    return key_id, key


async def revoke_key(conn: Conn, agency_id: UUID, key_id: int, *, now: datetime) -> bool:
    status: str = await conn.execute(
        "UPDATE agency_keys SET revoked_at = $3"
        " WHERE agency_id = $1 AND id = $2 AND revoked_at IS NULL",
        agency_id,
        key_id,
        now,
    )
    return status.endswith(" 1")


async def list_keys(conn: Conn, agency_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, label, created_at, revoked_at FROM agency_keys"
        " WHERE agency_id = $1 ORDER BY id",
        agency_id,
    )
    return [dict(r) for r in rows]


async def create_supervisor(conn: Conn, *, agency_id: UUID, name: str) -> tuple[int, str]:
    token = new_token(TokenKind.SUPERVISOR)
    supervisor_id: int = await conn.fetchval(
        "INSERT INTO supervisors (agency_id, name, token_hash) VALUES ($1, $2, $3) RETURNING id",
        agency_id,
        name,
        hash_token(token),
    )
    return supervisor_id, token


async def supervisor_agency(conn: Conn, presented: str) -> UUID | None:
    """The agency of the supervisor holding ``presented``, or None."""
    row = await conn.fetchrow(
        "SELECT agency_id, token_hash FROM supervisors WHERE token_hash = $1", hash_token(presented)
    )
    if row is None or not token_matches(presented, row["token_hash"]):
        return None
    agency: UUID = row["agency_id"]
    return agency


async def supervisor_identity(conn: Conn, presented: str) -> tuple[int, UUID] | None:
    """(supervisor id, agency id) of the supervisor holding ``presented``, or None."""
    row = await conn.fetchrow(
        "SELECT id, agency_id, token_hash FROM supervisors WHERE token_hash = $1",
        hash_token(presented),
    )
    if row is None or not token_matches(presented, row["token_hash"]):
        return None
    return row["id"], row["agency_id"]


async def key_agency(conn: Conn, presented: str) -> UUID | None:
    """The agency of a live integration key, or None (unknown or revoked).

    Looked up by the key's SHA-256, like volunteer and supervisor tokens: a 256-bit random
    key cannot be approached by timing the lookup; the final comparison is constant-time.
    """
    row = await conn.fetchrow(
        "SELECT agency_id, key_hash FROM agency_keys WHERE key_hash = $1 AND revoked_at IS NULL",
        hash_token(presented),
    )
    if row is None or not token_matches(presented, row["key_hash"]):
        return None
    agency: UUID = row["agency_id"]
    return agency


async def settings(conn: Conn, agency_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM agencies WHERE id = $1", agency_id)
    if row is None:
        return None
    return {"agency_id": str(row["id"]), "name": row["name"]} | {c: row[c] for c in SETTINGS_FIELDS}


async def map_tile_url(conn: Conn, agency_id: UUID) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT map_tile_url FROM agencies WHERE id = $1", agency_id
    )
    return found


async def update_settings(conn: Conn, agency_id: UUID, changes: Mapping[str, Any]) -> None:
    """Apply validated changes (see ``dispatch.domain.agency_settings``)."""
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValueError(f"not settable: {sorted(unknown)}")
    # Column names come from the fixed tuple above, never from input.
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(changes, start=2))
    await conn.execute(
        f"UPDATE agencies SET {assignments} WHERE id = $1",  # noqa: S608
        agency_id,
        *changes.values(),
    )


async def store_alert_policy(conn: Conn, agency_id: UUID, policy: AlertPolicy) -> int:
    """Save a new version of the agency's alert policy; running incidents keep theirs."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM agencies WHERE id = $1 FOR NO KEY UPDATE", agency_id)
        version: int = await conn.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM alert_policies WHERE agency_id = $1",
            agency_id,
        )
        await conn.execute(
            "INSERT INTO alert_policies (agency_id, version, policy) VALUES ($1, $2, $3)",
            agency_id,
            version,
            policy.to_json(),
        )
    return version


async def alert_policy_version(conn: Conn, agency_id: UUID, version: int) -> AlertPolicy | None:
    stored = await conn.fetchval(
        "SELECT policy FROM alert_policies WHERE agency_id = $1 AND version = $2",
        agency_id,
        version,
    )
    return policy_from_json(stored, version=version) if stored is not None else None
