"""Small builders shared by the dispatch tests."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg

from dispatch.config import Settings
from dispatch.domain.delivery_chain import Reach, Step, plan
from tests.dispatch.serve_process import run_cli
from tests.fakes.twilio_server import FakeTwilio

# Dam Square, Amsterdam.
CENTRE = (52.3731, 4.8926)
_M_PER_DEG_LAT = 111_320.0


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """A point ``north_m``/``east_m`` metres from (lat, lon), good to well under a metre at 2 km."""
    return (
        lat + north_m / _M_PER_DEG_LAT,
        lon + east_m / (_M_PER_DEG_LAT * math.cos(math.radians(lat))),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class AgencyAuth:
    """Request headers for what holds an agency's integration ``key`` (``auth``) and its
    ``supervisor_token`` (``supervisor_auth``)."""

    key: str
    supervisor_token: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.key)

    @property
    def supervisor_auth(self) -> dict[str, str]:
        return bearer(self.supervisor_token)


async def cli_agency(env: Mapping[str, str], name: str) -> tuple[str, str]:
    """An agency made with ``dispatch agency create``: ``(agency id, integration key)``."""
    agency = await run_cli(env, "agency", "create", "--name", name)
    return agency["agency_id"], agency["integration_key"]


def sms_through(settings: Settings, twilio: FakeTwilio) -> Settings:
    """``settings`` sending SMS through the fake Twilio, with a rate limit tests never meet."""
    return dataclasses.replace(
        settings,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_from_number="+15550000000",
        twilio_base_url=twilio.url,
        sms_rate_per_s=50.0,
    )


async def post_aeds(
    client: Any, agency: Any, body: str | bytes, content_type: str = "text/csv"
) -> Any:
    """``agency``'s supervisor imports an AED file (CSV, or GeoJSON by ``content_type``)."""
    return await client.post(
        f"/v1/agencies/{agency.agency_id}/aeds",
        data=body,
        headers={**agency.supervisor_auth, "Content-Type": content_type},
    )


async def new_volunteer(
    client: Any, agency: Any, name: str = "V", **fields: Any
) -> tuple[int, str]:
    """A volunteer made by ``agency``'s supervisor over the API: ``(volunteer id, token)``."""
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": name, **fields},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return body["volunteer_id"], body["token"]


async def report_position(client: Any, token: str, lat: float, lon: float, **extra: Any) -> None:
    """The volunteer with ``token`` reports being at (lat, lon) (plus ``extra`` body fields)."""
    resp = await client.put(
        "/v1/me/location",
        json={"lat": lat, "lon": lon, **extra},
        headers=bearer(token),
    )
    assert resp.status == 204, await resp.text()


async def volunteer_at(
    client: Any, agency: Any, point: tuple[float, float], name: str = "V", **fields: Any
) -> tuple[int, str]:
    """``new_volunteer`` who has reported being at ``point``: ``(volunteer id, token)``."""
    volunteer_id, token = await new_volunteer(client, agency, name, **fields)
    await report_position(client, token, *point)
    return volunteer_id, token


async def volunteers_near(
    client: Any, agency: Any, point: tuple[float, float], n: int, *, step_m: float
) -> dict[int, str]:
    """``n`` professional volunteers, the i-th reporting a position (i + 1) × ``step_m``
    north of ``point``: ``{volunteer id: token}``."""
    tokens = {}
    for i in range(n):
        north = offset(*point, step_m * (i + 1), 0)
        volunteer_id, token = await volunteer_at(
            client, agency, north, f"V{i}", tier="professional"
        )
        tokens[volunteer_id] = token
    return tokens


CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"


def cap_alert(
    identifier: str,
    msg_type: str,
    sent: str,
    point: tuple[float, float],
    *,
    place: str = "Dam",
    references: str = "",
    event: str = "CA",
) -> bytes:
    """A CAP 1.2 cardiac-arrest alert from cad@example.org, a 10 m circle at ``point``."""
    refs = f"<references>{references}</references>" if references else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{CAP_NS}">
  <identifier>{identifier}</identifier><sender>cad@example.org</sender>
  <sent>{sent}</sent><status>Actual</status><msgType>{msg_type}</msgType>
  <scope>Private</scope>{refs}
  <info><category>Health</category><event>Cardiac arrest</event><urgency>Immediate</urgency>
    <severity>Extreme</severity><certainty>Observed</certainty>
    <eventCode><valueName>cad</valueName><value>{event}</value></eventCode>
    <area><areaDesc>{place}</areaDesc><circle>{point[0]},{point[1]} 0.01</circle></area>
  </info>
