"""The response log partitioned by month (migration 0019) and its upkeep by housekeeping."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from dispatch.config import ConfigError, Settings, load_settings
from dispatch.db.migrate import shipped_migrations
from dispatch.db.pool import init_connection
from dispatch.domain import log_months
from dispatch.store import agencies
from dispatch.store import response_log as log_store
from dispatch.workers.housekeeping import keep_log_months
from tests.dispatch import pg
from tests.dispatch.review_helpers import Responder, Seeded, seed, volunteer

_ROWS = "SELECT * FROM response_log ORDER BY id"
_SUMMARIES = (
    "SELECT * FROM incident_review ORDER BY incident_id",
    "SELECT * FROM alert_firsts ORDER BY alert_id, event",
)
_WHERE = "SELECT tableoid::regclass::text FROM response_log WHERE incident_id = $1 GROUP BY 1"


def _answering(volunteer_id: int) -> Seeded:
    return Seeded(
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        responders=[Responder(volunteer_id, accept_s=20, on_scene_s=200)],
    )


async def _seed_at(
    db: asyncpg.Connection, agency_id: UUID, volunteer_id: int, at: datetime
) -> UUID:
    spec = _answering(volunteer_id)
    spec.received_at = at
    return await seed(db, agency_id, spec)


async def _snapshot(db: asyncpg.Connection) -> list[list[dict[str, Any]]]:
    return [[dict(r) for r in await db.fetch(q)] for q in (_ROWS, *_SUMMARIES)]


@pytest.fixture
async def before_0019(admin_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A database migrated up to, not including, 0019."""
    name = f"dispatch_p_{secrets.token_hex(6)}"
    await pg._admin(admin_dsn, f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(pg.with_database(admin_dsn, name))
    try:
        await init_connection(conn)
        for migration in shipped_migrations():
            if migration.version < 19:
                await conn.execute(migration.sql)
        yield conn
    finally:
        await conn.close()
        await pg.drop_test_database(admin_dsn, name)


def _m0019() -> str:
    (migration,) = [m for m in shipped_migrations() if m.version == 19]
    return migration.sql


async def test_migration_keeps_the_log_its_ids_and_the_review_tables(
    before_0019: asyncpg.Connection,
) -> None:
    db = before_0019
    agency_id, _ = await agencies.create_agency(db, name="Before")
    v = await volunteer(db, agency_id)
    now = datetime.now(UTC)
    stamps = [now - timedelta(days=400), now - timedelta(days=35), now, now + timedelta(days=45)]
    for at in stamps:
        await _seed_at(db, agency_id, v, at)
    before = await _snapshot(db)
    assert before[1]
    assert before[2]

    await db.execute(_m0019())

    assert (
        await db.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'response_log'")
        == "p"
    )
    assert await _snapshot(db) == before
    # The row stamped past the bound left the old table for its own month.
    ahead = log_months.month_of(stamps[-1])
    assert await db.fetchval(f'SELECT count(*) FROM "{ahead.name}"') == len(
        [r for r in before[0] if r["at"] >= ahead.start]
    )
    # Later rows go through the trigger on the parent and ids keep increasing.
    newest = max(r["id"] for r in before[0])
    incident = await _seed_at(db, agency_id, v, now)
    assert (
        await db.fetchval("SELECT min(id) FROM response_log WHERE incident_id = $1", incident)
        > newest
    )
    review = await db.fetchrow("SELECT * FROM incident_review WHERE incident_id = $1", incident)
    assert review is not None
    assert (review["alerts_sent"], review["alerts_accepted"], review["alerts_on_scene"]) == (
        1,
        1,
        1,
    )


async def test_the_old_releases_writes_wait_for_the_migration_and_then_land(
    before_0019: asyncpg.Connection, admin_dsn: str
) -> None:
    """A statement of the previous release, prepared against the old table, issued while
    the migration runs, waits for it and then lands in the partitioned table."""
    db = before_0019
    agency_id, _ = await agencies.create_agency(db, name="Rolling")
    v = await volunteer(db, agency_id)
    incident = await _seed_at(db, agency_id, v, datetime.now(UTC))
    old = await asyncpg.connect(
        pg.with_database(admin_dsn, await db.fetchval("SELECT current_database()"))
    )
    try:
        insert = await old.prepare(
            "INSERT INTO response_log (agency_id, incident_id, event, at)"
            " VALUES ($1, $2, 'note', now())"
        )
        await insert.fetch(agency_id, incident)
        async with db.transaction():
            await db.execute(_m0019())
            # Issued while the migration holds the log: it waits, then finds the new table.
            waiting = asyncio.create_task(insert.fetch(agency_id, incident))
            await _until_waiting_on_a_lock(db, old.get_server_pid())
            assert not waiting.done()
        await asyncio.wait_for(waiting, 10)
    finally:
        await old.close()
    assert (
        await db.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'response_log'")
        == "p"
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM response_log WHERE incident_id = $1 AND event = 'note'", incident
        )
        == 2
    )


