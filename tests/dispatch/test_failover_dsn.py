"""Connection settings that survive a failover: several hosts, the writable one chosen."""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dispatch.config import Settings
from dispatch.web import app_keys as keys
from dispatch.web.app import create_app
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import incident
from tests.dispatch.serve_process import free_port

pytestmark = pytest.mark.storage


def _down_host_first(database_url: str) -> str:
    """The same database behind a host that refuses connections (a closed port).

    Hosts and ports go in the query (``host=a,b&port=p,q``), which works for the test
    server's TCP address and for the embedded server's socket folder alike.
    """
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    live_host = query.pop("host", None) or parts.hostname or "127.0.0.1"
    live_port = query.pop("port", None) or str(parts.port or 5432)
    user = parts.netloc.rpartition("@")[0]
    query |= {
        "host": f"127.0.0.1,{live_host}",
        "port": f"{free_port()},{live_port}",
        "target_session_attrs": "read-write",
    }
    userinfo = f"{user}@" if user else ""
    return f"{parts.scheme}://{userinfo}{parts.path}?{urlencode(query, safe='/,')}"


async def test_the_service_starts_and_serves_when_the_first_host_is_down(
    settings: Settings, aiohttp_client: Any, agency: AgencyFixture
) -> None:
    dsn = _down_host_first(settings.database_url or "")
    assert "host=127.0.0.1," in dsn
    assert "target_session_attrs=read-write" in dsn
    client: TestClient[web.Request, web.Application] = await aiohttp_client(
        create_app(dataclasses.replace(settings, database_url=dsn))
    )
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("failover-1"), headers=agency.auth
    )
    assert resp.status == 202, await resp.text()
    async with client.app[keys.POOL].acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM incidents") == 1
        assert not await conn.fetchval("SELECT pg_is_in_recovery()"), "the writable server"
