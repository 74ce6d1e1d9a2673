"""Every typed key the application stores, in one place."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
from aiohttp import web

from dispatch.config import Settings
from dispatch.domain.clock import Clock
from dispatch.domain.rate_limit import RateLimiter
from dispatch.metrics import Metrics
from dispatch.service.accounts import AddressLimits
from dispatch.service.auth_cache import AgencyAuthCache
from dispatch.service.auth_guard import AuthGuard
from dispatch.service.board_hub import BoardHub
from dispatch.service.invalidation import Invalidations
from dispatch.service.live import LiveHub
from dispatch.service.position_follow import PositionFollower
from dispatch.service.positions import PositionCache, PositionWriter
from dispatch.service.providers import Providers
from dispatch.workers.notices import NoticeWorker
from dispatch.workers.notifier import OutboxWorker

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
METRICS = web.AppKey("metrics", Metrics)
POOL = web.AppKey("pool", asyncpg.Pool)
DELIVERY_POOL = web.AppKey("delivery_pool", asyncpg.Pool)
"""The outbox worker's own connections (see ``dispatch.web.app._database_ctx``)."""
HTTP = web.AppKey("http", aiohttp.ClientSession)
POSITIONS = web.AppKey("positions", PositionCache)
POSITION_WRITER = web.AppKey("position_writer", PositionWriter)
POSITION_FOLLOWER = web.AppKey("position_follower", PositionFollower)
DSN = web.AppKey("dsn", str)
"""The database the pool connects to (the listener opens its own connection there)."""
INVALIDATIONS = web.AppKey("invalidations", Invalidations)
OUTBOX_WORKER = web.AppKey("outbox_worker", OutboxWorker)
AUTH_CACHE = web.AppKey("auth_cache", AgencyAuthCache)
AUTH_GUARD = web.AppKey("auth_guard", AuthGuard)
INTAKE_LIMITER = web.AppKey("intake_limiter", RateLimiter)
PROVIDERS = web.AppKey("providers", Providers)
WORKER_TASKS = web.AppKey("worker_tasks", dict[str, asyncio.Task[None]])
LARGE_PARSE_SLOT = web.AppKey("large_parse_slot", asyncio.Semaphore)
"""One large CAD document parsed (in a worker thread) at a time."""
NOTICE_WORKER = web.AppKey("notice_worker", NoticeWorker)
ADDRESS_LIMITS = web.AppKey("address_limits", AddressLimits)
"""Codes asked for and wrong codes tried, per client network (sign-up and sign-in)."""
LIVE_HUB = web.AppKey("live_hub", LiveHub)
"""The open ``/v1/me/stream`` streams of this process."""
BOARD_HUB = web.AppKey("board_hub", BoardHub)
"""Fans the live board out to the console's event streams."""
