"""Migrations: ordered, recorded, applied once even when two processes race."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from dispatch.db.migrate import migrate, shipped_migrations
from tests.dispatch import pg


async def test_shipped_migrations_are_numbered_without_gaps() -> None:
    """The package ships its SQL files and they number 1..n."""
    migrations = shipped_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.sql.strip() for m in migrations)


@asynccontextmanager
async def _unmigrated_database(admin_dsn: str) -> AsyncIterator[str]:
    """A new, empty database's DSN, dropped afterwards."""
    name = await pg.create_test_database(admin_dsn, "template0")
    try:
        yield pg.with_database(admin_dsn, name)
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_concurrent_migrate_applies_each_file_once(admin_dsn: str) -> None:
    """Two processes starting at once: the advisory lock lets one apply, the other sees it done."""
    async with _unmigrated_database(admin_dsn) as dsn:
        first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
        try:
            applied = await asyncio.gather(migrate(first), migrate(second))
            assert sorted(len(a) for a in applied) == [0, len(shipped_migrations())]
            rows = await first.fetch("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in rows] == [m.version for m in shipped_migrations()]
            assert await migrate(first) == []
        finally:
            await first.close()
            await second.close()


async def test_every_agency_owned_table_carries_agency_id(db: asyncpg.Connection) -> None:
    """Tables that belong to one agency carry agency_id, so they can be partitioned later.

    The VAPID key is the installation's, not an agency's: one app, one push identity.
    """
    rows = await db.fetch(
        """
        SELECT table_name FROM information_schema.tables
        WHERE table_schema = 'public'
          AND table_name NOT IN ('schema_migrations', 'agencies', 'webpush_vapid_key')
        """
    )
    for row in rows:
        has = await db.fetchval(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = $1 AND column_name = 'agency_id'",
            row["table_name"],
        )
        assert has == 1, row["table_name"]


_UNINDEXED_FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text AS child, c.conname,
       array_agg(a.attname ORDER BY k.ord) AS columns, c.confrelid::regclass::text AS parent
FROM pg_constraint c
CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
WHERE c.contype = 'f' AND c.confrelid <> 'agencies'::regclass
  AND NOT EXISTS (
      SELECT 1 FROM pg_index i
      WHERE i.indrelid = c.conrelid
        AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
        AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey
  )
GROUP BY c.conrelid, c.conname, c.confrelid
ORDER BY 1, 2
"""


async def test_every_foreign_key_has_an_index_for_deletes(db: asyncpg.Connection) -> None:
    """Deleting a parent row checks each child table by the key's columns: without an index
    leading with them, every delete scans the child (10,000 alerts took over 5 s). Keys to
    ``agencies`` are exempt: the service never deletes an agency (see migration 0012)."""
    missing = [
        f"{r['child']}({', '.join(r['columns'])}) -> {r['parent']}"
        for r in await db.fetch(_UNINDEXED_FOREIGN_KEYS)
    ]
    assert missing == []


async def test_0014_writes_each_agency_s_radius_and_count_into_its_first_policy(
    db: asyncpg.Connection,
) -> None:
    """Agencies that alerted from the two columns keep alerting alike, from version 1; a
    stored policy keeps its versions, its silence window under its new name."""
    from dispatch.domain.models import first_alert_policy
    from dispatch.store import agencies

    before_0014 = """
        INSERT INTO agencies (id, name, alert_radius_m, alert_limit)
        VALUES (gen_random_uuid(), $1, $2, $3) RETURNING id
    """
    wide = await db.fetchval(before_0014, "Wide", 1500.0, 20)
    plain = await db.fetchval(before_0014, "Plain", 500.0, 7)
    versioned = await db.fetchval(before_0014, "Versioned", 800.0, 3)
    await db.execute(
        "INSERT INTO alert_policies (agency_id, version, policy) VALUES ($1, 1, $2), ($1, 2, $3)",
        versioned,
        {"target_accepted": 2, "answer_timeout_s": 120},
        {"target_accepted": 1, "answer_timeout_s": 100},
    )
    (migration,) = [m for m in shipped_migrations() if m.version == 14]
    await db.execute(migration.sql)

    for agency_id, radius, limit in ((wide, 1500.0, 20), (plain, 500.0, 7)):
        found = await agencies.policy(db, agency_id)
        assert found is not None
        assert found.alert_policy == first_alert_policy(radius, limit)
    kept = await agencies.policy(db, versioned)
    assert kept is not None
    assert (kept.alert_policy.version, kept.alert_policy.not_coming_after_s) == (2, 100)
    first = await agencies.alert_policy_version(db, versioned, 1)
    assert first is not None
    assert first.not_coming_after_s == 120
    stored = await db.fetch("SELECT policy FROM alert_policies WHERE agency_id = $1", versioned)
    assert all("answer_timeout_s" not in r["policy"] for r in stored)


async def test_text_search_indexes_keep_no_pending_list(db: asyncpg.Connection) -> None:
    """Every search would read a trigram index's queue of pending entries (0024)."""
    found = await db.fetch(
        "SELECT relname, reloptions FROM pg_class"
        " WHERE relname IN ('incidents_number_trgm', 'incidents_address_trgm') ORDER BY 1"
    )
    if not found:
        pytest.skip("pg_trgm is not installed on this server: the list's search scans")
    assert [(r["relname"], r["reloptions"]) for r in found] == [
        ("incidents_address_trgm", ["fastupdate=off"]),
        ("incidents_number_trgm", ["fastupdate=off"]),
    ]


async def test_text_search_columns_keep_a_fine_histogram(db: asyncpg.Connection) -> None:
    """The search's row estimate comes from these histograms; with 100 entries a new
    sample could flip its plan between runs (0026)."""
    targets = await db.fetch(
        "SELECT attrelid::regclass::text AS rel, attname, attstattarget FROM pg_attribute"
        " WHERE (attrelid = 'incidents'::regclass AND attname = 'source_incident_id')"
        "    OR attrelid = to_regclass('incidents_address_trgm') ORDER BY 1"
    )
    found = {r["rel"]: r["attstattarget"] for r in targets}
    assert found["incidents"] == 1000
    if "incidents_address_trgm" in found:
        assert found["incidents_address_trgm"] == 1000


def test_a_file_run_statement_by_statement_is_split_at_each_statement_s_end() -> None:
    from dispatch.db.migrate import Migration

    sql = (
        "-- migrate: each statement on its own\n"
        "-- why, in a comment\n"
        "DROP INDEX CONCURRENTLY IF EXISTS a;\n"
        "CREATE INDEX CONCURRENTLY a ON t (x)\n"
        "    INCLUDE (y);  -- a trailing comment\n"
        "DROP INDEX CONCURRENTLY IF EXISTS b;\n"
        "-- nothing after this\n"
    )
    migration = Migration(99, "0099_x.sql", sql)
    assert migration.outside_transaction
    assert migration.statements() == [
        "-- migrate: each statement on its own\n-- why, in a comment\n"
        "DROP INDEX CONCURRENTLY IF EXISTS a",
        "CREATE INDEX CONCURRENTLY a ON t (x)\n    INCLUDE (y)",
        "DROP INDEX CONCURRENTLY IF EXISTS b",
    ]
    assert not Migration(98, "0098_y.sql", "CREATE TABLE t (x int);").outside_transaction
    with pytest.raises(RuntimeError, match=r"\$\$"):
        Migration(97, "0097_z.sql", sql + "DO $$ BEGIN END $$;\n").statements()


async def test_each_statement_files_can_run_again_after_a_crash(db: asyncpg.Connection) -> None:
    """Such a file's row is written after its last statement, so a process that dies
    half-way runs all of it again: on a migrated database that must succeed and leave the
    same indexes."""
    indexes = "SELECT indexrelid::regclass::text, indisvalid FROM pg_index ORDER BY 1"
    before = await db.fetch(indexes)
    outside = [m for m in shipped_migrations() if m.outside_transaction]
    assert outside, "no migration runs outside a transaction any more"
    for migration in outside:
        for statement in migration.statements():
            await db.execute(statement)
    assert await db.fetch(indexes) == before


async def test_the_coverage_report_reads_presence_from_its_index_alone(
    db: asyncpg.Connection,
) -> None:
    """0025: the report's volunteer and time seen are carried in the index, so a vacuumed
    table is not read (one heap page per presence row before)."""
    agency = await db.fetchval(
        "INSERT INTO agencies (id, name) VALUES (gen_random_uuid(), 'A') RETURNING id"
    )
    await db.execute(
        "INSERT INTO coverage_presence (volunteer_id, agency_id, hour_of_week, cell, last_seen_at)"
        " SELECT v, $1, v % 168, 613 + v % 40, now() FROM generate_series(1, 5000) v",
        agency,
    )
    await db.execute("VACUUM ANALYZE coverage_presence")
    plan = await db.fetchval(
        "EXPLAIN (ANALYZE, FORMAT JSON) SELECT cell, volunteer_id FROM coverage_presence"
        " WHERE agency_id = $1 AND hour_of_week = 7 AND last_seen_at >= now() - interval '28 days'",
        agency,
    )
    node = json.loads(plan)[0]["Plan"]
    assert (node["Node Type"], node["Index Name"], node["Heap Fetches"]) == (
        "Index Only Scan",
        "coverage_presence_cells",
        0,
    )


async def test_migrations_are_not_held_to_the_connection_s_command_timeout(admin_dsn: str) -> None:
    """The service migrates on a pool connection, whose command timeout (5 s by default)
    is for ordinary queries; rewriting or indexing a large table takes longer. Here a
    timeout shorter than any migration file stands for it."""
    async with _unmigrated_database(admin_dsn) as dsn:
        conn = await asyncpg.connect(dsn, command_timeout=0.001)
        try:
            applied = await migrate(conn)
        finally:
            await conn.close(timeout=5)
        assert len(applied) == len(shipped_migrations())
