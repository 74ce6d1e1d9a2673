"""Apply the SQL migrations shipped in ``dispatch/migrations`` in order, exactly once.

Each file runs in its own transaction together with its ``schema_migrations``
row, under a session advisory lock, so two processes starting at once cannot
both apply the same file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import structlog

from dispatch.db.types import Conn

log = structlog.get_logger(__name__)

# Any constant works as long as no other code takes it; this one spells "DSPMIGR".
_LOCK_KEY = 0x4453504D49475200 >> 8
_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


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


async def migrate(conn: Conn) -> list[str]:
    """Bring the schema up to date; returns the names of the migrations it applied."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in shipped_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied_now.append(migration.name)
            log.info("migration_applied", migration=migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