async def _until_waiting_on_a_lock(db: asyncpg.Connection, pid: int) -> None:
    for _ in range(200):
        if await db.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the old release's insert never waited for the migration")


async def test_inserts_land_in_past_current_future_and_unplanned_months(
    db: asyncpg.Connection,
) -> None:
    agency_id, _ = await agencies.create_agency(db, name="Months")
    v = await volunteer(db, agency_id)
    now = datetime.now(UTC)
    landing = {
        await _seed_at(db, agency_id, v, at): expected
        for at, expected in (
            (now - timedelta(days=800), "response_log_legacy"),
            (
                log_months.month_of(now).end + timedelta(days=3),
                log_months.month_of(log_months.month_of(now).end).name,
            ),
            (datetime(2090, 6, 1, tzinfo=UTC), "response_log_default"),
        )
    }
    for incident, expected in landing.items():
        assert [r[0] for r in await db.fetch(_WHERE, incident)] == [expected]
    assert (
        await db.fetchval(
            "SELECT count(*) FROM incident_review WHERE incident_id = ANY($1::uuid[])",
            list(landing),
        )
        == 3
    )


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2, init=init_connection) as p:
        yield p


async def _names(db: asyncpg.Connection) -> set[str]:
    return {p.name for p in await log_store.partitions(db)}


