"""``dispatch serve --demo``: a demo agency, a few hundred volunteers, and the curl to try it."""

from __future__ import annotations

import math
import random
import shlex
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

from aiohttp import web

from dispatch.store import agencies as agency_store
from dispatch.store import volunteers as volunteer_store
from dispatch.store.volunteers import PositionRow
from dispatch.web import app_keys as keys

DEMO_AGENCY_NAME: Final = "Demo agency (Amsterdam)"
# Amsterdam, Dam Square: a real city centre with a dense, walkable core.
CENTRE: Final = (52.3731, 4.8926)
VOLUNTEERS: Final = 300
SPREAD_M: Final = 2500.0
_M_PER_DEG_LAT: Final = 111_320.0


def _scatter(
    rng: random.Random, now: datetime, agency_id: Any, ids: list[int]
) -> list[PositionRow]:
    rows = []
    lat0, lon0 = CENTRE
    for volunteer_id in ids:
        # Denser near the centre, like a city's daytime population.
        distance = SPREAD_M * rng.random() ** 1.5
        bearing = rng.uniform(0, 2 * math.pi)
        lat = lat0 + distance * math.cos(bearing) / _M_PER_DEG_LAT
        lon = lon0 + distance * math.sin(bearing) / (_M_PER_DEG_LAT * math.cos(math.radians(lat0)))
        rows.append(PositionRow(volunteer_id, agency_id, lat, lon, 10.0, now))
    return rows


async def demo_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create (or refresh) the demo agency and its volunteers, then print how to try it."""
    pool = app[keys.POOL]
    now = app[keys.CLOCK].now()
    rng = random.Random(42)  # noqa: S311 - synthetic positions, not secrets
    async with pool.acquire() as conn:
        agency_id = await agency_store.id_by_name(conn, DEMO_AGENCY_NAME)
        if agency_id is None:
            agency_id, key = await agency_store.create_agency(conn, name=DEMO_AGENCY_NAME)
            for n in range(VOLUNTEERS):
                await volunteer_store.create_volunteer(
                    conn, agency_id=agency_id, display_name=f"Demo volunteer {n + 1}"
                )
        else:
            # Keys are stored hashed, so a restarted demo gets a fresh one to print.
            key = await agency_store.add_demo_key(conn, agency_id)
        ids = await volunteer_store.ids_of_agency(conn, agency_id)
        rows = _scatter(rng, now, agency_id, ids)
        await volunteer_store.upsert_positions(conn, rows)
    cache = app[keys.POSITIONS]
    for row in rows:
        cache.upsert(row)
    _print_instructions(app, agency_id, key, now)
    yield


def _print_instructions(app: web.Application, agency_id: Any, key: str, now: datetime) -> None:
    settings = app[keys.SETTINGS]
    base = settings.public_base_url or f"http://{settings.host}:{settings.port}"
    incident = (
        '{"incident_id": "demo-' + now.strftime("%H%M%S") + '", '
        '"call_type": {"code": "09-E-01", "text": "Cardiac arrest"}, '
        '"is_cardiac_arrest": true, "received_at": "' + now.isoformat(timespec="seconds") + '", '
        '"location": {"lat": 52.3731, "lon": 4.8926}, '
        '"place_type": "public", "address": "Dam, Amsterdam"}'
    )
    post = (
        f"curl -sS -X POST {base}/v1/cad/{agency_id}/incidents "
        f"-H {shlex.quote('Authorization: Bearer ' + key)} "
        "-H 'Content-Type: application/json' "
        f"-d {shlex.quote(incident)}"
    )
    timeline = (
        f"curl -sS {base}/v1/incidents/INCIDENT_ID/timeline "
        f"-H {shlex.quote('Authorization: Bearer ' + key)}"
    )
    banner = f"""
================ demo ready ================
Agency {agency_id} with {VOLUNTEERS} synthetic volunteers around Dam Square, Amsterdam.
Integration key (shown once): {key}

1. Post a cardiac-arrest incident (7 nearest volunteers within 500 m get alerts):

{post}

2. Read its timeline (put the incident_id from step 1's answer in place of INCIDENT_ID):

{timeline}

Posting the same document again answers "unchanged" and alerts nobody twice.
============================================
"""
    sys.stdout.write(banner)
    sys.stdout.flush()
