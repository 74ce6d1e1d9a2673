"""Recording a sent batch: its round trips, and the order in which it takes its locks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest
from asyncpg.connection import LoggedQuery

from dispatch.db.pool import init_connection
from dispatch.domain import delivery_decisions as decisions
from dispatch.domain.delivery_chain import START, Step
from dispatch.store import alerts as alert_store
from dispatch.store import outbox as outbox_store
from dispatch.store.alerts import ClaimedDelivery, NewAlert
from dispatch.workers.outbox_records import Attempt, record_batch
from notify.ports import Channel, DeliveryOutcome, DeliveryResult
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import bare_incident, wait_until

pytestmark = pytest.mark.storage


def _never(attempt: int, *, retry_after_s: float | None, remaining_s: float) -> float | None:
    return None


async def _claimed(
    db: asyncpg.Connection, agency_id: UUID, per_incident: list[int]
) -> list[ClaimedDelivery]:
    """Leased rows of fresh alerts: ``per_incident[i]`` alerts for the i-th new incident."""
    now = datetime.now(UTC)
    for n, count in enumerate(per_incident):
        volunteers = [
            await db.fetchval(
                "INSERT INTO volunteers (agency_id, display_name, token_hash)"
                " VALUES ($1, 'V', gen_random_uuid()::text::bytea) RETURNING id",
                agency_id,
            )
            for _ in range(count)
        ]
        incident_id = await bare_incident(db, agency_id, f"i{n}-{uuid4()}")
        async with db.transaction():
            await alert_store.insert_with_outbox(
                db,
                agency_id=agency_id,
                incident_id=incident_id,
                alerts=[NewAlert(uuid4(), v, 10.0, "cpr", START) for v in volunteers],
                expires_at=now + timedelta(minutes=10),
                now=now,
            )
    return await alert_store.claim_due(db, now=now, limit=1000, lease=timedelta(seconds=30))


async def _record_sent(conn: asyncpg.Connection, claimed: list[ClaimedDelivery]) -> None:
    """Record every claimed row as a push the provider accepted, in one transaction."""
    now = datetime.now(UTC)
    attempts = [
        Attempt(
            d,
            step=Step.PUSH,
            result=DeliveryResult(
                Channel.PUSH, DeliveryOutcome.ACCEPTED, 1.0, provider_message_id=f"m{d.outbox_id}"
            ),
        )
        for d in claimed
    ]
    outcomes = [
        decisions.decide(
            a.result, attempts=1, expires_at=a.delivery.expires_at, now=now, backoff=_never
        )
        for a in attempts
    ]
    async with conn.transaction():
        await record_batch(conn, attempts, outcomes, now=now)


async def _connect(dsn: str) -> asyncpg.Connection:
    """A connection set up as the service's pools set theirs up (codecs)."""
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn


async def _states(db: asyncpg.Connection, claimed: list[ClaimedDelivery]) -> list[str]:
    rows = await db.fetch(
        "SELECT state FROM alerts WHERE id = ANY($1::uuid[])",
        [d.alert.alert_id for d in claimed],
    )
    return [r["state"] for r in rows]


@pytest.mark.parametrize("per_incident", [[1], [30, 30, 40]])
async def test_a_batch_of_push_successes_is_recorded_in_five_statements(
    db: asyncpg.Connection, database_url: str, agency: AgencyFixture, per_incident: list[int]
) -> None:
    """BEGIN, the locks (incidents, then alerts), the outbox rows, the states and the
    timeline, COMMIT: however many rows and incidents the batch holds."""
    first, *claimed = await _claimed(db, agency.agency_id, [1, *per_incident])
    statements: list[str] = []
    conn = await _connect(database_url)
    try:
        await _record_sent(conn, [first])  # the connection learns the types it sends
        conn.add_query_logger(lambda q: statements.append(q.query))
        await _record_sent(conn, claimed)
    finally:
        await conn.close()
    assert len(statements) == 5, statements
    assert await _states(db, claimed) == ["sent"] * sum(per_incident)
    sent = await db.fetchval(
        "SELECT count(*) FROM response_log WHERE event = 'alert_sent'"
        " AND alert_id = ANY($1::uuid[])",
        [d.alert.alert_id for d in claimed],
    )
    assert sent == sum(per_incident)


async def test_recording_locks_the_incident_before_any_alert(
    db: asyncpg.Connection, database_url: str, agency: AgencyFixture
) -> None:
    """Intake locks an incident, then its alerts: recording waits on the incident holding no
    alert lock, or each would wait on the other (a deadlock)."""
    claimed = await _claimed(db, agency.agency_id, [3])
    incident_id = claimed[0].alert.incident_id
    holder = await asyncpg.connect(database_url)
    recorder = await _connect(database_url)
    try:
        held = holder.transaction()
        await held.start()
        # FOR UPDATE conflicts with the key-share lock recording takes on the incident.
        await holder.execute("SELECT 1 FROM incidents WHERE id = $1 FOR UPDATE", incident_id)
        pid = recorder.get_server_pid()
        recording = asyncio.create_task(_record_sent(recorder, claimed))

        async def waiting() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
                )
            )

        await wait_until(waiting)
        # While recording waits for the incident, every alert is free to lock.
        async with db.transaction():
            free = await db.fetch(
                "SELECT id FROM alerts WHERE id = ANY($1::uuid[]) FOR NO KEY UPDATE NOWAIT",
                [d.alert.alert_id for d in claimed],
            )
        assert len(free) == 3
        await held.rollback()
        await recording
    finally:
        await holder.close()
        await recorder.close()
    assert await _states(db, claimed) == ["sent"] * 3


async def test_a_twilio_sid_finds_its_alert_through_the_index_of_texts_and_calls(
    db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    """Status callbacks look an alert up by SID; pushes' FCM names are not in that index."""
    sms, voice, push = await _claimed(db, agency.agency_id, [3])
    for delivery, channel, ref in (
        (sms, "sms", "SM1"),
        (voice, "voice", "CA1"),
        (push, "push", "projects/p/messages/1"),
    ):
        await db.execute(
            "UPDATE outbox SET channel = $2, provider_ref = $3, done_at = now(), outcome = 'sent'"
            " WHERE id = $1",
            delivery.outbox_id,
            channel,
            ref,
        )
    asked: list[str] = []

    def ask(query: LoggedQuery) -> None:
        asked.append(query.query)

    db.add_query_logger(ask)
    try:
        assert await outbox_store.alert_of_provider_ref(db, "SM1") == sms.alert.alert_id
    finally:
        db.remove_query_logger(ask)
    assert await outbox_store.alert_of_provider_ref(db, "CA1") == voice.alert.alert_id
    assert await outbox_store.alert_of_provider_ref(db, "SM2") is None
    # The service's own look-up can use the index (its condition implies the index's).
    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        plan = await db.fetchval(f"EXPLAIN (FORMAT JSON) {asked[0]}", "SM1")
    assert "outbox_provider_ref" in str(plan)
