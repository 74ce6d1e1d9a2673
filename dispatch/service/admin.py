"""Agency administration: one function per use case, called alike by the admin API and the CLI.

Each takes the decoded document as given, validates it (a ``FieldError`` naming the
field; nothing changed), changes the database in one transaction together with its audit
record, and tells the in-memory copies of this process what changed (:class:`Followers`).

The ``dispatch`` command runs in a process of its own, so it has no followers: a server
sees a CLI change to an agency (settings, policy, a revoked key) when its key cache entry
expires, at most ``AgencyAuthCache.ttl_s`` (2 s) later, and never serves it past that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.domain.agency_settings import (
    SettingsError,
    validate_delivery_settings,
    validate_settings,
)
from dispatch.domain.models import first_alert_policy
from dispatch.domain.policy import AlertPolicy, PolicyError, check_answer_windows, policy_from_json
from dispatch.domain.volunteer_settings import (
    IDENTITY_FIELDS,
    validate_identity,
    validate_volunteer_settings,
)
from dispatch.service.auth_cache import AgencyAuthCache
from dispatch.service.positions import PositionCache, PositionWriter
from dispatch.store import agencies as agency_store
from dispatch.store import audit
from dispatch.store import delivery as delivery_store
from dispatch.store import volunteers as volunteer_store
from dispatch.store.audit import Actor


class NotFound(LookupError):
    """The agency, volunteer or key named does not exist (in this agency)."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(detail)
        self.what = what

    @classmethod
    def agency(cls, agency_id: UUID) -> NotFound:
        return cls("agency", f"no agency {agency_id}")


@dataclass(frozen=True, slots=True)
class Followers:
    """What this process holds in memory that an admin change must reach at once."""

    auth_cache: AgencyAuthCache | None = None
    positions: PositionCache | None = None
    writer: PositionWriter | None = None

    def agency_changed(self, agency_id: UUID) -> None:
        if self.auth_cache is not None:
            self.auth_cache.forget(agency_id)


NO_FOLLOWERS: Final = Followers()
"""The CLI's: another process; see the module docstring for how long a server lags."""


