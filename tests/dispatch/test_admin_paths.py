"""One admin path: the API and the CLI run the same use cases, refuse alike, and a key the
CLI revokes stops working in a server within the key cache's lifetime."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from dispatch.cli import run_admin_verb
from dispatch.cli_support import CliError
from dispatch.config import Settings
from dispatch.secrets import hash_token
from dispatch.service import admin
from dispatch.service.auth_cache import AgencyAuthCache
from dispatch.store import agencies as agency_store
from dispatch.store import audit
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import incident, snapshot, wait_until

# (CLI verb and option, HTTP method and path under the agency, the document, the field blamed)
REFUSED: list[tuple[tuple[str, ...], str, str, dict[str, Any], str]] = [
    (("agency", "configure", "--settings"), "patch", "/settings",
     {"time_zone": "Mars/Olympus"}, "/time_zone"),
    (("agency", "configure", "--settings"), "patch", "/settings",
     {"alert_ttl_s": 5}, "/alert_ttl_s"),
    (("agency", "configure", "--settings"), "patch", "/settings",
     {"alert_radius_m": 800}, "/alert_radius_m"),
    (("agency", "policy", "--set"), "put", "/policy", {"target_accepted": 0}, "/target_accepted"),
    (("agency", "policy", "--set"), "put", "/policy",
     {"waves": [{"after_s": 5, "radius_m": 500, "live": 3}]}, "/waves/0/after_s"),
    (("agency", "policy", "--set"), "put", "/policy",
     {"not_coming_after_s": 60}, "/not_coming_after_s"),
    (("agency", "policy", "--set"), "put", "/policy",
     {"not_coming_after_s": 90, "answer_timeout_s": 90}, "/answer_timeout_s"),
    (("agency", "delivery", "--settings"), "put", "/delivery-settings",
     {"next_channel_after_s": 75}, "/next_channel_after_s"),
    (("agency", "delivery", "--settings"), "put", "/delivery-settings",
     {"push_ack_timeout_s": 50}, "/push_ack_timeout_s"),
    (("agency", "delivery", "--settings"), "put", "/delivery-settings",
     {"answer_timeout_s": 30, "next_channel_after_s": 30}, "/answer_timeout_s"),
    (("volunteer", "set", "--settings"), "patch", "/volunteers/{volunteer}",
     {"tier": "wizard"}, "/tier"),
    (("volunteer", "set", "--settings"), "patch", "/volunteers/{volunteer}",
     {"daily_budget": -1}, "/daily_budget"),
]  # fmt: skip


async def test_api_and_cli_refuse_the_same_input_with_the_same_words(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, settings: Settings
) -> None:
    created = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "V"},
        headers=agency.supervisor_auth,
    )
    volunteer = (await created.json())["volunteer_id"]
    before = await snapshot(db)
    for (verb, action, option), method, path, document, pointer in REFUSED:
        url = f"/v1/agencies/{agency.agency_id}{path.format(volunteer=volunteer)}"
        resp = await getattr(client, method)(url, json=document, headers=agency.supervisor_auth)
        assert resp.status == 422, (url, document, await resp.text())
        assert resp.content_type == "application/problem+json"
        problem = await resp.json()
        assert problem["pointer"] == pointer, (document, problem)

        argv = [verb, action, "--agency", str(agency.agency_id), option, json.dumps(document)]
        if verb == "volunteer":
            argv += ["--id", str(volunteer)]
        with pytest.raises(CliError) as refused:
            await run_admin_verb(settings, argv)
        assert str(refused.value) == f"{option} {pointer}: {problem['detail']}", document
    assert await snapshot(db) == before, "a refusal changes nothing on either path"


async def test_both_paths_store_the_same_change_and_audit_it(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, settings: Settings
) -> None:
    url = f"/v1/agencies/{agency.agency_id}/delivery-settings"
    change = {"push_ack_timeout_s": 20, "next_channel_after_s": 40}
    resp = await client.put(url, json=change, headers=agency.supervisor_auth)
    assert await resp.json() == {**change, "critical_alerts": False}
    # The first name is still read (and written under the new one).
    await run_admin_verb(
        settings,
        ["agency", "delivery", "--agency", str(agency.agency_id),
         "--settings", json.dumps({"answer_timeout_s": 30})],
    )  # fmt: skip
    rows = await db.fetch(
        "SELECT actor, after FROM audit_log WHERE action = 'delivery_settings_changed' ORDER BY id"
    )
    assert [(r["actor"], r["after"]["next_channel_after_s"]) for r in rows] == [
        (rows[0]["actor"], 40),
        ("cli", 30),
    ]


async def test_agency_radius_and_count_live_in_the_first_policy_version(
    db: asyncpg.Connection, settings: Settings
) -> None:
    agency_id, _ = await admin.create_agency(db, name="Wide", radius_m=900, limit=4)
    agency = await agency_store.policy(db, agency_id)
    assert agency is not None
    policy = agency.alert_policy
    assert (policy.version, policy.waves[0].radius_m, policy.waves[0].live) == (1, 900, 4)
    with pytest.raises(CliError, match="--radius-m/--limit /waves/0/radius_m"):
        await run_admin_verb(settings, ["agency", "create", "--name", "X", "--radius-m", "5"])


async def test_a_key_revoked_in_process_is_refused_at_once(
    db: asyncpg.Connection, agency: AgencyFixture
) -> None:
    cache = AgencyAuthCache(ttl_s=3600)
    auth = await agency_store.authenticate_key(db, agency.agency_id, agency.key)
    assert auth is not None
    cache.put(agency.agency_id, agency.key, auth)
    key_id = await db.fetchval(
        "SELECT id FROM agency_keys WHERE key_hash = $1", hash_token(agency.key)
    )
    await admin.revoke_key(
        db,
        agency.agency_id,
        key_id,
        actor=audit.CLI,
        now=datetime.now(UTC),
        followers=admin.Followers(auth_cache=cache),
    )
    assert cache.get(agency.agency_id, agency.key) is None


async def test_a_key_revoked_by_the_cli_is_refused_by_a_server_within_the_cache_lifetime(
    client: Any, agency: AgencyFixture, db: asyncpg.Connection, settings: Settings
) -> None:
    """The CLI is another process: the server's cache entry lapses after ttl_s (2 s)."""
    document = incident("CLI-1")
    url = f"/v1/cad/{agency.agency_id}/incidents"
    first = await client.post(url, json=document, headers=agency.auth)
    assert first.status in (200, 201, 202), await first.text()
    key_id = await db.fetchval(
        "SELECT id FROM agency_keys WHERE key_hash = $1", hash_token(agency.key)
    )
    await run_admin_verb(
        settings,
        ["agency", "key-revoke", "--agency", str(agency.agency_id), "--key-id", str(key_id)],
    )

    async def refused() -> bool:
        resp = await client.post(url, json=document, headers=agency.auth)
        return bool(resp.status == 401)

    await wait_until(refused, timeout_s=10, every_s=0.2, what="the revoked key refused")
