"""Supervisors' review routes against a long history, as ratios to a primary-key lookup.

Bulk-loads (COPY) one agency's history into a scratch database: ``--incidents`` incidents
(default 100,000) received over ``--years`` years up to now, their alerts, exactly
``--events`` response-log events (default 2,000,000), 4,000 volunteers and four weeks of
coverage presence. Then serves the real application in this process (background workers
off) and measures the *server time* of each request (from a middleware placed first, so
it includes authentication, the query and JSON or CSV encoding) for:

- the unit: ``GET /v1/agencies/{id}/volunteers/{volunteer_id}`` (supervisor token, one
  row by primary key),
- the incident list, first page, with each of several filters,
- the activations report for the last calendar year and for a random settled calendar
  month, as kept by the service's background warm-up (housekeeping computes every settled
  month and year before the measurement starts, and the run waits for it), and computed
  afresh: each request asks a range of the year a second shorter than the one before, so
  none was kept; and the default range (twelve months to the end of this one), which
  includes today and is therefore always computed,
- the coverage report for a random hour of the week.

Prints the calibration line first, then p50 and p99 of each and p99 as a multiple of the
unit's p99 (the target is at most 5). Then how long the warm-up took, and how long after a
late change (an accept logged for a year-old alert) every kept report was computed again.
Then the write path: one statement logging an alert's three answers, plain (no summary
trigger), with the summary trigger only, and with it and the change-count triggers of
migration 0018, each as a ratio to the plain insert. Numbers only, not a test.

    python bench/review.py [--database-url postgresql://127.0.0.1/postgres]
        [--incidents 100000] [--events 2000000] [--runs 200] [--keep]
        [--reuse postgresql://127.0.0.1/dispatch_bench_review_…]

``--reuse`` measures a database an earlier ``--keep`` run loaded (migrated to this version,
its kept reports deleted, a new supervisor token), skipping the load.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import asyncpg
from aiohttp import web

# Ahead of this folder, whose dispatch.py would otherwise shadow the dispatch package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import calibration_line
from bench.common import (
    INCIDENT_KEY_COLUMNS,
    copy_rows,
    p99_line,
    percentile,
    scratch_database,
    serve_locally,
)
from dispatch.config import Settings
from dispatch.db.migrate import migrate
from dispatch.domain.report_ranges import standard_ranges
from dispatch.domain.time_zones import agency_time_zone
from dispatch.store import agencies as agency_store
from dispatch.web.app import create_app
from geoindex import latlng_to_cell

CENTRE = (52.3731, 4.8926)
VOLUNTEERS = 4000
CALL_TYPES = ("09-E-01", "09-E-02", "09-D-01", "10-D-04", "26-A-01", "31-D-02")
STREETS = ("Damrak", "Rokin", "Kalverstraat", "Prinsengracht", "Overtoom", "Ferdinand Bolstraat")
Row = tuple[Any, ...]


def _incidents(
    agency_id: UUID, volunteers: list[int], args: argparse.Namespace, rng: random.Random
) -> tuple[list[Row], list[Row], list[Row]]:
    now = datetime.now(UTC)
    span = timedelta(days=365 * args.years).total_seconds()
    incidents, alerts, events = [], [], []
    for n in range(args.incidents):
        incident = uuid4()
        received = now - timedelta(seconds=rng.random() * span)
        receipt = received + timedelta(seconds=rng.uniform(1, 20))
        test = rng.random() < 0.02
        cardiac = rng.random() < 0.85
        blocked = cardiac and rng.random() < 0.03
        activated = cardiac and not blocked
        ems_s = rng.uniform(300, 1200) if rng.random() < 0.9 else None
        ems_at = receipt + timedelta(seconds=ems_s) if ems_s is not None else None
        state = "closed" if rng.random() < 0.97 else rng.choice(("alerting", "cancelled"))
        street = rng.choice(STREETS)
        report = f'{{"address": {{"text": "{street} {rng.randint(1, 400)}, Amsterdam"}}}}'
        incidents.append(
            (
                incident,
                agency_id,
                "generic",
                f"AMS-{n:07d}",
                receipt,
                1,
                secrets.token_bytes(8),
                "cancelled" if state == "cancelled" else "closed",
                test,
                cardiac,
                rng.choice(CALL_TYPES[:4]) if cardiac else rng.choice(CALL_TYPES[4:]),
                CENTRE[0] + rng.uniform(-0.05, 0.05),
                CENTRE[1] + rng.uniform(-0.08, 0.08),
                "public",
                received,
                report,
                state,
                receipt,
                receipt if activated else None,
                ems_at,
                "too_old" if blocked else None,
            )
        )
        events.append((agency_id, incident, None, None, "incident_received", receipt, "{}"))
        if not activated:
            reason = "too_old" if blocked else "not_cardiac_arrest"
            events.append(
                (
                    agency_id,
                    incident,
                    None,
                    None,
                    "not_alertable",
                    receipt,
                    f'{{"reason": "{reason}"}}',
                )
            )
        else:
            events.append((agency_id, incident, None, None, "alerting_started", receipt, "{}"))
            for volunteer in rng.sample(volunteers, rng.randint(3, 6)):
                alert = uuid4()
                sent = receipt + timedelta(seconds=rng.uniform(2, 15))
                role = "aed" if rng.random() < 0.2 else "cpr"
                alerts.append((alert, agency_id, incident, volunteer, role, "sent", 300.0, sent))
                steps = [("alert_queued", receipt), ("alert_sent", sent)]
                steps.append(("alert_delivered", sent + timedelta(seconds=1)))
                answer = rng.random()
                if answer < 0.3:
                    accept = sent + timedelta(seconds=rng.uniform(10, 90))
                    steps.append(("alert_accepted", accept))
                    steps.append(("alert_en_route", accept + timedelta(seconds=5)))
                    if rng.random() < 0.7:
                        arrive = accept + timedelta(seconds=rng.uniform(60, 600))
                        steps.append(("alert_on_scene", arrive))
                elif answer < 0.6:
                    steps.append(("alert_declined", sent + timedelta(seconds=rng.uniform(5, 60))))
                else:
                    steps.append(("alert_timed_out", sent + timedelta(seconds=45)))
                events += [(agency_id, incident, alert, volunteer, e, at, "{}") for e, at in steps]
        if ems_at is not None:
            details = '{"status": "on_scene", "unit_id": "A1"}'
            events.append((agency_id, incident, None, None, "unit_status", ems_at, details))
    # Exactly the number asked for: trim, or pad with unit status updates.
    del events[args.events :]
    while len(events) < args.events:
        row = rng.choice(incidents)
        at = row[17] + timedelta(seconds=rng.uniform(30, 900))
        details = '{"status": "en_route", "unit_id": "A2"}'
        events.append((agency_id, row[0], None, None, "unit_status", at, details))
    return incidents, alerts, events


def _presence(agency_id: UUID, volunteers: list[int], rng: random.Random) -> list[Row]:
    now = datetime.now(UTC)
    home = {v: (CENTRE[0] + rng.gauss(0, 0.03), CENTRE[1] + rng.gauss(0, 0.05)) for v in volunteers}
    rows = {}
    for v in volunteers:
        for _ in range(rng.randint(20, 80)):
            lat, lon = home[v]
            if rng.random() < 0.3:
                lat, lon = lat + rng.gauss(0, 0.02), lon + rng.gauss(0, 0.03)
            hour = rng.randrange(168)
            cell = latlng_to_cell(lat, lon, 8)
            seen = now - timedelta(days=rng.uniform(0, 35))
            rows[(v, hour, cell)] = (v, agency_id, hour, cell, seen)
    return list(rows.values())


async def _fill(conn: asyncpg.Connection, args: argparse.Namespace) -> tuple[UUID, str, int]:
    rng = random.Random(14)
    agency_id, _ = await agency_store.create_agency(conn, name="Bench")
    await conn.execute(
        "UPDATE agencies SET time_zone = 'Europe/Amsterdam' WHERE id = $1", agency_id
    )
    _, token = await agency_store.create_supervisor(conn, agency_id=agency_id, name="Sup")
    await copy_rows(
        conn,
        "volunteers",
        [
            (agency_id, f"V{i}", secrets.token_bytes(32), rng.random() < 0.9, "lay")
            for i in range(VOLUNTEERS)
        ],
        "agency_id display_name token_hash verified tier",
    )
    volunteers = [r["id"] for r in await conn.fetch("SELECT id FROM volunteers ORDER BY id")]
    started = time.perf_counter()
    incidents, alerts, events = _incidents(agency_id, volunteers, args, rng)
    built = time.perf_counter()
    await copy_rows(
        conn,
        "incidents",
        incidents,
        INCIDENT_KEY_COLUMNS
        + " lat lon place_type received_at report state created_at alerting_started_at"
        " first_ems_on_scene_at alert_blocked",
    )
    await copy_rows(
        conn,
        "alerts",
        alerts,
        "id agency_id incident_id volunteer_id role state distance_m expires_at",
    )
    await copy_rows(
        conn, "response_log", events, "agency_id incident_id alert_id volunteer_id event at details"
    )
    presence = _presence(agency_id, volunteers, rng)
    await copy_rows(
        conn, "coverage_presence", presence, "volunteer_id agency_id hour_of_week cell last_seen_at"
    )
    await conn.execute("VACUUM ANALYZE")
    print(
        f"loaded: {len(incidents):,} incidents, {len(alerts):,} alerts, {len(events):,}"
        f" response-log events, {len(volunteers):,} volunteers, {len(presence):,} presence rows"
        f" (built {built - started:.0f} s, copied and analysed {time.perf_counter() - built:.0f} s)"
    )
    return agency_id, token, volunteers[len(volunteers) // 2]


def _timed(samples: dict[str, list[float]]) -> Any:
    @web.middleware
    async def timing(request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            label = request.headers.get("X-Bench", "")
            samples.setdefault(label, []).append((time.perf_counter() - started) * 1000)

    return timing


async def _reused(conn: asyncpg.Connection) -> tuple[UUID, str, int]:
    await migrate(conn)
    await conn.execute("DELETE FROM activations_cache")
    agency_id: UUID = await conn.fetchval("SELECT id FROM agencies WHERE name = 'Bench'")
    _, token = await agency_store.create_supervisor(conn, agency_id=agency_id, name="Sup")
    volunteers = [r["id"] for r in await conn.fetch("SELECT id FROM volunteers ORDER BY id")]
    print(f"reused: {await conn.fetchval('SELECT current_database()')}, nothing kept")
    return agency_id, token, volunteers[len(volunteers) // 2]


async def run(args: argparse.Namespace) -> None:
    print(await calibration_line(args.database_url))
    if args.reuse:
        conn = await asyncpg.connect(args.reuse)
        try:
            agency_id, token, volunteer_id = await _reused(conn)
        finally:
            await conn.close()
        await _measure(args.reuse, agency_id, token, volunteer_id, args)
        await _write_cost(args.reuse, args)
        return
    async with scratch_database(args.database_url, "dispatch_bench_review", keep=args.keep) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            # Binary COPY needs jsonb's binary form: a version byte, then the text.
            await conn.set_type_codec(
                "jsonb",
                encoder=lambda v: b"\x01" + v.encode(),
                decoder=lambda v: v[1:].decode(),
                schema="pg_catalog",
                format="binary",
            )
            await migrate(conn)
            agency_id, token, volunteer_id = await _fill(conn, args)
        finally:
            await conn.close()
        try:
            await _measure(dsn, agency_id, token, volunteer_id, args)
            await _write_cost(dsn, args)
        finally:
            if args.keep:
                print(f"kept: {dsn} (agency {agency_id})")


async def _measure(
    dsn: str, agency_id: UUID, token: str, volunteer_id: int, args: argparse.Namespace
) -> None:
    settings = Settings(
        database_url=dsn,
        notifier_enabled=False,
        ticker_enabled=False,
        feeds_enabled=False,
        db_command_timeout_s=300,
        report_warmup_s=args.warmup_tick,
    )
    app = create_app(settings)
    samples: dict[str, list[float]] = {}
    app.middlewares.insert(0, _timed(samples))
    runner, root = await serve_locally(app)
    base = f"{root}/v1/agencies/{agency_id}"
    rng = random.Random(3)
    now = datetime.now(UTC)
    year = {"from": f"{now.year - 1}-01-01", "to": f"{now.year - 1}-12-31"}
    # Last year's months: settled, so kept by the warm-up.
    months = [
        {
            "from": f"{now.year - 1}-{m:02d}-01",
            "to": f"{now.year - 1}-{m:02d}-{_last_day(now.year - 1, m):02d}",
        }
        for m in range(1, 13)
    ]
    # Each a new range: 23:59:59, 23:59:58, ... on the last day of the year (UTC+1 in winter).
    fresh_ends = (
        f"{now.year - 1}-12-31T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+01:00"
        for s in range(24 * 3600 - 1, 0, -1)
    )
    month_ago = (now - timedelta(days=30)).date().isoformat()
    lists = {
        "list: no filter": {},
        "list: cardiac arrests, not test": {"cardiac_arrest": "true", "test": "false"},
        "list: closed, last 30 days": {"state": "closed", "from": month_ago},
        "list: call type 26-A-01": {"call_type": "26-A-01"},
        "list: state cancelled": {"state": "cancelled"},
        "list: text 'kalverstraat 12'": {"q": "kalverstraat 12"},
        "list: CSV, cardiac arrests": {"cardiac_arrest": "true", "format": "csv"},
    }
    cases: dict[str, Callable[[], tuple[str, dict[str, str]]]] = {
        "unit: volunteer by primary key": lambda: (f"{base}/volunteers/{volunteer_id}", {}),
        **{label: (lambda p=params: (f"{base}/incidents", p)) for label, params in lists.items()},
        "report: year, kept after warm-up": lambda: (
            f"{base}/reports/activations",
            year,
        ),
        "report: month, kept after warm-up": lambda: (
            f"{base}/reports/activations",
            rng.choice(months),
        ),
        "report: year, computed afresh": lambda: (
            f"{base}/reports/activations",
            {"from": year["from"], "to": next(fresh_ends)},
        ),
        "report: default 12 months, afresh": lambda: (
            f"{base}/reports/activations",
            {},
        ),
        "coverage report, random hour": lambda: (
            f"{base}/reports/coverage",
            {"hour": str(rng.randrange(168))},
        ),
    }
    headers = {"Authorization": f"Bearer {token}"}
    try:
        warmed_in = await _until_kept(dsn, agency_id)
        print(f"background warm-up: every standard report kept {warmed_in:.1f} s after start")
        # Housekeeping's first round purged the presence that aged out of the 28 days since
        # the load. PostgreSQL's autovacuum (on by default) vacuums such a table within a
        # minute, which lets the coverage report read its index alone; this machine's server
        # runs without it, so the bench does what it would.
        vacuum = await asyncpg.connect(dsn)
        try:
            await vacuum.execute("VACUUM ANALYZE", timeout=600)
        finally:
            await vacuum.close()
        async with aiohttp.ClientSession() as session:

            async def call(label: str) -> None:
                url, params = cases[label]()
                async with session.get(
                    url, params=params, headers={**headers, "X-Bench": label}
                ) as resp:
                    await resp.read()
                    assert resp.status == 200, (label, resp.status, await resp.text())

            for label in cases:  # warm every plan and cache once
                await call(label)
            samples.clear()
            heavy = {
                "report: year, computed afresh",
                "report: default 12 months, afresh",
            }
            for _ in range(args.runs):
                for label in cases:
                    if label not in heavy:
                        await call(label)
            for _ in range(args.report_runs):
                for label in heavy:
                    await call(label)
        unit = percentile(samples["unit: volunteer by primary key"], 99)
        print(
            f"server time, {args.runs} requests each"
            f" ({args.report_runs} for the reports computed afresh):"
        )
        for label in cases:
            print(p99_line(label, samples[label], unit))
        await _late_change(dsn, agency_id, args)
    finally:
        await runner.cleanup()


def _last_day(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


async def _kept_status(conn: asyncpg.Connection, agency_id: UUID) -> tuple[int, int]:
    """(standard reports valid now, standard reports there are) for the agency."""
    now, first, zone = await conn.fetchrow(
        """
        SELECT now(), (SELECT min(received_at) FROM incidents WHERE agency_id = $1), time_zone
        FROM agencies WHERE id = $1
        """,
        agency_id,
    )
    ranges = standard_ranges(agency_time_zone(agency_id, zone), now, first)
    valid: int = await conn.fetchval(
        """
        SELECT count(*) FROM activations_cache c
        WHERE c.agency_id = $1 AND c.warmed
          AND (c.range_from, c.range_to) IN (
              SELECT * FROM unnest($2::timestamptz[], $3::timestamptz[]))
          AND c.changes = coalesce(
              (SELECT k.changes FROM report_changes k WHERE k.agency_id = $1), 0)
        """,
        agency_id,
        [r[0] for r in ranges],
        [r[1] for r in ranges],
    )
    return valid, len(ranges)


async def _until_kept(dsn: str, agency_id: UUID, timeout_s: float = 900) -> float:
    """Seconds until every standard report of the agency is kept and valid."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        while time.perf_counter() - started < timeout_s:
            valid, wanted = await _kept_status(conn, agency_id)
            if valid == wanted:
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise RuntimeError("the background warm-up did not finish")


