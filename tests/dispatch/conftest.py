from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from dispatch.config import Settings
from dispatch.db.pool import init_connection
from dispatch.web.app import create_app
from geoindex import VolunteerIndex
from tests.dispatch import pg
from tests.dispatch.accounts_helpers import MovableClock
from tests.dispatch.helpers import AgencyAuth
from tests.fakes.twilio_server import FakeTwilio

TWILIO_ACCOUNT_SID = "AC" + "0a1b2c3d4e5f6789" * 2
TWILIO_AUTH_TOKEN = "test-auth-token"


@pytest.fixture(scope="session", autouse=True)
def _compiled_geoindex() -> None:
    """Compile the geo index kernels (or load them from numba's cache) once, up front.

    A fresh checkout compiles them for ~10 s; done here, that does not count against the
    start-up time of the first server process a test starts.
    """
    VolunteerIndex()


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    with pg.server_dsn() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def template_name(admin_dsn: str) -> Iterator[str]:
    with pg.template(admin_dsn) as name:
        yield name


@pytest.fixture
async def database_url(admin_dsn: str, template_name: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    name = await pg.create_test_database(admin_dsn, template_name)
    try:
        yield pg.with_database(admin_dsn, name)
    finally:
        await pg.drop_test_database(admin_dsn, name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    await init_connection(conn)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def settings(database_url: str, tmp_path: Any) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "var",
        log_format="json",
        notifier_poll_s=0.05,
        position_flush_s=0.05,
        shutdown_grace_s=2.0,
    )


async def app_client(
    aiohttp_client: Any, settings: Settings, clock: MovableClock | None = None
) -> TestClient[web.Request, web.Application]:
    """A test client of the app made from ``settings`` (on ``clock`` when given)."""
    client: TestClient[web.Request, web.Application] = await aiohttp_client(
        create_app(settings, clock=clock)
    )
    return client


@pytest.fixture
async def client(
    settings: Settings, aiohttp_client: Any
) -> TestClient[web.Request, web.Application]:
    return await app_client(aiohttp_client, settings)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    """A fake Twilio for one test; ``helpers.sms_through`` points settings at it."""
    fake = FakeTwilio(account_sid=TWILIO_ACCOUNT_SID, auth_token=TWILIO_AUTH_TOKEN).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def clocked(
    settings: Settings, aiohttp_client: Any, clock: MovableClock
) -> TestClient[web.Request, web.Application]:
    """A client of an app whose clock the test moves (``clock.advance(minutes=...)``)."""
    return await app_client(aiohttp_client, settings, clock)


class AgencyFixture(AgencyAuth):
    def __init__(self, agency_id: Any, key: str, supervisor_token: str) -> None:
        self.agency_id = agency_id
        self.key = key
        self.supervisor_token = supervisor_token


@pytest.fixture
async def agency(db: asyncpg.Connection) -> AgencyFixture:
    from dispatch.store import agencies

    agency_id, key = await agencies.create_agency(db, name="Test agency")
    _, supervisor_token = await agencies.create_supervisor(db, agency_id=agency_id, name="Sup")
    return AgencyFixture(agency_id, key, supervisor_token)
