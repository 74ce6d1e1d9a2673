"""Supervisor and operator actions land in an append-only audit log the agency can read."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from dispatch.store import agencies as agency_store
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import bearer
from tests.dispatch.serve_process import run_cli


async def _entries(client: Any, agency: AgencyFixture) -> list[dict[str, Any]]:
    resp = await client.get(
        f"/v1/agencies/{agency.agency_id}/audit-log?limit=200", headers=agency.supervisor_auth
    )
    assert resp.status == 200
    entries: list[dict[str, Any]] = (await resp.json())["entries"]
    return entries


async def test_supervisor_actions_are_audited_with_before_and_after(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    sup = agency.supervisor_auth
    base = f"/v1/agencies/{agency.agency_id}"
    supervisor_id = await db.fetchval("SELECT id FROM supervisors")
    calls = [
        ("patch", f"{base}/settings", {"alert_ttl_s": 900}),
        ("put", f"{base}/policy", {"target_accepted": 2}),
        ("put", f"{base}/delivery-settings", {"push_ack_timeout_s": 20}),
        (
            "post",
            f"{base}/volunteers",
            {"display_name": "Secret Name", "phone_e164": "+31655550001"},
        ),
    ]
    for method, url, body in calls:
        resp = await getattr(client, method)(url, json=body, headers=sup)
        assert resp.status in (200, 201), await resp.text()
    volunteer_id = (await resp.json())["volunteer_id"]
    changed = await client.patch(
        f"{base}/volunteers/{volunteer_id}", json={"tier": "professional"}, headers=sup
    )
    assert changed.status == 200
    exported = await client.get(f"{base}/volunteers/{volunteer_id}/export", headers=sup)
    assert exported.status == 200
    assert (await exported.json())["profile"]["display_name"] == "Secret Name"
    entries = await _entries(client, agency)
    by_action = {e["action"]: e for e in entries}
    assert list(reversed([e["action"] for e in entries])) == [
        "settings_changed",
        "policy_changed",
        "delivery_settings_changed",
        "volunteer_created",
        "volunteer_token_issued",
        "volunteer_changed",
        "volunteer_exported",
    ]
    assert {e["actor"] for e in entries} == {f"supervisor:{supervisor_id}"}
    settings = by_action["settings_changed"]
    assert (settings["before"], settings["after"]) == (
        {"alert_ttl_s": 600},
        {"alert_ttl_s": 900},
    )
    assert by_action["policy_changed"]["after"]["target_accepted"] == 2
    assert by_action["delivery_settings_changed"]["before"]["push_ack_timeout_s"] == 15
    tier = by_action["volunteer_changed"]
    assert (tier["before"], tier["after"]) == ({"tier": "lay"}, {"tier": "professional"})
    assert tier["target_id"] == str(volunteer_id)
    # Who a volunteer is never enters the append-only log.
    everything = str(await db.fetch("SELECT a::text FROM audit_log a"))
    assert "Secret Name" not in everything
    assert "+31655550001" not in everything
    assert by_action["volunteer_created"]["after"]["phone_given"] is True


async def test_the_audit_log_is_append_only(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    resp = await client.patch(
        f"/v1/agencies/{agency.agency_id}/settings",
        json={"alert_ttl_s": 900},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 200
    for statement in (
        "UPDATE audit_log SET action = 'nothing'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await db.execute(statement)
    assert await db.fetchval("SELECT action FROM audit_log") == "settings_changed"


async def test_only_the_agency_s_supervisors_read_it(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection
) -> None:
    other_id, other_key = await agency_store.create_agency(db, name="Other")
    _, other_supervisor = await agency_store.create_supervisor(db, agency_id=other_id, name="O")
    resp = await client.patch(
        f"/v1/agencies/{other_id}/settings",
        json={"alert_ttl_s": 900},
        headers=bearer(other_supervisor),
    )
    assert resp.status == 200
    created = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "V"},
        headers=agency.supervisor_auth,
    )
    volunteer_token = (await created.json())["token"]
    url = f"/v1/agencies/{agency.agency_id}/audit-log"
    for headers in (bearer(other_supervisor), bearer(volunteer_token), agency.auth, {}):
        assert (await client.get(url, headers=headers)).status == 401
    own = await _entries(client, agency)
    assert {e["action"] for e in own} == {"volunteer_created", "volunteer_token_issued"}
    assert other_key


@pytest.mark.slow
async def test_operator_actions_at_the_command_line_are_audited(
    database_url: str, db: asyncpg.Connection
) -> None:
    env = {"DATABASE_URL": database_url}
    agency = (await run_cli(env, "agency", "create", "--name", "CLI audit"))["agency_id"]
    key = await run_cli(env, "agency", "key-add", "--agency", agency, "--label", "rotation")
    await run_cli(env, "agency", "key-revoke", "--agency", agency, "--key-id", key["key_id"])
    await run_cli(env, "supervisor", "create", "--agency", agency, "--name", "S")
    volunteer = await run_cli(env, "volunteer", "create", "--agency", agency, "--name", "Private")
    await run_cli(
        env,
        "volunteer",
        "set",
        "--agency",
        agency,
        "--id",
        volunteer["volunteer_id"],
        "--settings",
        '{"on_duty": false}',
    )
    rows = await db.fetch("SELECT actor, action, before, after FROM audit_log ORDER BY id")
    assert [r["action"] for r in rows] == [
        "key_issued",
        "key_revoked",
        "supervisor_token_issued",
        "volunteer_created",
        "volunteer_token_issued",
        "volunteer_changed",
    ]
    assert {r["actor"] for r in rows} == {"cli"}
    assert (rows[-1]["before"], rows[-1]["after"]) == ({"on_duty": True}, {"on_duty": False})
    assert "Private" not in str([dict(r) for r in rows])
