"""Load that one agency or client can put on the server, and the latency another agency sees.

Shared by ``bench/isolation.py`` (which prints the ratio) and the isolation test (which
only checks that no intake request stalls): a large AED import, a flood of requests with
wrong keys, and CAD intake paced at a steady rate for a measured agency.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import aiohttp
import asyncpg

from dispatch.secrets import TokenKind
from dispatch.store import agencies as agency_store
from tests.dispatch.helpers import CENTRE, AgencyAuth, incident

# Volunteers are spread over a square this wide around CENTRE, dense enough that every
# incident at a random spot in it has some 40 within the default 500 m radius.
SPREAD_DEG = 0.18


@dataclass(frozen=True)
class Agency(AgencyAuth):
    agency_id: UUID
    key: str
    supervisor_token: str


async def new_agency(conn: asyncpg.Connection, name: str, *, volunteers: int = 0) -> Agency:
    """An agency with a supervisor and ``volunteers`` certified volunteers spread out."""
    agency_id, key = await agency_store.create_agency(conn, name=name)
    _, supervisor = await agency_store.create_supervisor(conn, agency_id=agency_id, name="Sup")
    await conn.execute("UPDATE agencies SET intake_rate_per_min = 100000 WHERE id = $1", agency_id)
    if volunteers:
        rng = random.Random(str(agency_id))
        until = datetime.now(UTC) + timedelta(days=365)
        ids = await conn.fetch(
            """
            INSERT INTO volunteers (agency_id, display_name, token_hash, certified_until)
            SELECT $1, 'load', decode(md5(random()::text || g::text), 'hex'), $2
            FROM generate_series(1, $3) AS g RETURNING id
            """,
            agency_id,
            until,
            volunteers,
        )
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "volunteer_positions",
            records=[
                (
                    r["id"],
                    agency_id,
                    CENTRE[0] + rng.uniform(-SPREAD_DEG, SPREAD_DEG) / 2,
                    CENTRE[1] + rng.uniform(-SPREAD_DEG, SPREAD_DEG),
                    now,
                )
                for r in ids
            ],
            columns=["volunteer_id", "agency_id", "lat", "lon", "reported_at"],
        )
    return Agency(agency_id, key, supervisor)


def aed_csv(rows: int) -> bytes:
    """A registry export of ``rows`` AEDs, as a supervisor would upload it (under 1 MiB)."""
    rng = random.Random(rows)
    lines = ["id,name,lat,lon"]
    for i in range(rows):
        lat = CENTRE[0] + rng.uniform(-0.5, 0.5)
        lon = CENTRE[1] + rng.uniform(-0.8, 0.8)
        lines.append(f"{i:x},A,{lat:.3f},{lon:.3f}")
    return ("\n".join(lines) + "\n").encode()


async def import_aeds(
    session: aiohttp.ClientSession, base: str, agency: Agency, body: bytes
) -> tuple[int, float]:
    """POST the file; returns (HTTP status, seconds)."""
    started = time.perf_counter()
    async with session.post(
        f"{base}/v1/agencies/{agency.agency_id}/aeds",
        data=body,
        headers={**agency.supervisor_auth, "Content-Type": "text/csv"},
    ) as resp:
        await resp.read()
        return resp.status, time.perf_counter() - started


@dataclass
class FloodResult:
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


async def wrong_key_flood(
    base: str, agency_ids: list[UUID], *, count: int, concurrency: int
) -> FloodResult:
    """``count`` intake requests, each with a fresh well-formed but wrong key."""
    result = FloodResult()
    body = b'{"incident_id": "x"}'
    remaining = iter(range(count))

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in remaining:
            key = f"{TokenKind.AGENCY_KEY.value}_{secrets.token_urlsafe(32)}"
            url = f"{base}/v1/cad/{agency_ids[n % len(agency_ids)]}/incidents"
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    status = resp.status
            except aiohttp.ClientError:
                status = 0
            result.statuses[status] = result.statuses.get(status, 0) + 1

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class IntakeSamples:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def paced_intake(
    session: aiohttp.ClientSession,
    base: str,
    agency: Agency,
    *,
    interval_s: float,
    until: asyncio.Event,
    prefix: str,
    minimum: int = 0,
) -> IntakeSamples:
    """One CAD document every ``interval_s`` (one at a time) until ``until`` is set.

    Each is a new cardiac arrest at a random spot among the agency's volunteers, so
    every request runs the whole intake: key, parse, upsert, match, alerts.
    """
    samples = IntakeSamples()
    rng = random.Random(prefix)
    url = f"{base}/v1/cad/{agency.agency_id}/incidents"
    n = 0
    next_at = time.perf_counter()
    while not until.is_set() or n < minimum:
        lat = CENTRE[0] + rng.uniform(-SPREAD_DEG, SPREAD_DEG) / 2.5
        lon = CENTRE[1] + rng.uniform(-SPREAD_DEG, SPREAD_DEG) / 1.25
        doc: dict[str, Any] = incident(f"{prefix}-{n}", location={"lat": lat, "lon": lon})
        started = time.perf_counter()
        async with session.post(url, json=doc, headers=agency.auth) as resp:
            await resp.read()
            samples.statuses[resp.status] = samples.statuses.get(resp.status, 0) + 1
        samples.latencies_ms.append((time.perf_counter() - started) * 1000)
        n += 1
        next_at += interval_s
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return samples