async def test_the_job_makes_months_ahead_and_moves_their_rows_out_of_the_default(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    agency_id, _ = await agencies.create_agency(db, name="Ahead")
    v = await volunteer(db, agency_id)
    now = datetime(2090, 3, 15, tzinfo=UTC)
    early = await _seed_at(db, agency_id, v, datetime(2090, 4, 20, tzinfo=UTC))
    later = await _seed_at(db, agency_id, v, datetime(2091, 1, 5, tzinfo=UTC))
    summaries = [[dict(r) for r in await db.fetch(q)] for q in _SUMMARIES]
    rows = await db.fetch(_ROWS)

    done = await keep_log_months(pool, now, 0)

    wanted = {m.name for m in log_months.months_needed(now)}
    assert wanted <= await _names(db)
    assert done["log_months_created"] == len(wanted)
    assert done["log_rows_moved"] == len(
        await db.fetch("SELECT 1 FROM response_log WHERE incident_id = $1", early)
    )
    assert [r[0] for r in await db.fetch(_WHERE, early)] == ["response_log_2090_04"]
    assert [r[0] for r in await db.fetch(_WHERE, later)] == ["response_log_default"]
    # Moved rows keep their ids and contents, and are not summarised a second time.
    assert await db.fetch(_ROWS) == rows
    assert [[dict(r) for r in await db.fetch(q)] for q in _SUMMARIES] == summaries
    again = await keep_log_months(pool, now, 0)
    assert again["log_months_created"] == 0


async def test_the_job_drops_only_months_wholly_older_than_the_retention(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    agency_id, _ = await agencies.create_agency(db, name="Retention")
    v = await volunteer(db, agency_id)
    await keep_log_months(pool, datetime(2090, 3, 15, tzinfo=UTC), 0)
    now = datetime(2090, 8, 10, tzinfo=UTC)
    cutoff = now - timedelta(days=62)  # 9 June 2090
    expired = await _seed_at(db, agency_id, v, datetime(2090, 5, 31, tzinfo=UTC))
    straddling = await _seed_at(db, agency_id, v, cutoff - timedelta(days=3))
    old_default = await _seed_at(db, agency_id, v, cutoff - timedelta(days=400))
    new_default = await _seed_at(db, agency_id, v, datetime(2095, 1, 1, tzinfo=UTC))
    before = await _names(db)

    done = await keep_log_months(pool, now, 62)

    remaining = await log_store.partitions(db)
    dropped = before - {p.name for p in remaining}
    assert {"response_log_legacy", "response_log_2090_05"} <= dropped
    assert done["log_months_dropped"] == len(dropped)
    assert all(p.upper is None or p.upper > cutoff for p in remaining)
    assert not await db.fetch(_WHERE, expired)
    assert [r[0] for r in await db.fetch(_WHERE, straddling)] == ["response_log_2090_06"]
    assert not await db.fetch(_WHERE, old_default)
    assert [r[0] for r in await db.fetch(_WHERE, new_default)] == ["response_log_default"]
    # Reports read the summaries, which outlive the log.
    assert (
        await db.fetchval(
            "SELECT alerts_on_scene FROM incident_review WHERE incident_id = $1", expired
        )
        == 1
    )


async def test_the_job_waits_for_the_process_holding_its_lock(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    before = await _names(db)
    assert await log_store.try_partition_lock(db)
    try:
        done = await keep_log_months(pool, datetime(2090, 3, 15, tzinfo=UTC), 0)
    finally:
        await log_store.release_partition_lock(db)
    assert done["log_months_created"] == 0
    assert await _names(db) == before


async def test_deleting_an_incident_cascades_through_an_index(db: asyncpg.Connection) -> None:
    agency_id, _ = await agencies.create_agency(db, name="Cascade")
    v = await volunteer(db, agency_id)
    now = datetime.now(UTC)
    gone = [
        await _seed_at(db, agency_id, v, at)
        for at in (now - timedelta(days=90), now, datetime(2090, 1, 1, tzinfo=UTC))
    ]
    kept = await _seed_at(db, agency_id, v, now)
    await db.execute("DELETE FROM incidents WHERE id = ANY($1::uuid[])", gone)
    assert not await db.fetchval(
        "SELECT count(*) FROM response_log WHERE incident_id = ANY($1::uuid[])", gone
    )
    assert await db.fetchval("SELECT count(*) FROM response_log WHERE incident_id = $1", kept)
    # The lookups ON DELETE CASCADE makes, planned with scans priced out: every partition
    # must offer an index for them, else a plan still scans.
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        for column in ("incident_id", "alert_id"):
            plan = "\n".join(
                r[0]
                for r in await db.fetch(
                    f"EXPLAIN DELETE FROM response_log WHERE {column} = $1",
                    kept if column == "incident_id" else UUID(int=1),
                )
            )
            assert "Seq Scan" not in plan, plan
            assert "response_log_default" in plan
            assert "response_log_legacy" in plan


def test_months_roll_over_the_year() -> None:
    months = log_months.months_needed(datetime(2026, 11, 30, 23, 59, tzinfo=UTC), ahead=2)
    assert [m.name for m in months] == [
        "response_log_2026_11",
        "response_log_2026_12",
        "response_log_2027_01",
    ]
    assert all(a.end == b.start for a, b in pairwise(months))


def test_a_month_is_covered_only_by_a_range_holding_its_start() -> None:
    dec = log_months.month_of(datetime(2026, 12, 5, tzinfo=UTC))
    assert log_months.covered(dec, [(None, dec.end)])
    assert not log_months.covered(dec, [(None, dec.start), (dec.end, None)])


@pytest.mark.parametrize("days", ["-1", "1", "30", "x"])
def test_nonsense_retention_is_refused_at_start(days: str) -> None:
    with pytest.raises(ConfigError, match="DISPATCH_RESPONSE_LOG_RETENTION_DAYS"):
        load_settings({"DISPATCH_RESPONSE_LOG_RETENTION_DAYS": days})


def test_retention_is_off_by_default_and_takes_a_month_or_more() -> None:
    assert Settings().response_log_retention_days == 0
    assert (
        load_settings({"DISPATCH_RESPONSE_LOG_RETENTION_DAYS": "31"}).response_log_retention_days
        == 31
    )
    with pytest.raises(ConfigError):
        Settings(response_log_retention_days=7)


async def test_a_drop_that_would_queue_intake_behind_a_long_read_waits_for_the_next_round(
    db: asyncpg.Connection, pool: asyncpg.Pool, database_url: str
) -> None:
    await keep_log_months(pool, datetime(2090, 3, 15, tzinfo=UTC), 0)
    now, retention = datetime(2090, 8, 10, tzinfo=UTC), 62
    reader = await asyncpg.connect(database_url)
    try:
        async with reader.transaction():
            await reader.fetchval("SELECT count(*) FROM response_log")
            held = await keep_log_months(pool, now, retention)
            # Nothing stays locked: intake writes while the read goes on.
            await _seed_at(db, *(await _agency_and_volunteer(db)), now)
        assert held["log_months_dropped"] == 0
        assert "response_log_2090_03" in await _names(db)
    finally:
        await reader.close()
    later = await keep_log_months(pool, now, retention)
    assert later["log_months_dropped"] > 0
    assert "response_log_2090_03" not in await _names(db)


async def _agency_and_volunteer(db: asyncpg.Connection) -> tuple[UUID, int]:
    agency_id, _ = await agencies.create_agency(db, name="Intake")
    return agency_id, await volunteer(db, agency_id)
