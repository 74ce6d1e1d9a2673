"""The volunteer-account workers' lifecycles: the notice worker and housekeeping.

Kept apart from ``dispatch.web.app`` so that the application factory only lists them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dispatch.web import app_keys as keys
from dispatch.workers.housekeeping import Housekeeper
from dispatch.workers.notices import NoticeWorker


async def notices_ctx(app: web.Application) -> AsyncIterator[None]:
    from dispatch.web.app import _owned_task

    settings = app[keys.SETTINGS]
    worker = NoticeWorker(
        app[keys.POOL],
        app[keys.PROVIDERS],
        app[keys.CLOCK],
        tick_s=settings.notice_tick_s,
        send_timeout_s=settings.notifier_send_timeout_s,
    )
    app[keys.NOTICE_WORKER] = worker
    if not settings.notifier_enabled:
        yield
        return
    async for _ in _owned_task(app, "notice_worker", worker.run):
        yield


async def housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
    from dispatch.web.app import _owned_task

    keeper = Housekeeper(
        app[keys.POOL],
        app[keys.POSITIONS],
        app[keys.CLOCK],
        tick_s=app[keys.SETTINGS].housekeeping_s,
        log_retention_days=app[keys.SETTINGS].response_log_retention_days,
        report_warmup_s=app[keys.SETTINGS].report_warmup_s,
    )
    async for _ in _owned_task(app, "housekeeping", keeper.run):
        yield
