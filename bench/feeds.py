"""One feed through the service's own poller: first poll, unchanged polls, a 304.

A Socrata-GeoJSON feed of ``--items`` incidents (about 300 bytes each, as Seattle's export)
is served by a local aiohttp server; ``FeedPoller.poll`` fetches, maps and ingests it into a
fresh database. Prints the seconds of the first poll (every item created), of an unchanged
poll (every item compared with what intake holds) and of a poll answered 304, with the time
``json.loads`` and the mapping alone take on the same body as the baseline line. Not a
test: numbers only.

    python bench/feeds.py [--items 1500] [--polls 5]
        [--database-url postgresql://127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import asyncpg

# Ahead of this folder, whose dispatch.py would otherwise shadow the dispatch package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.calibration import calibration_line
from bench.common import bench_parser, scratch_database
from cad_adapters.feed import FeedMapping, map_document
from cad_adapters.feed_templates import template_mapping
from dispatch.config import Settings
from dispatch.db.migrate import migrate
from dispatch.db.pool import open_pool
from dispatch.domain.clock import SystemClock
from dispatch.logging_setup import configure_logging
from dispatch.service.positions import PositionCache
from dispatch.store import feeds as feed_store
from dispatch.workers.cad_poller import FeedPoller
from tests.fakes.feed_server import FeedServer, serving


def _document(items: int) -> dict[str, Any]:
    # Socrata's floating times: no zone, read in the agency's (UTC here).
    start = datetime.now(UTC).replace(microsecond=0, tzinfo=None) - timedelta(minutes=20)
    features = []
    for i in range(items):
        lat, lon = 47.5 + (i % 300) * 0.001, -122.4 + (i // 300) * 0.001
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "address": f"{100 + i} Example Av N",
                    "type": "Aid Response" if i % 3 else "Medic Response",
                    "datetime": (start + timedelta(seconds=i)).isoformat() + ".000",
                    "latitude": f"{lat:.6f}",
                    "longitude": f"{lon:.6f}",
                    "incident_number": f"F26{i:07d}",
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


async def _poll(poller: FeedPoller, pool: asyncpg.Pool, feed_id: int) -> tuple[float, str]:
    async with pool.acquire() as conn:
        await conn.execute("UPDATE cad_feeds SET next_poll_at = now() WHERE id = $1", feed_id)
        (feed,) = await feed_store.claim_due(conn, datetime.now(UTC), timedelta(seconds=90))
    started = time.perf_counter()
    await poller.poll(feed)
    elapsed = time.perf_counter() - started
    async with pool.acquire() as conn:
        result = await conn.fetchval("SELECT last_result FROM cad_feeds WHERE id = $1", feed_id)
    return elapsed, result


async def run(args: argparse.Namespace) -> None:
    configure_logging(log_format="console", level="warning", stream=sys.stderr)
    print(await calibration_line(args.database_url), flush=True)
    fake = FeedServer(document=_document(args.items), conditional=False)
    body = fake.body()
    mapping = FeedMapping.from_config(template_mapping("socrata-geojson"))
    started = time.perf_counter()
    for _ in range(5):
        document = json.loads(body)
    decode_s = (time.perf_counter() - started) / 5
    started = time.perf_counter()
    for _ in range(5):
        snapshot = map_document(document, mapping, source="feed:b", now=datetime.now(UTC))
    map_s = (time.perf_counter() - started) / 5
    assert len(snapshot.items) == args.items
    print(
        f"baseline: {args.items} items, {len(body) / 1024:.0f} KiB; json.loads"
        f" {decode_s * 1000:.1f} ms, mapping {map_s * 1000:.1f} ms"
    )

    async with scratch_database(args.database_url, "dispatch_bench_feed") as dsn:
        settings = Settings(database_url=dsn, db_pool_max=4, db_command_timeout_s=120)
        async with (
            open_pool(dsn, settings) as pool,
            aiohttp.ClientSession() as http,
            serving(fake) as url,
        ):
            async with pool.acquire() as conn:
                await migrate(conn)
                agency_id = uuid4()
                await conn.execute(
                    "INSERT INTO agencies (id, name, time_zone) VALUES ($1, 'b', 'UTC')",
                    agency_id,
                )
                feed_id = await feed_store.create(
                    conn,
                    agency_id=agency_id,
                    name="bench",
                    url=url,
                    mapping=template_mapping("socrata-geojson"),
                    timeout_s=60,
                )
            poller = FeedPoller(
                pool, PositionCache(), http, SystemClock(), lambda: None, tick_s=1.0
            )
            first, result = await _poll(poller, pool, feed_id)
            print(f"first poll ({result}, {args.items} created): {first:.2f} s")
            again = []
            for _ in range(args.polls):
                elapsed, result = await _poll(poller, pool, feed_id)
                again.append(elapsed)
            median = statistics.median(again)
            print(
                f"unchanged poll ({result}): median {median * 1000:.0f} ms of {args.polls}"
                f" = {median / (decode_s + map_s):.1f}x json.loads + mapping"
            )
            fake.conditional = True
            await _poll(poller, pool, feed_id)  # hands out the validators
            not_modified, result = await _poll(poller, pool, feed_id)
            print(f"conditional poll ({result}): {not_modified * 1000:.1f} ms")


def main() -> None:
    asyncio.run(run(bench_parser(__doc__, items=1500, polls=5).parse_args()))


if __name__ == "__main__":
    main()
