"""What the volunteer's app reads about its alert: the address only while responding, why it
ended, and whether the aftercare question is open."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, incident, new_volunteer, offset

ADDRESS = "Damrak 1, Amsterdam"


async def test_the_address_follows_the_answer_and_the_end_is_explained(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    _, token = await new_volunteer(client, agency)
    auth = {"Authorization": f"Bearer {token}"}
    lat, lon = offset(*CENTRE, 60, 0)
    await client.put("/v1/me/location", json={"lat": lat, "lon": lon}, headers=auth)
    doc = incident("view-1", address=ADDRESS)
    resp = await client.post(f"/v1/cad/{agency.agency_id}/incidents", json=doc, headers=agency.auth)
    assert (await resp.json())["alerts_queued"] == 1
    alert_id = await db.fetchval("SELECT id FROM alerts")

    async def view() -> dict[str, Any]:
        resp = await client.get(f"/v1/alerts/{alert_id}", headers=auth)
        assert resp.status == 200
        found: dict[str, Any] = await resp.json()
        return found

    waiting = await view()
    assert waiting["patient"]["address"] is None
    assert waiting["patient"]["lat"] == CENTRE[0]
    assert (waiting["incident_status"], waiting["ended_reason"], waiting["test"]) == (
        "active",
        None,
        False,
    )
    assert waiting["aftercare"] == {"asked": False, "answered": False}

    await client.post(f"/v1/alerts/{alert_id}/accept", headers=auth)
    assert (await view())["patient"]["address"] == ADDRESS

    closed = {**doc, "status": "cancelled", "version": 2}
    await client.post(f"/v1/cad/{agency.agency_id}/incidents", json=closed, headers=agency.auth)
    ended = await view()
    assert (ended["state"], ended["incident_status"]) == ("released", "cancelled")
    assert ended["ended_reason"] == "incident_ended"
    assert ended["patient"]["address"] is None
    assert ended["aftercare"] == {"asked": True, "answered": False}

    resp = await client.post(
        f"/v1/alerts/{alert_id}/feedback", json={"wants_to_talk": False}, headers=auth
    )
    assert resp.status == 201
    assert (await view())["aftercare"] == {"asked": True, "answered": True}