async def _late_change(dsn: str, agency_id: UUID, args: argparse.Namespace) -> None:
    """A late accept for an alert of last year's summer: every kept report goes invalid;
    how long until housekeeping has them all again."""
    conn = await asyncpg.connect(dsn)
    try:
        _, wanted = await _kept_status(conn, agency_id)
        await conn.execute(
            """
            INSERT INTO response_log (agency_id, incident_id, alert_id, volunteer_id, event, at)
            SELECT a.agency_id, a.incident_id, a.id, a.volunteer_id, 'alert_accepted',
                   i.created_at + interval '60 s'
            FROM alerts a JOIN incidents i ON i.id = a.incident_id
            WHERE a.agency_id = $1 AND i.received_at < now() - interval '300 days'
              AND NOT EXISTS (SELECT 1 FROM alert_firsts f
                              WHERE f.alert_id = a.id AND f.event = 'alert_accepted')
            LIMIT 1
            """,
            agency_id,
        )
        valid, _ = await _kept_status(conn, agency_id)
    finally:
        await conn.close()
    again = await _until_kept(dsn, agency_id)
    print(
        f"after a late change ({valid} of {wanted} kept reports still valid): all kept again"
        f" {again:.1f} s later (warm-up tick {args.warmup_tick:g} s)"
    )