</alert>""".encode()


def chain_offsets(
    reach: Reach, configured: frozenset[Step], now: datetime
) -> list[tuple[str, float]]:
    """The delivery chain ``plan`` makes (15 s ack window, next channel 45 s later), as
    ``(step, seconds after now)``."""
    return [
        (s.step.value, (s.at - now).total_seconds())
        for s in plan(
            reach, configured=configured, now=now, ack_timeout_s=15, next_channel_after_s=45
        )
    ]


async def boards(resp: Any) -> AsyncIterator[dict[str, Any]]:
    """The ``board`` events of a console event stream (an aiohttp response), as sent."""
    event = None
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "board":
            board: dict[str, Any] = json.loads(line.removeprefix("data: "))
            yield board


_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")


def shift_stamps(value: Any, delta: timedelta) -> Any:
    """``value`` with every ISO 8601 time stamp moved by ``delta``, offsets kept.

    Fixtures are written at fixed dates; intake refuses to alert for an incident
    received too long ago, so tests that expect alerts move them to the present.
    """
    if isinstance(value, dict):
        return {k: shift_stamps(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_stamps(v, delta) for v in value]
    if isinstance(value, str) and _STAMP.match(value):
        moved = (datetime.fromisoformat(value) + delta).isoformat()
        return moved.replace("+00:00", "Z") if value.endswith("Z") else moved
    return value


def incident(incident_id: str = "inc-1", **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "incident_id": incident_id,
        "call_type": {"code": "09-E-01", "text": "Cardiac arrest"},
        "is_cardiac_arrest": True,
        "received_at": datetime.now(UTC).isoformat(),
        "location": {"lat": CENTRE[0], "lon": CENTRE[1]},
        "place_type": "public",
    }
    doc.update(overrides)
    return doc


TABLES = (
    "agencies",
    "agency_keys",
    "supervisors",
    "volunteers",
    "volunteer_positions",
    "incidents",
    "alerts",
    "outbox",
    "response_log",
)


async def snapshot(db: asyncpg.Connection) -> dict[str, list[str]]:
    """Every row of every table, as text: equal snapshots mean nothing changed."""
    result = {}
    for table in TABLES:
        rows = await db.fetch(f"SELECT t::text AS row FROM {table} t ORDER BY 1")
        result[table] = [r["row"] for r in rows]
    return result


async def drained(db: asyncpg.Connection, *, positions: int = 0, timeout_s: float = 10.0) -> None:
    """Wait until the notifier finished every outbox row and ``positions`` fixes are persisted.

    Both happen in background workers; snapshots compared before and after a
    request must not catch them half-way.
    """

    async def settled() -> bool:
        pending = await db.fetchval("SELECT count(*) FROM outbox WHERE done_at IS NULL")
        stored = await db.fetchval("SELECT count(*) FROM volunteer_positions")
        return bool(pending == 0 and stored >= positions)

    await wait_until(settled, timeout_s=timeout_s, what="outbox drained and positions stored")


T = TypeVar("T")


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float = 10.0,
    every_s: float = 0.02,
    what: str = "the condition",
    show: Callable[[], object] | None = None,
) -> T:
    """Ask ``check`` every ``every_s`` until it answers something true, and return that.

    For what a background worker or another process does in its own time; fails by name
    after ``timeout_s`` (with ``show()`` in the message, when given) instead of hanging.
    """
    last: T | None = None
    try:
        async with asyncio.timeout(timeout_s):
            while not (last := await check()):
                await asyncio.sleep(every_s)
    except TimeoutError:
        seen = f"; last seen: {show()}" if show is not None else f"; last answer: {last!r}"
        raise AssertionError(f"{what} not met within {timeout_s} s{seen}") from None
    return last


async def bare_incident(conn: Any, agency_id: Any, name: str, *, source: str = "test") -> UUID:
    """An active incident row and nothing else (no report, no alerts): for the delivery chain's
    tests and benchmarks, which only need alerts to hang off an incident."""
    incident_id = uuid4()
    await conn.execute(
        """
        INSERT INTO incidents (id, agency_id, source, source_incident_id, version_at, version_seq,
                               content_hash, status, is_test, call_type_code, place_type,
                               received_at, report)
        VALUES ($1, $2, $4, $3, now(), 1, '\\x00', 'active', false, '09-E-01', 'public',
                now(), '{}')
        """,
        incident_id,
        agency_id,
        name,
        source,
    )
    return incident_id
