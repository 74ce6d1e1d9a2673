"""Every process follows every other's position writes through the change feed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dispatch.config import Settings
from dispatch.db.pool import init_connection
from dispatch.service.position_follow import PositionFollower, load
from dispatch.service.positions import PositionCache
from dispatch.service.providers import SharedPacer
from dispatch.store import agencies as agency_store
from dispatch.store import position_changes as change_store
from dispatch.store import volunteers as volunteer_store
from dispatch.store.volunteers import PositionRow
from dispatch.web import app_keys as keys
from dispatch.web.app import create_app
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import new_volunteer, wait_until

pytestmark = pytest.mark.storage

Client = TestClient[web.Request, web.Application]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    async def holds() -> bool:
        return check()

    await wait_until(holds, timeout_s=timeout_s, what=what)


async def test_a_fix_reported_to_one_process_is_matched_by_the_other(
    settings: Settings, aiohttp_client: Any, agency: AgencyFixture
) -> None:
    a: Client = await aiohttp_client(create_app(settings))
    b: Client = await aiohttp_client(create_app(settings))
    cache_a, cache_b = a.app[keys.POSITIONS], b.app[keys.POSITIONS]
    volunteer_id, token = await new_volunteer(a, agency, "V")
    resp = await a.put(
        "/v1/me/location",
        json={"lat": 52.37, "lon": 4.89},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 204
    assert cache_a.position(volunteer_id) == (52.37, 4.89), "indexed at once where reported"
    await _eventually(lambda: cache_b.position(volunteer_id) is not None, "B follows A")
    hits = cache_b.nearest(
        agency.agency_id,
        52.3701,
        4.89,
        radius_m=100,
        limit=5,
        max_age_s=600,
        now=datetime.now(UTC),
        exclude=(),
    )
    assert [h.volunteer_id for h in hits] == [volunteer_id]
    metrics = await (await b.get("/metrics")).text()
    assert "dispatch_position_follow_lag_changes 0.0" in metrics
    assert "dispatch_outbox_oldest_due_seconds 0.0" in metrics, "nothing waits to be sent"

    # Made unavailable through B: A drops the volunteer (the position row stays, renumbered).
    resp = await b.patch(
        f"/v1/agencies/{agency.agency_id}/volunteers/{volunteer_id}",
        json={"available": False},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200, await resp.text()
    await _eventually(lambda: cache_a.position(volunteer_id) is None, "A drops the unavailable")
    resp = await b.patch(
        f"/v1/agencies/{agency.agency_id}/volunteers/{volunteer_id}",
        json={"available": True},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200
    await _eventually(lambda: cache_a.position(volunteer_id) is not None, "and takes them back")

    # Off duty through B: the position is deleted; A learns it from the tombstone.
    resp = await b.patch(
        f"/v1/agencies/{agency.agency_id}/volunteers/{volunteer_id}",
        json={"on_duty": False},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200
    await _eventually(lambda: cache_a.position(volunteer_id) is None, "A forgets the deleted")


async def _new_volunteer(db: asyncpg.Connection, agency_id: UUID) -> int:
    volunteer_id, _ = await volunteer_store.create_volunteer(
        db, agency_id=agency_id, display_name="v", settings={"verified": True, "available": True}
    )
    return volunteer_id


def _fix(volunteer_id: int, agency_id: UUID, lat: float, *, minutes: int = 0) -> PositionRow:
    return PositionRow(volunteer_id, agency_id, lat, 4.89, 5.0, NOW + timedelta(minutes=minutes))


async def _pool(database_url: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3, init=init_connection)
    assert pool is not None
    return pool


async def test_a_write_committed_late_is_not_skipped_by_one_committed_early(
    database_url: str, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """The change number is drawn under a lock held to commit, so numbers appear in order."""
    first = await _new_volunteer(db, agency.agency_id)
    second = await _new_volunteer(db, agency.agency_id)
    pool = await _pool(database_url)
    slow = await asyncpg.connect(database_url)
    try:
        upto, cache = await load(pool)
        follower = PositionFollower(pool, cache, after=upto)
        slow_tx = slow.transaction()
        await slow_tx.start()
        await volunteer_store.upsert_positions(slow, [_fix(first, agency.agency_id, 52.0)])

        async def quick() -> None:
            async with pool.acquire() as conn:
                await volunteer_store.upsert_positions(conn, [_fix(second, agency.agency_id, 52.1)])

        quick_write = asyncio.create_task(quick())

        def waiting() -> bool:
            return not quick_write.done()

        # The quick writer waits on the change lock until the slow one commits.
        await wait_until(
            lambda: db.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ),
            what="the quick writer waiting on the change lock",
        )
        assert waiting()
        assert await follower.catch_up() == 0
        await slow_tx.commit()
        await quick_write
        assert await follower.catch_up() == 2
        assert cache.position(first) == (52.0, 4.89)
        assert cache.position(second) == (52.1, 4.89)
    finally:
        await slow.close()
        await pool.close()


async def test_a_late_starter_catches_up_and_one_behind_the_tombstones_rebuilds(
    database_url: str, db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    ids = [await _new_volunteer(db, agency.agency_id) for _ in range(4)]
    await volunteer_store.upsert_positions(
        db, [_fix(v, agency.agency_id, 52.0 + n / 100) for n, v in enumerate(ids)]
    )
    pool = await _pool(database_url)
    try:
        upto, cache = await load(pool)
        assert len(cache) == 4, "a process started late loads everything written so far"
        follower = PositionFollower(pool, cache, after=upto, batch=2)
        # A newer fix, an older one (never overwrites), a deletion, an unverified volunteer.
        await volunteer_store.upsert_positions(
            db,
            [
                _fix(ids[0], agency.agency_id, 53.0, minutes=1),
                _fix(ids[1], agency.agency_id, 51.0, minutes=-1),
            ],
        )
        await volunteer_store.delete_position(db, ids[2])
        await db.execute("UPDATE volunteers SET verified = false WHERE id = $1", ids[3])
        assert await follower.catch_up() == 3, "in batches of two; the older fix wrote nothing"
        assert cache.position(ids[0]) == (53.0, 4.89)
        assert cache.position(ids[1]) == (52.01, 4.89)
        assert cache.position(ids[2]) is None
        assert cache.position(ids[3]) is None
        assert await follower.catch_up() == 0

        # A second follower stopped before the deletion, then the tombstones were pruned.
        behind = PositionFollower(pool, PositionCache(), after=upto)
        assert await change_store.prune_tombstones(db, timedelta(hours=1)) == 0, "all recent"
        assert await change_store.prune_tombstones(db, timedelta(0)) == 1
        assert await follower.catch_up() == 0
        assert follower.rebuilds == 0, "one that saw the deletion trusts the feed on"
        assert await behind.catch_up() == 0
        assert behind.rebuilds == 1
        rebuilt = behind._cache
        assert {v: rebuilt.position(v) for v in ids} == {v: cache.position(v) for v in ids}
        await volunteer_store.upsert_positions(db, [_fix(ids[2], agency.agency_id, 50.0)])
        assert await behind.catch_up() == 1, "and follows on from the rebuild"
        assert rebuilt.position(ids[2]) == (50.0, 4.89)
    finally:
        await pool.close()


async def test_a_key_revoked_elsewhere_stops_working_here_at_once(
    settings: Settings, aiohttp_client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    client: Client = await aiohttp_client(create_app(settings))
    invalidations = client.app[keys.INVALIDATIONS]
    cache = client.app[keys.AUTH_CACHE]
    await _eventually(lambda: invalidations.received > 0, "the listener connected")
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents",
        json={"bogus": True},
        headers=agency.auth,
    )
    assert resp.status == 422, await resp.text()
    assert cache.get(agency.agency_id, agency.key) is not None, "the key check is cached"
    seen = invalidations.received
    key_id = await db.fetchval("SELECT id FROM agency_keys WHERE agency_id = $1", agency.agency_id)
    assert await agency_store.revoke_key(db, agency.agency_id, key_id, now=NOW)
    await _eventually(lambda: invalidations.received > seen, "the revocation was announced")
    assert cache.get(agency.agency_id, agency.key) is None
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents",
        json={"bogus": True},
        headers=agency.auth,
    )
    assert resp.status == 401


async def test_sends_from_one_number_are_spaced_across_processes(
    database_url: str, db: asyncpg.Connection
) -> None:
    """Two processes' pacers share the number's slots: each reservation takes the next one."""
    pools = [await _pool(database_url), await _pool(database_url)]
    try:
        pacers = [SharedPacer(pool, "sms:+15550001111", rate_per_s=1.0) for pool in pools]
        slots = []
        for n in range(3):
            wait = await pacers[n % 2].reserve(max_wait_s=2.5)
            assert wait is not None
            slots.append(
                await db.fetchval(
                    "SELECT next_slot FROM sender_pacing WHERE sender = 'sms:+15550001111'"
                )
            )
        # Taken within a second of each other, the slots are exactly one interval apart.
        assert [(b - a).total_seconds() for a, b in itertools.pairwise(slots)] == [
            1.0,
            1.0,
        ]
        assert await pacers[1].reserve(max_wait_s=2.5) is None, "the fourth is too far off"
        assert await db.fetchval("SELECT next_slot FROM sender_pacing") == slots[-1]
        other = await SharedPacer(pools[0], "voice:+15550001111", rate_per_s=1.0).reserve(1.0)
        assert other == 0.0, "each sender has its own slots"
    finally:
        for pool in pools:
            await pool.close()
