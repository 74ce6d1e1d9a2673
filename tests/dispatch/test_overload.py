"""Overload is 503 with Retry-After, never 500: an exhausted pool, and what counts as an outage."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    ConnectionDoesNotExistError,
    InternalClientError,
    QueryCanceledError,
    TooManyConnectionsError,
    UndefinedColumnError,
    UniqueViolationError,
)

from dispatch.config import Settings
from dispatch.db.pool import DATABASE_ERRORS, is_unavailable
from dispatch.web import app_keys as keys
from dispatch.web.app import create_app
from tests.dispatch.conftest import AgencyFixture
from tests.dispatch.helpers import CENTRE, incident


@pytest.fixture
async def tight_client(settings: Settings, aiohttp_client: Any) -> TestClient[Any, web.Application]:
    """The app with a main pool of one connection and a short acquire bound."""
    tight = settings.with_overrides(db_pool_min=1, db_pool_max=1, db_acquire_timeout_s=0.2)
    client: TestClient[Any, web.Application] = await aiohttp_client(create_app(tight))
    return client


async def test_an_exhausted_pool_answers_503_with_retry_after(
    tight_client: TestClient[Any, web.Application], agency: AgencyFixture
) -> None:
    """With every connection taken, intake, a location update and /readyz say 503, not 500."""
    client = tight_client
    resp = await client.post(
        f"/v1/agencies/{agency.agency_id}/volunteers",
        json={"display_name": "Ann"},
        headers=agency.supervisor_auth,
    )
    assert resp.status == 201
    volunteer = {"Authorization": f"Bearer {(await resp.json())['token']}"}

    async with client.server.app[keys.POOL].acquire():
        calls = [
            client.post(
                f"/v1/cad/{agency.agency_id}/incidents",
                json=incident("busy-1"),
                headers=agency.auth,
            ),
            client.put(
                "/v1/me/location", json={"lat": CENTRE[0], "lon": CENTRE[1]}, headers=volunteer
            ),
        ]
        for call in calls:
            resp = await call
            assert resp.status == 503, await resp.text()
            assert resp.content_type == "application/problem+json"
            assert int(resp.headers["Retry-After"]) >= 1
            body = await resp.json()
            assert body["type"] == "/problems/unavailable"
            assert body["status"] == 503
        resp = await client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["checks"]["database"] == "unreachable: TimeoutError"

    # The same request once a connection is free: accepted, so the 503 changed nothing.
    resp = await client.post(
        f"/v1/cad/{agency.agency_id}/incidents", json=incident("busy-1"), headers=agency.auth
    )
    assert resp.status == 202
    assert (await resp.json())["status"] == "created"


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (TimeoutError(), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
        (CannotConnectNowError("the database system is starting up"), True),
        (AdminShutdownError("terminating connection due to administrator command"), True),
        (QueryCanceledError("canceling statement due to statement timeout"), True),
        (TooManyConnectionsError("sorry, too many clients already"), True),
        (InternalClientError("cannot switch to state 15; another operation is in progress"), True),
        (asyncpg.InterfaceError("cannot perform operation: connection is closed"), True),
        (
            asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
            False,
        ),
        (UniqueViolationError("duplicate key value violates unique constraint"), False),
        (UndefinedColumnError('column "x" does not exist'), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_counts_as_the_database_being_unavailable(
    error: BaseException, unavailable: bool
) -> None:
    """Outages and overload are 503s; a query's own fault stays a 500 someone must fix."""
    assert is_unavailable(error) is unavailable
    if unavailable:
        assert isinstance(error, DATABASE_ERRORS), "workers must survive every outage error"
