"""The installation's VAPID key, and volunteers' Web Push subscriptions.

The key pair is made at first start and kept in the database, so every process
of an installation signs with the same key and a restart does not cut off the
browsers that subscribed with it. With ``DISPATCH_WEBPUSH_KEY_PASSPHRASE`` set the
private key is stored PKCS#8-encrypted (a database dump alone cannot sign for
us), and a key stored before the passphrase was set is sealed at the next start; a
key stored sealed cannot be opened without the passphrase, and start-up fails
saying so.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from cryptography.hazmat.primitives.asymmetric import ec

from dispatch.store import volunteer_events
from dispatch.store import webpush as webpush_store
from dispatch.store.volunteer_events import VolunteerEvent
from dispatch.store.volunteers import VolunteerIdentity
from dispatch.store.webpush import StoredVapidKey, SubscriptionHeldElsewhere
from notify.webpush import (
    Subscription,
    dump_private_key,
    generate_vapid_key,
    load_private_key,
    public_key_b64,
)

__all__ = ["SubscriptionHeldElsewhere", "load_or_create_key", "register_subscription"]


async def load_or_create_key(
    pool: asyncpg.Pool, *, passphrase: str | None, now: datetime
) -> ec.EllipticCurvePrivateKey:
    """The stored key, or a new one stored now (the first process to start wins)."""
    secret = passphrase.encode() if passphrase else None
    async with pool.acquire() as conn:
        stored = await webpush_store.vapid_key(conn)
        if stored is None:
            fresh = generate_vapid_key()
            stored = await webpush_store.insert_vapid_key_once(
                conn,
                StoredVapidKey(
                    dump_private_key(fresh, secret), public_key_b64(fresh), secret is not None
                ),
                now=now,
            )
        key = load_private_key(stored.private_key, secret if stored.sealed else None)
        if secret is not None and not stored.sealed:
            # A passphrase set after the key was made: seal the stored key now.
            await webpush_store.seal_vapid_key(conn, dump_private_key(key, secret))
    return key


async def register_subscription(
    pool: asyncpg.Pool,
    volunteer: VolunteerIdentity,
    subscription: Subscription,
    *,
    vapid_public_key: str,
    now: datetime,
) -> int:
    """The subscription's id. Raises SubscriptionHeldElsewhere for another agency's endpoint."""
    async with pool.acquire() as conn, conn.transaction():
        done = await webpush_store.register_subscription(
            conn,
            agency_id=volunteer.agency_id,
            volunteer_id=volunteer.volunteer_id,
            endpoint=subscription.endpoint,
            p256dh=subscription.p256dh,
            auth_secret=subscription.auth,
            vapid_public_key=vapid_public_key,
            now=now,
            session_id=volunteer.session_id,
        )
        events = [
            VolunteerEvent(
                volunteer.agency_id,
                volunteer.volunteer_id,
                "web_push_subscribed",
                now,
                {"subscription_id": done.subscription_id},
            )
        ]
        if done.moved_from is not None:
            events.append(
                VolunteerEvent(
                    volunteer.agency_id,
                    done.moved_from,
                    "web_push_moved_away",
                    now,
                    {
                        "subscription_id": done.subscription_id,
                        "to_volunteer_id": volunteer.volunteer_id,
                    },
                )
            )
        await volunteer_events.append(conn, events)
    return done.subscription_id
