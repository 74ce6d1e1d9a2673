"""A fake Twilio REST API (2010-04-01): create/list Messages and create Calls.

Checks Basic auth, records every form post (repeated keys kept) and answers as
scripted per ``To`` number: Twilio error JSON with ``code``, 429 with
``Retry-After``, 5xx, or a stall.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.fakes import ServedFake, ThreadedServer, form_to_lists


@dataclass
class TwilioReply:
    status: int = 201
    code: int | None = None
    message: str = "error"
    retry_after: str | None = None
    delay_s: float = 0.0
    create_anyway: bool = False
    """Store the message although the answer is an error (the ambiguous 5xx case)."""
    hold_s: float = 0.0
    """Store the message, then hold the answer this long: the provider has the text, the
    sender has no answer yet (a crash test kills the sender meanwhile)."""
    callback_status: str = "delivered"
    """Final status the signed status callback reports (when callbacks are on)."""
    callback_error: str | None = None
    """``ErrorCode`` of an undelivered/failed callback (e.g. 30006)."""


@dataclass
class TwilioRecord:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    query: dict[str, str]
    at: float = field(default_factory=time.time)

    def one(self, name: str) -> str:
        values = self.form[name]
        assert len(values) == 1, (name, values)
        return values[0]


@dataclass
class FakeTwilio(ServedFake):
    account_sid: str
    auth_token: str
    replies: dict[str, TwilioReply] = field(default_factory=dict)
    requests: list[TwilioRecord] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadedServer | None = None
    send_callbacks: bool = False
    """POST signed status callbacks (sent, then the scripted final status) after a create."""
    callbacks: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    """(url, params, HTTP status of our app's answer) for every callback posted."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def posts(self, suffix: str) -> list[TwilioRecord]:
        return [r for r in list(self.requests) if r.method == "POST" and r.path.endswith(suffix)]

    def sent_to(self, to: str, suffix: str = "/Messages.json") -> list[TwilioRecord]:
        return [r for r in self.posts(suffix) if r.form.get("To") == [to]]

    def sign(self, url: str, params: dict[str, str]) -> str:
        """``X-Twilio-Signature`` for a webhook, computed as Twilio does."""
        return str(RequestValidator(self.auth_token).compute_signature(url, params))

    async def _callback(self, url: str, params: dict[str, str]) -> None:
        headers = {"X-Twilio-Signature": self.sign(url, params)}
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(url, data=params, headers=headers) as resp,
            ):
                self.callbacks.append((url, params, resp.status))
        except aiohttp.ClientError:
            self.callbacks.append((url, params, 0))

    async def _message_callbacks(
        self, url: str, params: dict[str, str], reply: TwilioReply
    ) -> None:
        await self._callback(url, {**params, "MessageStatus": "sent", "SmsStatus": "sent"})
        final = {
            **params,
            "MessageStatus": reply.callback_status,
            "SmsStatus": reply.callback_status,
        }
        if reply.callback_error:
            final["ErrorCode"] = reply.callback_error
        await self._callback(url, final)

    def _schedule_callbacks(self, record: TwilioRecord, sid: str, reply: TwilioReply) -> None:
        url = record.form.get("StatusCallback", [None])[0]
        if not self.send_callbacks or not url:
            return
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": self.account_sid,
            "From": (record.form.get("From") or ["+15550000000"])[0],
            "To": record.one("To"),
            "ApiVersion": "2010-04-01",
        }
        task = asyncio.get_running_loop().create_task(self._message_callbacks(url, params, reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def app(self) -> web.Application:
        app = web.Application()
        base = "/2010-04-01/Accounts/{sid}"
        app.router.add_post(base + "/Messages.json", self._create_message)
        app.router.add_get(base + "/Messages.json", self._list_messages)
        app.router.add_post(base + "/Calls.json", self._create_call)
        return app

    def add_message(self, to: str, body: str, status: str = "queued") -> str:
        sid = f"SM{next(self._ids):032x}"
        now = format_datetime(datetime.now(UTC), usegmt=True)
        self.messages.insert(
            0,
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": "+15550000000",
                "body": body,
                "status": status,
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "date_created": now,
                "date_updated": now,
                "date_sent": None,
                "num_segments": "1",
                "num_media": "0",
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
        )
        return sid

    async def _record(self, request: web.Request) -> TwilioRecord | web.Response:
        form = form_to_lists(await request.post()) if request.method == "POST" else {}
        record = TwilioRecord(
            request.method, request.path, dict(request.headers), form, dict(request.query)
        )
        self.requests.append(record)
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        if request.headers.get("Authorization") != expected:
            return self._error(TwilioReply(status=401, code=20003, message="Authenticate"))
        if request.match_info["sid"] != self.account_sid:
            return self._error(TwilioReply(status=404, code=20404, message="Not found"))
        return record

    async def _scripted(self, to: str) -> TwilioReply:
        reply = self.replies.get(to, TwilioReply())
        if reply.delay_s:
            assert self.server is not None
            await self.server.stall(reply.delay_s)
        return reply

    async def _create_message(self, request: web.Request) -> web.Response:
        record = await self._record(request)
        if isinstance(record, web.Response):
            return record
        to = record.one("To")
        reply = await self._scripted(to)
        if reply.hold_s:
            self.add_message(to, record.one("Body"))
            created = self.messages[0]
            assert self.server is not None
            await self.server.stall(reply.hold_s)
            return web.json_response(created, status=201)
        if reply.status >= 300:
            if reply.create_anyway:
                self.add_message(to, record.one("Body"))
            return self._error(reply)
        sid = self.add_message(to, record.one("Body"))
        self._schedule_callbacks(record, sid, reply)
        return web.json_response(self.messages[0] | {"sid": sid}, status=201)

    async def _list_messages(self, request: web.Request) -> web.Response:
        record = await self._record(request)
        if isinstance(record, web.Response):
            return record
        to = request.query.get("To")
        page_size = int(request.query.get("PageSize", "50"))
        found = [m for m in self.messages if to is None or m["to"] == to][:page_size]
        return web.json_response(
            {
                "messages": found,
                "end": len(found) - 1,
                "first_page_uri": request.path_qs,
                "next_page_uri": None,
                "page": 0,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": 0,
                "uri": request.path_qs,
            }
        )

    async def _create_call(self, request: web.Request) -> web.Response:
        record = await self._record(request)
        if isinstance(record, web.Response):
            return record
        reply = await self._scripted(record.one("To"))
        if reply.status >= 300:
            return self._error(reply)
        sid = f"CA{next(self._ids):032x}"
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": record.one("To"),
                "from": record.one("From"),
                "status": "queued",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json",
            },
            status=201,
        )

    @staticmethod
    def _error(reply: TwilioReply) -> web.Response:
        payload = {
            "code": reply.code,
            "message": reply.message,
            "more_info": f"https://www.twilio.com/docs/errors/{reply.code}",
            "status": reply.status,
        }
        headers = {"Retry-After": reply.retry_after} if reply.retry_after else None
        return web.Response(
            status=reply.status,
            text=json.dumps(payload),
            content_type="application/json",
            headers=headers,
        )
