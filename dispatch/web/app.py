"""The application factory: routes, middlewares and resource lifecycles, nothing else.

Resources open in dependency order through ``cleanup_ctx`` and close in reverse:
logging → database (embedded server, pool, migrations, the outbox worker's own pool)
→ outbound HTTP session → delivery providers → position cache and writer → the
workers: outbox, notices, housekeeping, feed poller, deadline ticker (``dispatch serve
--demo`` adds its data just before the ticker). Every resource is open before the first
worker starts and closes after the last one stops, so no worker runs without what it uses.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import structlog
from aiohttp import web, web_response

from dispatch.config import Settings
from dispatch.db.embedded import embedded_postgres
from dispatch.db.listen import Listener
from dispatch.db.migrate import migrate
from dispatch.db.pool import is_unavailable, open_pool
from dispatch.domain.clock import Clock, SystemClock
from dispatch.domain.rate_limit import RateLimiter
from dispatch.domain.time_zones import AgencyZoneUnknown
from dispatch.drill_clock import OffsetFileClock
from dispatch.logging_setup import configure_logging
from dispatch.metrics import Metrics
from dispatch.service import position_follow
from dispatch.service.accounts import AddressLimits
from dispatch.service.auth_cache import AgencyAuthCache
from dispatch.service.auth_guard import AuthGuard
from dispatch.service.board_hub import BoardHub
from dispatch.service.invalidation import Invalidations
from dispatch.service.live import LiveHub
from dispatch.service.position_follow import PositionFollower
from dispatch.service.positions import PositionWriter
from dispatch.service.providers import open_providers
from dispatch.store import position_changes as change_store
from dispatch.store import volunteers as volunteer_store
from dispatch.web import app_keys as keys
from dispatch.web import (
    app_volunteers,
    handlers,
    handlers_accounts,
    handlers_admin,
    handlers_board,
    handlers_cad,
    handlers_console,
    handlers_credentials,
    handlers_delivery,
    handlers_me,
    handlers_oversight,
    handlers_pages,
    handlers_review,
    handlers_webpush,
)
from dispatch.web.auth import THROTTLED_TYPE
from dispatch.web.problems import Problem, from_http_exception, unavailable, unknown_agency_zone
from dispatch.workers.cad_poller import FeedPoller
from dispatch.workers.notifier import OutboxWorker
from dispatch.workers.ticker import DeadlineTicker

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# How long a client should wait before sending again when the database cannot serve.
RETRY_AFTER_S = 2
# What the Server header says: no product versions for a prober to match against.
SERVER_NAME = "cpr-dispatch"


def _client_error(request: web.Request, route: str, status: int, kind: str) -> None:
    # One line per refusal, never a traceback: a client's mistake is not our error.
    log.warning("http_client_error", route=route, method=request.method, status=status, type=kind)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except Problem as problem:
        status = problem.status
        # A throttled flood would write a line per request: its throttle is the record.
        if status < 500 and problem.body_data["type"] != THROTTLED_TYPE:
            _client_error(request, route_name, status, problem.body_data["type"])
        # Answered as a plain response: re-raised, it would stay in a reference cycle with
        # every frame it passed through, garbage that only a full collection frees (a
        # flood of refusals made those pauses 100+ ms).
        problem.__traceback__ = None
        return problem.to_response()
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        if status < 500:
            _client_error(request, route_name, status, exc.reason)
        return from_http_exception(exc)
    except aiohttp.ClientConnectionResetError:
        # The client hung up (a console or app stream closed): not the database's doing,
        # though it is an OSError like a refused database connection. Nobody reads the
        # answer; aiohttp drops it on the closed connection, as it did the 503 before.
        status = 499
        log.debug("client_gone", route=route_name)
        return web.Response(status=499)
    except AgencyZoneUnknown as exc:
        # A setting to fix, not a bug: one line naming it, and the problem says the same.
        status = 500
        log.warning(
            "agency_time_zone_unknown",
            route=route_name,
            agency_id=str(exc.agency_id),
            time_zone=exc.name,
        )
        return unknown_agency_zone(exc).to_response()
    except Exception as exc:
        if is_unavailable(exc):
            # Overload or an outage, not a bug: the client can tell and knows when to retry.
            status = 503
            request.app[keys.METRICS].database_unavailable.inc()
            log.warning("database_unavailable", route=route_name, error=type(exc).__name__)
            busy = unavailable(RETRY_AFTER_S)
            return web.Response(
                status=503,
                text=busy.text,
                content_type=busy.content_type,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        log.exception("unhandled_error", route=route_name, method=request.method)
        internal = Problem(500, "internal-error", "Internal error", "the error was logged")
        return web.Response(status=500, text=internal.text, content_type=internal.content_type)
    finally:
        request.app[keys.METRICS].http_requests.labels(route_name, str(status)).observe(
            time.perf_counter() - started
        )


def _logging_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        configure_logging(log_format=settings.log_format, level=settings.log_level)
        yield
        # Last of all: a rolling restart waits for this line (or the exit) before the next node.
        log.info("shutdown_complete")

    return ctx


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    async with AsyncExitStack() as stack:
        dsn = settings.database_url
        if dsn is None:
            dsn = await stack.enter_async_context(embedded_postgres(settings.data_dir))
        metrics = app[keys.METRICS]
        pool = await stack.enter_async_context(
            open_pool(dsn, settings, on_statement=metrics.statement_counter("requests"))
        )
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        # The outbox worker has connections of its own: a burst of CAD documents holding
        # every connection of the main pool must not hold back the alerts it has just written.
        app[keys.DELIVERY_POOL] = await stack.enter_async_context(
            open_pool(
                dsn,
                settings,
                min_size=1,
                max_size=settings.notifier_pipeline + 1,
                on_statement=metrics.statement_counter("delivery"),
            )
        )
        log.info("database_ready", embedded=settings.database_url is None, migrated=applied)
        app[keys.POOL] = pool
        app[keys.DSN] = dsn
        yield


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=10, connect=3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        app[keys.HTTP] = session
        yield


async def _notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    # Delivery providers: FCM / Twilio when configured, else the log provider.
    async with open_providers(
        app[keys.SETTINGS], pool=app[keys.POOL], live=app[keys.LIVE_HUB], now=app[keys.CLOCK].now()
    ) as providers:
        app[keys.PROVIDERS] = providers
        yield


def _report_crash(task: asyncio.Task[None]) -> None:
    # Said at once, not at shutdown: /readyz turns 503, and the operator needs the reason.
    if not task.cancelled() and task.exception() is not None:
        log.error("worker_crashed", worker=task.get_name(), error=repr(task.exception()))


async def _owned_task(
    app: web.Application, name: str, work: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
) -> AsyncIterator[None]:
    """Run ``work(stop)`` as a task owned by the app; on exit ask it to stop, then cancel it."""
    stop = asyncio.Event()
    task = asyncio.create_task(work(stop), name=name)
    task.add_done_callback(_report_crash)
    app[keys.WORKER_TASKS][name] = task
    try:
        yield
    finally:
        stop.set()
        grace = app[keys.SETTINGS].shutdown_grace_s
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            log.warning("worker_drain_timeout", worker=name, grace_s=grace)
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        del app[keys.WORKER_TASKS][name]


async def _positions_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    pool = app[keys.POOL]
    started = time.perf_counter()
    async with pool.acquire() as conn:
        purged = await volunteer_store.purge_stale_positions(conn, app[keys.CLOCK].now())
    upto, cache = await position_follow.load(pool)
    log.info(
        "position_index_rebuilt",
        volunteers=len(cache),
        purged_stale=purged,
        seconds=round(time.perf_counter() - started, 3),
    )
    app[keys.METRICS].indexed_volunteers.set_function(lambda: len(cache))
    writer = PositionWriter(
        pool, flush_s=settings.position_flush_s, max_rows=settings.position_flush_rows
    )
    follower = PositionFollower(
        pool, cache, after=upto, poll_s=settings.position_follow_s, metrics=app[keys.METRICS]
    )
    app[keys.POSITIONS] = cache
    app[keys.POSITION_WRITER] = writer
    app[keys.POSITION_FOLLOWER] = follower
    listener = Listener(
        app[keys.DSN],
        {change_store.CHANNEL: follower.notified, **app[keys.INVALIDATIONS].callbacks()},
        connect_timeout_s=settings.db_acquire_timeout_s,
    )
    # Matching is correct at once; warming only spares first queries ~15 us per new cell.
    warming = asyncio.create_task(cache.warm(), name="geoindex_warm")
    try:
        async with AsyncExitStack() as tasks:
            for name, work in (
                ("position_writer", writer.run),
                ("position_follower", follower.run),
                ("listener", listener.run),
            ):
                await tasks.enter_async_context(asynccontextmanager(_owned_task)(app, name, work))
            yield
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)


async def _outbox_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    worker = OutboxWorker(
        app[keys.DELIVERY_POOL],
        app[keys.PROVIDERS],
        app[keys.CLOCK],
        app[keys.METRICS],
        poll_s=settings.notifier_poll_s,
        batch=settings.notifier_batch,
        send_timeout_s=settings.notifier_send_timeout_s,
        lease_s=settings.notifier_lease_s,
        retry_base_s=settings.retry_base_s,
        retry_cap_s=settings.retry_cap_s,
        sms_rate_per_s=settings.sms_rate_per_s,
        voice_rate_per_s=settings.voice_rate_per_s,
        sms_sender=settings.twilio_messaging_service_sid or settings.twilio_from_number,
        voice_sender=settings.twilio_voice_from_number,
        max_in_flight=settings.provider_max_in_flight,
        pipeline=settings.notifier_pipeline,
    )
    app[keys.OUTBOX_WORKER] = worker
    if not settings.notifier_enabled:
        log.warning("outbox_worker_disabled")
        yield
        return
    async for _ in _owned_task(app, "outbox_worker", worker.run):
        yield


async def _feeds_ctx(app: web.Application) -> AsyncIterator[None]:
    if not app[keys.SETTINGS].feeds_enabled:
        yield
        return
    poller = FeedPoller(
        app[keys.POOL],
        app[keys.POSITIONS],
        app[keys.HTTP],
        app[keys.CLOCK],
        app[keys.OUTBOX_WORKER].wakeup.set,
        tick_s=app[keys.SETTINGS].feed_tick_s,
        metrics=app[keys.METRICS],
        max_bytes=app[keys.SETTINGS].feed_max_bytes,
        keep_days=app[keys.SETTINGS].rejected_keep_days,
    )
    async for _ in _owned_task(app, "feed_poller", poller.run):
        yield


async def _ticker_ctx(app: web.Application) -> AsyncIterator[None]:
    if not app[keys.SETTINGS].ticker_enabled:
        yield
        return
    ticker = DeadlineTicker(
        app[keys.POOL],
        app[keys.POSITIONS],
        app[keys.CLOCK],
        app[keys.OUTBOX_WORKER].wakeup.set,
        tick_s=app[keys.SETTINGS].ticker_tick_s,
    )
    async for _ in _owned_task(app, "deadline_ticker", ticker.run):
        yield


async def _board_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = BoardHub(app[keys.POOL], app[keys.CLOCK], tick_s=app[keys.SETTINGS].board_tick_s)
    app[keys.BOARD_HUB] = hub
    async for _ in _owned_task(app, "board_hub", hub.run):
        yield


async def _end_streams(app: web.Application) -> None:
    # aiohttp has closed the listening socket; requests already taken are still answered.
    log.info("shutdown_started")
    # Before aiohttp waits for running handlers: an open event stream would hold it.
    if keys.BOARD_HUB in app:
        app[keys.BOARD_HUB].close()


async def freeze_startup_heap(app: web.Application) -> None:
    """Exempt everything loaded at start-up from the garbage collector's full passes.

    The libraries, the geo index and the caches are tens of thousands of long-lived
    objects; a full collection walked all of them, and one triggered by a large
    upload's allocations held the event loop for 60-150 ms. Frozen, a full pass
    walks only what was created since. Serving processes only: it would keep a
    test run's cyclic garbage forever.
    """
    gc.collect()
    gc.freeze()
    log.info("startup_heap_frozen", objects=gc.get_freeze_count())


def _clock(settings: Settings) -> Clock:
    if settings.clock_offset_file is None:
        return SystemClock()
    log.warning("drill_clock_in_use", offset_file=str(settings.clock_offset_file))
    return OffsetFileClock(settings.clock_offset_file)


def _hide_server_version() -> None:
    """Every response says ``Server: cpr-dispatch``, without aiohttp's and Python's versions.

    aiohttp fills the header from a module default when a response has none, and its own
    answers to requests it cannot parse (an over-long URL or header) pass through no hook
    an application can register, so the default itself is replaced.
    """
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]  # not re-exported


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    _hide_server_version()
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY_BYTES)
    app[keys.SETTINGS] = settings
    app[keys.CLOCK] = clock or _clock(settings)
    app[keys.METRICS] = Metrics()
    app[keys.WORKER_TASKS] = {}
    app.cleanup_ctx.extend(
        [
            _logging_ctx(settings),
            _database_ctx,
            _http_ctx,
            _notifier_ctx,
            _positions_ctx,
            _outbox_ctx,
            app_volunteers.notices_ctx,
            app_volunteers.housekeeping_ctx,
            _feeds_ctx,
            _ticker_ctx,
            _board_ctx,
        ]
    )
    app.on_shutdown.append(_end_streams)
    app[keys.INTAKE_LIMITER] = RateLimiter()
    app[keys.AUTH_CACHE] = AgencyAuthCache()
    app[keys.INVALIDATIONS] = Invalidations()
    app[keys.INVALIDATIONS].on_agency_change(app[keys.AUTH_CACHE].forget)
    app[keys.AUTH_GUARD] = AuthGuard(
        per_client=(settings.auth_client_failures, float(settings.auth_client_failures)),
        per_agency=(settings.auth_agency_failures, float(settings.auth_agency_failures)),
        tarpit_s=settings.auth_tarpit_s,
    )
    app[keys.ADDRESS_LIMITS] = AddressLimits()
    app[keys.LARGE_PARSE_SLOT] = asyncio.Semaphore(1)
    app[keys.LIVE_HUB] = LiveHub()
    # Open live streams would hold a graceful shutdown up until its timeout: end them first.
    app.on_shutdown.append(app[keys.LIVE_HUB].shutdown)
    app.add_routes(handlers.routes)
    app.add_routes(handlers_cad.routes)
    app.add_routes(handlers_delivery.routes)
    app.add_routes(handlers_admin.routes)
    for part in (
        handlers_accounts,
        handlers_me,
        handlers_credentials,
        handlers_oversight,
        handlers_webpush,
        handlers_board,
        handlers_console,
        handlers_review,
    ):
        app.add_routes(part.routes)
    app.add_routes(handlers_pages.routes)
    handlers_pages.app_files()  # read once here, not on the event loop at the first request
    return app
