"""The VAPID key pair and volunteers' Web Push subscriptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from dispatch.db.types import Conn
from dispatch.store.push_addresses import AddressTable, HeldElsewhere, deactivate, previous_holder


@dataclass(frozen=True, slots=True)
class StoredVapidKey:
    private_key: bytes
    """PKCS#8 DER, encrypted when ``sealed``."""
    public_key: str
    sealed: bool


async def vapid_key(conn: Conn) -> StoredVapidKey | None:
    row = await conn.fetchrow("SELECT private_key, public_key, sealed FROM webpush_vapid_key")
    if row is None:
        return None
    return StoredVapidKey(bytes(row["private_key"]), row["public_key"], row["sealed"])


async def insert_vapid_key_once(
    conn: Conn, key: StoredVapidKey, *, now: datetime
) -> StoredVapidKey:
    """Store ``key`` unless a key is there already; returns the key that is stored.

    Two processes starting at once both offer a key: the first insert wins and the
    other process uses the winner's.
    """
    await conn.execute(
        """
        INSERT INTO webpush_vapid_key (id, private_key, public_key, sealed, created_at)
        VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING
        """,
        key.private_key,
        key.public_key,
        key.sealed,
        now,
    )
    stored = await vapid_key(conn)
    assert stored is not None
    return stored


async def seal_vapid_key(conn: Conn, sealed_private_key: bytes) -> None:
    """Replace the stored private key with its passphrase-encrypted form."""
    await conn.execute(
        "UPDATE webpush_vapid_key SET private_key = $1, sealed = true WHERE NOT sealed",
        sealed_private_key,
    )


class SubscriptionHeldElsewhere(HeldElsewhere):
    """The endpoint is registered to a volunteer of another agency."""


@dataclass(frozen=True, slots=True)
class SubscriptionRegistration:
    subscription_id: int
    moved_from: int | None
    """The volunteer (same agency) who held the subscription until now, if it moved."""


_SUBSCRIPTIONS = AddressTable(
    "webpush_subscriptions", "endpoint", 0x57505553, SubscriptionHeldElsewhere
)


async def register_subscription(
    conn: Conn,
    *,
    agency_id: UUID,
    volunteer_id: int,
    endpoint: str,
    p256dh: bytes,
    auth_secret: bytes,
    vapid_public_key: str,
    now: datetime,
    session_id: int | None = None,
) -> SubscriptionRegistration:
    """Add, refresh or re-activate a subscription; call inside a transaction.

    Like a push device: within an agency it follows whoever registers it last; one
    held in another agency is refused with :class:`SubscriptionHeldElsewhere`.
    """
    moved_from = await previous_holder(
        conn, _SUBSCRIPTIONS, endpoint, agency_id=agency_id, volunteer_id=volunteer_id
    )
    subscription_id: int = await conn.fetchval(
        """
        INSERT INTO webpush_subscriptions (agency_id, volunteer_id, session_id, endpoint, p256dh,
                                           auth_secret, vapid_public_key, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
        ON CONFLICT (endpoint) DO UPDATE
            SET volunteer_id = EXCLUDED.volunteer_id, session_id = EXCLUDED.session_id,
                p256dh = EXCLUDED.p256dh, auth_secret = EXCLUDED.auth_secret,
                vapid_public_key = EXCLUDED.vapid_public_key, active = true,
                deactivated_reason = NULL, updated_at = EXCLUDED.updated_at
        RETURNING id
        """,
        agency_id,
        volunteer_id,
        session_id,
        endpoint,
        p256dh,
        auth_secret,
        vapid_public_key,
        now,
    )
    return SubscriptionRegistration(subscription_id, moved_from)


async def deactivate_subscriptions(
    conn: Conn, subscription_ids: Sequence[int], *, reason: str, now: datetime
) -> list[tuple[int, int]]:
    """Deactivate subscriptions; ``(subscription_id, volunteer_id)`` of those that were active."""
    return await deactivate(conn, _SUBSCRIPTIONS, subscription_ids, reason=reason, now=now)


async def deactivate_for_sessions(conn: Conn, session_ids: Sequence[int], *, now: datetime) -> None:
    """Signed-out sessions take the subscriptions registered through them along."""
    await conn.execute(
        """
        UPDATE webpush_subscriptions SET active = false, deactivated_reason = 'session_revoked',
            updated_at = $2
        WHERE session_id = ANY($1::bigint[]) AND active
        """,
        list(session_ids),
        now,
    )