# Per variant of the write path, the triggers turned off (table, trigger) while it runs.
_WRITE_VARIANTS: dict[str, tuple[tuple[str, str], ...]] = {
    "plain": (("response_log", "incident_review_record"),),
    "summary": (
        ("incident_review", "incident_review_report_inserted"),
        ("incident_review", "incident_review_report_updated"),
    ),
    "summary + change count": (),
}
_LOG_ANSWERS = """
    INSERT INTO response_log (agency_id, incident_id, alert_id, event, at)
    SELECT $1, $2, $3, e, now() FROM unnest(
        ARRAY['alert_sent', 'alert_accepted', 'alert_on_scene']) AS e
"""


async def _write_cost(dsn: str, args: argparse.Namespace) -> None:
    """What the summary trigger and the change count add to the write path: one statement
    logging an alert's sent, accepted and on-scene events (new alerts each time), plain (the
    summary trigger off), with the summary trigger but not the change-count triggers of
    migration 0018 on its table, and with both. For alerts of a live incident (received an
    hour ago: the change count only looks) and of a past one (a late answer: it counts a
    change). The live incidents' received times are put back afterwards."""
    conn = await asyncpg.connect(dsn)
    blocks = max(1, args.runs // 19)
    try:
        picks = await conn.fetch(
            "SELECT id, incident_id, agency_id FROM alerts ORDER BY random() LIMIT $1",
            2 * len(_WRITE_VARIANTS) * 20 * blocks,
        )
        await conn.execute(
            "DELETE FROM alert_firsts WHERE alert_id = ANY($1::uuid[])", [p["id"] for p in picks]
        )
        live, past = picks[: len(picks) // 2], picks[len(picks) // 2 :]
        moved = await conn.fetch(
            """
            UPDATE incidents i SET received_at = now() - interval '1 hour'
            FROM (SELECT id, received_at FROM incidents WHERE id = ANY($1::uuid[])) o
            WHERE i.id = o.id RETURNING i.id, o.received_at
            """,
            list({p["incident_id"] for p in live}),
        )
        timings: dict[str, list[float]] = {}
        try:
            for kind, rows in (("live", live), ("past", past)):
                rest = iter(rows)
                for _ in range(blocks):
                    for label, off in _WRITE_VARIANTS.items():
                        timings.setdefault(f"{kind}: {label}", []).extend(
                            await _write_block(conn, off, [next(rest) for _ in range(20)])
                        )
        finally:
            await conn.execute(
                "UPDATE incidents i SET received_at = o.at FROM unnest($1::uuid[],"
                " $2::timestamptz[]) o(id, at) WHERE i.id = o.id",
                [m["id"] for m in moved],
                [m["received_at"] for m in moved],
            )
    finally:
        await conn.close()
    count = len(timings["live: plain"])
    print(
        "write path: one statement logging an alert's three answers, in blocks of 20 in one"
        f" transaction, p50 ({count} each):"
    )
    for kind in ("live", "past"):
        plain = statistics.median(timings[f"{kind}: plain"])
        for label in _WRITE_VARIANTS:
            p50 = statistics.median(timings[f"{kind}: {label}"])
            print(
                f"  {kind + ': ' + label:30s} {p50:7.3f} ms  = {p50 / plain:5.2f}x the plain"
                f" insert  (+{p50 - plain:.3f} ms)"
            )


async def _write_block(
    conn: asyncpg.Connection, off: tuple[tuple[str, str], ...], picks: list[Any]
) -> list[float]:
    """Times of the statements of one block but its first (planned after the switch)."""
    for table, trigger in off:
        await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    times = []
    try:
        # The statement's own time (its triggers run at its end), without a commit's WAL
        # flush, which is the same for every variant.
        async with conn.transaction():
            for n, pick in enumerate(picks):
                started = time.perf_counter()
                await conn.execute(_LOG_ANSWERS, pick["agency_id"], pick["incident_id"], pick["id"])
                if n > 0:
                    times.append((time.perf_counter() - started) * 1000)
    finally:
        for table, trigger in off:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="postgresql://127.0.0.1/postgres")
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--years", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--report-runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", help="a database a --keep run loaded: measure it again")
    parser.add_argument(
        "--warmup-tick", type=float, default=5.0, help="DISPATCH_REPORT_WARMUP_S of the service"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
