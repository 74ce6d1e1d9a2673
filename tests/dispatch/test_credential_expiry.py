"""A credential's life on the drill clock: reminders, the end at local midnight, a renewal.

The app runs on the drill clock (``DISPATCH_CLOCK_OFFSET_FILE``) as in a drill: the test
moves it to the moments that matter in the agency's time zone.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dispatch.config import Settings
from dispatch.web.app import create_app
from tests.dispatch.accounts_helpers import sent, sign_up
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, bearer, incident, offset, wait_until

ZONE = ZoneInfo("Europe/Amsterdam")


class DrillClock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = time.time_ns()

    def set(self, local: datetime) -> None:
        """Make the service's "now" this local time (from this moment on)."""
        self.path.write_text(str((local - datetime.now(UTC)).total_seconds()))
        # A new mtime each time, even within the file system's timestamp granularity.
        self._stamp = max(self._stamp + 1_000_000, time.time_ns())
        os.utime(self.path, ns=(self._stamp, self._stamp))


@pytest.fixture
async def drill(
    settings: Settings, aiohttp_client: Any, tmp_path: Path
) -> tuple[TestClient[web.Request, web.Application], DrillClock]:
    path = tmp_path / "clock"
    path.write_text("0")
    client = await aiohttp_client(create_app(settings.with_overrides(clock_offset_file=path)))
    return client, DrillClock(path)


def _at(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)


async def _notice(client: Any, kind: str, count: int) -> list[Any]:

    async def found() -> list[Any]:
        messages = [m for m in sent(client) if m.data.get("kind") == kind]
        return messages if len(messages) >= count else []

    return await wait_until(found, timeout_s=10, every_s=0.05, what=f"{count} {kind} notices")


class Volunteer:
    """A self-registered volunteer whose session is refreshed across the clock's jumps."""

    def __init__(self, client: Any, tokens: dict[str, Any]) -> None:
        self.client = client
        self.tokens = tokens

    async def auth(self) -> dict[str, str]:
        resp = await self.client.post(
            "/v1/volunteers/refresh", json={"refresh_token": self.tokens["refresh_token"]}
        )
        assert resp.status == 200, await resp.text()
        self.tokens = await resp.json()
        return bearer(self.tokens["access_token"])

    async def stand_near(self) -> None:
        lat, lon = offset(*CENTRE, 60, 0)
        resp = await self.client.put(
            "/v1/me/location", json={"lat": lat, "lon": lon}, headers=await self.auth()
        )
        assert resp.status == 204


async def _alerted(client: Any, agency: AgencyFixture, name: str, now: datetime) -> tuple[int, str]:
    """(alerts queued, incident id) for a new cardiac arrest next to the volunteer."""
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents",
        json=incident(name, received_at=now.isoformat()),
        headers=agency.auth,
    )
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    return body["alerts_queued"], body["incident_id"]


async def _in_amsterdam(client: Any, agency: AgencyFixture) -> None:
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"time_zone": "Europe/Amsterdam"},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200


async def _signed_up_before(
    client: Any, clock: DrillClock, agency: AgencyFixture, phone: str
) -> tuple[date, Volunteer]:
    """A volunteer of the agency (moved to Amsterdam) signed up at noon 20 days from now:
    ``(a date 40 days after that, for a credential to end on, the volunteer)``."""
    await _in_amsterdam(client, agency)
    expiry = datetime.now(ZONE).date() + timedelta(days=60)
    clock.set(_at(expiry - timedelta(days=40), 12, 0))
    return expiry, Volunteer(client, await sign_up(client, agency.agency_id, phone))


