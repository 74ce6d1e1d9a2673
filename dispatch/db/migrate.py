"""Apply the SQL migrations shipped in ``dispatch/migrations`` in order, exactly once.

A file runs in one transaction together with its ``schema_migrations`` row, under a
session advisory lock, so two processes starting at once cannot both apply it. A file
whose first line is ``-- migrate: each statement on its own`` runs statement by statement
outside a transaction instead, for what PostgreSQL refuses inside one (``CREATE INDEX
CONCURRENTLY``, which builds an index without blocking writers). Its row is written
after its last statement, so a process that dies half-way runs the whole file again:
every statement in such a file must be safe to repeat, and it holds no dollar-quoted
bodies (statements are split at a ``;`` that ends a line).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from importlib import resources

import structlog

from dispatch.db.types import Conn

log = structlog.get_logger(__name__)

# Any constant works as long as no other code takes it; this one spells "DSPMIGR".
_LOCK_KEY = 0x4453504D49475200 >> 8
_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_EACH_STATEMENT = "-- migrate: each statement on its own"
_STATEMENT_END = re.compile(r";[ \t]*(?:--[^\n]*)?$", re.MULTILINE)
# A migration rewrites or indexes whole tables, which on a large database takes longer than
# the pool's command timeout (5 s by default) allows an ordinary query, and the service
# migrates on a pool connection at start; still bounded, like every call.
MIGRATION_TIMEOUT_S = 6 * 3600.0
# How often a process that finds another one migrating asks again (see _lock).
_LOCK_POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def outside_transaction(self) -> bool:
        return self.sql.startswith(_EACH_STATEMENT)

    def statements(self) -> list[str]:
        """The file's statements, in order (comment-only pieces dropped)."""
        if "$$" in self.sql:
            raise RuntimeError(f"{self.name}: a file run statement by statement has no $$ bodies")
        pieces = (p.strip() for p in _STATEMENT_END.split(self.sql))
        return [p for p in pieces if _without_comments(p)]


def _without_comments(sql: str) -> str:
    return "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    ).strip()


def shipped_migrations() -> list[Migration]:
    """The migrations packaged with this version, sorted by number (gaps and duplicates fail)."""
    found: list[Migration] = []
    for entry in resources.files("dispatch.migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration numbering broken at {migration.name}")
    return found


async def _lock(conn: Conn, timeout_s: float) -> None:
    # Not pg_advisory_lock: a backend waiting inside that statement holds a snapshot, and
    # CREATE INDEX CONCURRENTLY in the migrating process waits for every older snapshot
    # in the database, so the two would wait for each other. (ASYNC110: the lock is the
    # database's, so there is no Event to wait on instead.)
    async with asyncio.timeout(timeout_s):
        take = "SELECT pg_try_advisory_lock($1)"
        while not await conn.fetchval(take, _LOCK_KEY, timeout=timeout_s):  # noqa: ASYNC110
            await asyncio.sleep(_LOCK_POLL_S)


async def migrate(conn: Conn, *, timeout_s: float = MIGRATION_TIMEOUT_S) -> list[str]:
    """Bring the schema up to date; returns the names of the migrations it applied."""
    applied_now: list[str] = []
    await _lock(conn, timeout_s)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """,
            timeout=timeout_s,
        )
        versions = await conn.fetch("SELECT version FROM schema_migrations", timeout=timeout_s)
        done = {r["version"] for r in versions}
        for migration in shipped_migrations():
            if migration.version in done:
                continue
            if migration.outside_transaction:
                for statement in migration.statements():
                    await conn.execute(statement, timeout=timeout_s)
                await _record(conn, migration, timeout_s)
            else:
                # BEGIN and COMMIT written out: asyncpg's transaction() would run them under
                # the command timeout, and a large migration's commit may take longer.
                await conn.execute("BEGIN", timeout=timeout_s)
                try:
                    await conn.execute(migration.sql, timeout=timeout_s)
                    await _record(conn, migration, timeout_s)
                except BaseException:
                    await conn.execute("ROLLBACK", timeout=timeout_s)
                    raise
                await conn.execute("COMMIT", timeout=timeout_s)
            applied_now.append(migration.name)
            log.info("migration_applied", migration=migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY, timeout=timeout_s)
    return applied_now


async def _record(conn: Conn, migration: Migration, timeout_s: float) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
        migration.version,
        migration.name,
        timeout=timeout_s,
    )