async def _audit(
    conn: Conn,
    action: str,
    target: tuple[str, object],
    *,
    agency_id: UUID,
    actor: Actor,
    now: datetime,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """The use case's audit entry, in its transaction (``target``: type and id)."""
    await audit.record(
        conn,
        agency_id=agency_id,
        actor=actor,
        action=action,
        target_type=target[0],
        target_id=target[1],
        at=now,
        before=before,
        after=after,
    )


def _delivery_view(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The delivery windows under their API names (the column keeps its first name)."""
    return {
        "push_ack_timeout_s": stored["push_ack_timeout_s"],
        "next_channel_after_s": stored["answer_timeout_s"],
        "critical_alerts": stored["critical_alerts"],
    }


def policy_view(policy: AlertPolicy) -> dict[str, Any]:
    return {"version": policy.version, **policy.to_json()}


async def create_agency(
    conn: Conn, *, name: str, radius_m: float | None = None, limit: int | None = None
) -> tuple[UUID, str]:
    """A new agency with its key and first alert policy: radius and count go there only."""
    first = first_alert_policy(
        500.0 if radius_m is None else radius_m, 7 if limit is None else limit
    )
    return await agency_store.create_agency(conn, name=name, first_policy=first)


async def change_settings(
    conn: Conn,
    agency_id: UUID,
    document: Any,
    *,
    actor: Actor,
    now: datetime,
    followers: Followers,
) -> dict[str, Any]:
    """Change alerting parameters and intake rules; unnamed settings stay as they are."""
    changes = validate_settings(document)
    async with conn.transaction():
        before = await agency_store.settings(conn, agency_id)
        if before is None:
            raise NotFound.agency(agency_id)
        await agency_store.update_settings(conn, agency_id, changes)
        current = await agency_store.settings(conn, agency_id)
        assert current is not None
        await _audit(
            conn,
            "settings_changed",
            ("agency", agency_id),
            agency_id=agency_id,
            actor=actor,
            now=now,
            before={k: before[k] for k in changes},
            after={k: current[k] for k in changes},
        )
    followers.agency_changed(agency_id)
    return current


async def change_delivery_settings(
    conn: Conn, agency_id: UUID, document: Any, *, actor: Actor, now: datetime
) -> dict[str, Any]:
    """Change the delivery chain's windows; refused when the policy would give up first."""
    changes = validate_delivery_settings(document)
    async with conn.transaction():
        before = await delivery_store.agency_windows(conn, agency_id)
        agency = await agency_store.policy(conn, agency_id)
        if before is None or agency is None:
            raise NotFound.agency(agency_id)
        ack = changes.get("push_ack_timeout_s", before["push_ack_timeout_s"])
        after_text = changes.get("next_channel_after_s", before["answer_timeout_s"])
        reason = check_answer_windows(
            not_coming_after_s=agency.alert_policy.not_coming_after_s,
            push_ack_timeout_s=ack,
            next_channel_after_s=after_text,
        )
        if reason is not None:
            blame = (
                "next_channel_after_s"
                if "next_channel_after_s" in changes
                else "push_ack_timeout_s"
            )
            raise SettingsError(f"/{blame}", reason)
        stored = await delivery_store.set_agency_windows(
            conn,
            agency_id,
            push_ack_timeout_s=changes.get("push_ack_timeout_s"),
            answer_timeout_s=changes.get("next_channel_after_s"),
            critical_alerts=changes.get("critical_alerts"),
        )
        assert stored is not None
        await _audit(
            conn,
            "delivery_settings_changed",
            ("agency", agency_id),
            agency_id=agency_id,
            actor=actor,
            now=now,
            before=_delivery_view(before),
            after=_delivery_view(stored),
        )
    return _delivery_view(stored)


async def current_policy(conn: Conn, agency_id: UUID) -> AlertPolicy:
    agency = await agency_store.policy(conn, agency_id)
    if agency is None:
        raise NotFound.agency(agency_id)
    return agency.alert_policy


async def store_policy(
    conn: Conn,
    agency_id: UUID,
    document: Any,
    *,
    actor: Actor,
    now: datetime,
    followers: Followers,
) -> AlertPolicy:
    """A new version of the agency's alert policy (running incidents keep theirs)."""
    policy = policy_from_json(document)
    async with conn.transaction():
        windows = await delivery_store.agency_windows(conn, agency_id)
        previous = await agency_store.policy(conn, agency_id)
        if windows is None or previous is None:
            raise NotFound.agency(agency_id)
        reason = check_answer_windows(
            not_coming_after_s=policy.not_coming_after_s,
            push_ack_timeout_s=windows["push_ack_timeout_s"],
            next_channel_after_s=windows["answer_timeout_s"],
        )
        if reason is not None:
            raise PolicyError("/not_coming_after_s", reason)
        version = await agency_store.store_alert_policy(conn, agency_id, policy)
        stored = policy_from_json(policy.to_json(), version=version)
        await _audit(
            conn,
            "policy_changed",
            ("agency", agency_id),
            agency_id=agency_id,
            actor=actor,
            now=now,
            before=policy_view(previous.alert_policy),
            after=policy_view(stored),
        )
    followers.agency_changed(agency_id)
    return stored


async def create_volunteer(
    conn: Conn, agency_id: UUID, document: Any, *, actor: Actor, now: datetime
) -> tuple[int, str]:
    """Register a volunteer: (id, bearer token), the token unstored."""
    if not isinstance(document, Mapping):
        raise SettingsError("", "must be an object")
    identity = validate_identity(dict(document))
    settings = validate_volunteer_settings(
        {k: v for k, v in document.items() if k not in IDENTITY_FIELDS}
    )
    async with conn.transaction():
        if await agency_store.settings(conn, agency_id) is None:
            raise NotFound.agency(agency_id)
        volunteer_id, token = await volunteer_store.create_volunteer(
            conn,
            agency_id=agency_id,
            display_name=identity.display_name,
            phone_e164=identity.phone_e164,
            language=identity.language,
            settings=settings,
            now=now,
        )
        # Who the person is stays out of the append-only log: only that it was given.
        await _audit(
            conn,
            "volunteer_created",
            ("volunteer", volunteer_id),
            agency_id=agency_id,
            actor=actor,
            now=now,
            after={**settings, "phone_given": identity.phone_e164 is not None},
        )
        await _audit(
            conn,
            "volunteer_token_issued",
            ("volunteer", volunteer_id),
            agency_id=agency_id,
            actor=actor,
            now=now,
        )
    return volunteer_id, token


async def change_volunteer(
    conn: Conn,
    agency_id: UUID,
    volunteer_id: int,
    document: Any,
    *,
    actor: Actor,
    now: datetime,
    followers: Followers,
) -> dict[str, Any]:
    """Tier, certificate, duty, quiet hours, budget, tester, availability; others stay.

    Going off duty deletes the last position; this process's index follows at once.
    """
    changes = validate_volunteer_settings(document)
    if not changes:
        raise SettingsError("", "name at least one setting to change")
    async with conn.transaction():
        before = await volunteer_store.settings_of(conn, agency_id, volunteer_id)
        if before is None or not await volunteer_store.update_settings(
            conn, agency_id, volunteer_id, changes
        ):
            raise NotFound("volunteer", f"no volunteer {volunteer_id} in agency {agency_id}")
        found = await volunteer_store.settings_of(conn, agency_id, volunteer_id)
        assert found is not None
        if not found["on_duty"]:
            if followers.writer is not None:
                followers.writer.forget(volunteer_id)
            await volunteer_store.delete_position(conn, volunteer_id)
        position = await volunteer_store.position_of(conn, volunteer_id)
        await _audit(
            conn,
            "volunteer_changed",
            ("volunteer", volunteer_id),
            agency_id=agency_id,
            actor=actor,
            now=now,
            before={k: before[k] for k in changes},
            after={k: found[k] for k in changes},
        )
    # The index holds only volunteers who may be alerted: follow the change at once.
    if followers.positions is not None:
        if found["verified"] and found["available"] and position is not None:
            followers.positions.upsert(position)
        else:
            followers.positions.remove(volunteer_id)
    return found


async def add_key(
    conn: Conn, agency_id: UUID, *, label: str | None, actor: Actor, now: datetime
) -> tuple[int, str]:
    """A second live integration key for rotation (shown once); refused while two are live."""
    async with conn.transaction():
        key_id, key = await agency_store.add_key(conn, agency_id, label=label, now=now)
        await _audit(
            conn,
            "key_issued",
            ("agency_key", key_id),
            agency_id=agency_id,
            actor=actor,
            now=now,
            after={"label": label},
        )
    return key_id, key


async def revoke_key(
    conn: Conn, agency_id: UUID, key_id: int, *, actor: Actor, now: datetime, followers: Followers
) -> None:
    """Revoke a live key; this process stops accepting it at once (others: see above)."""
    async with conn.transaction():
        if not await agency_store.revoke_key(conn, agency_id, key_id, now=now):
            raise NotFound("key", f"no live key {key_id} for agency {agency_id}")
        await _audit(
            conn,
            "key_revoked",
            ("agency_key", key_id),
            agency_id=agency_id,
            actor=actor,
            now=now,
        )
    followers.agency_changed(agency_id)


async def create_supervisor(
    conn: Conn, agency_id: UUID, *, name: str, actor: Actor, now: datetime
) -> tuple[int, str]:
    async with conn.transaction():
        supervisor_id, token = await agency_store.create_supervisor(
            conn, agency_id=agency_id, name=name
        )
        await _audit(
            conn,
            "supervisor_token_issued",
            ("supervisor", supervisor_id),
            agency_id=agency_id,
            actor=actor,
            now=now,
        )
    return supervisor_id, token