async def test_a_credential_ends_at_local_midnight_and_a_renewal_restores_alerts(
    drill: tuple[Any, DrillClock], agency: AgencyFixture
) -> None:
    client, clock = drill
    expiry, volunteer = await _signed_up_before(client, clock, agency, "+31633330001")
    declared = await client.post(
        "/v1/me/credentials",
        json={"kind": "cpr_bls", "issuer": "NRR", "expires_on": expiry.isoformat()},
        headers=await volunteer.auth(),
    )
    credential = await declared.json()
    approve = f"/v1/agencies/{agency.agency_id}/credentials/{credential['credential_id']}/approve"
    assert (await client.post(approve, headers=agency.supervisor_auth)).status == 200

    # Reminders at 09:00 local, 30 and 7 days before the expiry day.
    clock.set(_at(expiry - timedelta(days=30), 9, 1))
    (first,) = await _notice(client, "credential_reminder", 1)
    assert "30 days" in first.title
    assert expiry.isoformat() in first.body
    clock.set(_at(expiry - timedelta(days=7), 9, 1))
    reminders = await _notice(client, "credential_reminder", 2)
    assert "7 days" in reminders[1].title

    # One minute before local midnight: alerted. One minute after: not.
    clock.set(_at(expiry - timedelta(days=1), 23, 59))
    await volunteer.stand_near()
    queued, _ = await _alerted(
        client, agency, "before-midnight", _at(expiry - timedelta(days=1), 23, 59)
    )
    assert queued == 1
    clock.set(_at(expiry, 0, 1))
    await volunteer.stand_near()
    queued, incident_id = await _alerted(client, agency, "after-midnight", _at(expiry, 0, 1))
    assert queued == 0
    timeline = await client.get(f"/v1/incidents/{incident_id}/timeline", headers=agency.auth)
    matched = [e for e in (await timeline.json())["events"] if e["event"] == "matched"]
    assert matched[0]["details"]["excluded"] == {"certification_expired": 1}
    me = await (await client.get("/v1/me", headers=await volunteer.auth())).json()
    assert me["not_alertable_because"] == ["credential_expired"]

    # On the day, at 09:00, the volunteer is told why alerts stopped.
    clock.set(_at(expiry, 9, 1))
    (told,) = await _notice(client, "credential_expired", 1)
    assert "will not receive alerts" in told.body

    # A renewal, approved: alerted again.
    renewed = await client.post(
        "/v1/me/credentials",
        json={
            "kind": "cpr_bls",
            "issuer": "NRR",
            "expires_on": (expiry + timedelta(days=730)).isoformat(),
        },
        headers=await volunteer.auth(),
    )
    renewal = (await renewed.json())["credential_id"]
    approve = f"/v1/agencies/{agency.agency_id}/credentials/{renewal}/approve"
    assert (await client.post(approve, headers=agency.supervisor_auth)).status == 200
    await volunteer.stand_near()
    queued, _ = await _alerted(client, agency, "after-renewal", _at(expiry, 9, 2))
    assert queued == 1


async def test_reminders_of_a_renewed_credential_are_skipped(
    drill: tuple[Any, DrillClock], agency: AgencyFixture, db: Any
) -> None:
    client, clock = drill
    expiry, volunteer = await _signed_up_before(client, clock, agency, "+31633330002")
    ids = []
    for ends in (expiry, expiry + timedelta(days=365)):
        resp = await client.post(
            "/v1/me/credentials",
            json={"kind": "cpr_bls", "issuer": "NRR", "expires_on": ends.isoformat()},
            headers=await volunteer.auth(),
        )
        ids.append((await resp.json())["credential_id"])
        url = f"/v1/agencies/{agency.agency_id}/credentials/{ids[-1]}/approve"
        assert (await client.post(url, headers=agency.supervisor_auth)).status == 200
    clock.set(_at(expiry - timedelta(days=30), 9, 1))

    async def noticed() -> Any:
        return await db.fetchval(
            "SELECT outcome FROM volunteer_notices WHERE dedupe_key = $1",
            f"credential:{ids[0]}:30d",
        )

    await wait_until(noticed, timeout_s=10, every_s=0.05, what="the 30-day notice")
    assert (
        await db.fetchval(
            "SELECT outcome FROM volunteer_notices WHERE dedupe_key = $1",
            f"credential:{ids[0]}:30d",
        )
        == "skipped"
    )
    assert [m for m in sent(client) if m.data.get("kind") == "credential_reminder"] == []
