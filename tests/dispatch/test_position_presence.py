"""Coverage presence as the position writer records it (migrations 0016 and 0020).

The reference is 0016 as shipped: its statement trigger, installed from the file under
other names, and the foreign keys 0020 replaced. Whatever records presence now must
record exactly what that recorded for the same fixes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatch.db.migrate import shipped_migrations
from dispatch.store import volunteers as volunteer_store
from dispatch.store.volunteers import PositionRow
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, offset
from tests.dispatch.review_helpers import volunteer

pytestmark = pytest.mark.storage

# The first two points share a resolution-8 cell; the other two are cells of their own.
POINTS = [CENTRE, offset(*CENTRE, 20, 20), offset(*CENTRE, 3000, 0), offset(*CENTRE, 0, 3000)]
# Steps of the clock: fixes 30 s apart, longer pauses, an hour on, a week on.
STEPS = [timedelta(seconds=30)] * 6 + [
    timedelta(minutes=5),
    timedelta(minutes=25),
    timedelta(minutes=65),
    timedelta(days=7, seconds=10),
]
PEOPLE = 8

Write = Callable[[asyncpg.Connection, Sequence[PositionRow]], Awaitable[None]]


def _script(seed: int, batches: int) -> list[list[tuple[int, int, datetime]]]:
    """Batches of (person, point, fix time): one fix per person at most, some out of order."""
    rng = random.Random(seed)
    clock = datetime(2026, 11, 30, 10, 50, tzinfo=UTC)
    script = []
    for _ in range(batches):
        clock += rng.choice(STEPS)
        script.append(
            [
                (
                    person,
                    rng.randrange(len(POINTS)),
                    clock - timedelta(minutes=rng.choice([0] * 9 + [3])),
                )
                for person in range(PEOPLE)
                if rng.random() < 0.7
            ]
        )
    return script


async def _play(
    db: asyncpg.Connection,
    agency_id: Any,
    script: list[list[tuple[int, int, datetime]]],
    write: Write,
) -> dict[tuple[int, int, int], datetime]:
    """Run the script for new volunteers through ``write``; their presence by person."""
    people = [await volunteer(db, agency_id) for _ in range(PEOPLE)]
    for number, batch in enumerate(script):
        if number % 11 == 5:  # the first person goes off duty (their position goes) and back
            await db.execute("UPDATE volunteers SET on_duty = false WHERE id = $1", people[0])
            await db.execute("DELETE FROM volunteer_positions WHERE volunteer_id = $1", people[0])
        if number % 11 == 7:
            await db.execute("UPDATE volunteers SET on_duty = true WHERE id = $1", people[0])
        rows = [
            PositionRow(people[person], agency_id, *POINTS[point], 5.0, at)
            for person, point, at in batch
        ]
        await write(db, rows)
    found = await db.fetch(
        "SELECT volunteer_id, hour_of_week, cell, last_seen_at FROM coverage_presence"
        " WHERE volunteer_id = any($1)",
        people,
    )
    return {
        (people.index(r["volunteer_id"]), r["hour_of_week"], r["cell"]): r["last_seen_at"]
        for r in found
    }


def _as_shipped_in_0016() -> str:
    """0016's presence trigger (functions and triggers renamed) and its foreign keys."""
    (migration,) = [m for m in shipped_migrations() if m.version == 16]
    parts = re.findall(
        r"^CREATE FUNCTION coverage_presence_(?:upsert|record)\(.*?^\$\$;$"
        r"|^CREATE TRIGGER coverage_presence_\w+\n.*?;$",
        migration.sql,
        flags=re.M | re.S,
    )
    assert len(parts) == 4
    trigger = re.sub(
        r"coverage_presence_(upsert|record|inserted|updated)", r"presence_0016_\1", "\n".join(parts)
    )
    return (
        trigger
        + """
        ALTER TABLE coverage_presence
            ADD FOREIGN KEY (volunteer_id) REFERENCES volunteers (id) ON DELETE CASCADE,
            ADD FOREIGN KEY (agency_id) REFERENCES agencies (id) ON DELETE CASCADE;
        ALTER TABLE volunteer_positions DISABLE TRIGGER coverage_presence_inserted,
            DISABLE TRIGGER coverage_presence_updated;
        ALTER TABLE volunteers DISABLE TRIGGER volunteers_forget_presence;
        """
    )


_AS_MIGRATED = """
    DROP TRIGGER presence_0016_inserted ON volunteer_positions;
    DROP TRIGGER presence_0016_updated ON volunteer_positions;
    ALTER TABLE coverage_presence
        DROP CONSTRAINT coverage_presence_volunteer_id_fkey,
        DROP CONSTRAINT coverage_presence_agency_id_fkey;
    ALTER TABLE volunteer_positions ENABLE TRIGGER coverage_presence_inserted,
        ENABLE TRIGGER coverage_presence_updated;
    ALTER TABLE volunteers ENABLE TRIGGER volunteers_forget_presence;
"""


async def test_the_writer_records_what_0016_recorded_for_the_same_fixes(
    db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    script = _script(seed=16, batches=60)
    write: Write = volunteer_store.upsert_positions  # the position writer's statement

    await db.execute(_as_shipped_in_0016())
    reference = await _play(db, agency.agency_id, script, write)
    await db.execute(_AS_MIGRATED)
    recorded = await _play(db, agency.agency_id, script, write)

    assert recorded == reference
    # The script took every branch: fixes that entered nothing new, new hours and cells.
    fixes = sum(len(batch) for batch in script)
    assert PEOPLE < len(reference) < fixes
    assert len({(hour, cell) for _, hour, cell in reference}) > len(POINTS)


async def test_a_deleted_volunteer_takes_their_presence_along(
    db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """The foreign keys' cascade, kept by a trigger: erasure deletes the volunteer's row, and
    deleting an agency deletes its volunteers."""
    other = await db.fetchval(
        "INSERT INTO agencies (id, name) VALUES (gen_random_uuid(), 'Other') RETURNING id"
    )
    at = datetime.now(UTC)
    gone, kept = await volunteer(db, agency.agency_id), await volunteer(db, agency.agency_id)
    elsewhere = await volunteer(db, other)
    await volunteer_store.upsert_positions(
        db,
        [
            PositionRow(gone, agency.agency_id, *CENTRE, None, at),
            PositionRow(kept, agency.agency_id, *CENTRE, None, at),
            PositionRow(elsewhere, other, *CENTRE, None, at),
        ],
    )
    assert await db.fetchval("SELECT count(*) FROM coverage_presence") == 3
    await db.execute("DELETE FROM volunteers WHERE id = $1", gone)
    await db.execute("DELETE FROM agencies WHERE id = $1", other)
    rows = await db.fetch("SELECT volunteer_id FROM coverage_presence")
    assert [r["volunteer_id"] for r in rows] == [kept]
