"""A fake FCM HTTP v1 endpoint plus the OAuth token endpoint firebase-admin calls.

- ``POST /token``: verifies the JWT-bearer assertion (RS256, our throwaway key)
  and issues an access token.
- ``POST /v1/projects/{project}/messages:send``: checks the bearer token, records
  the JSON body and answers as scripted per address (token or fid).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web

from tests.fakes import ServedFake, ThreadedServer, next_reply

_HTTP_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class FcmReply:
    """How the fake answers a send to one address."""

    status: int = 200
    error_code: str | None = None
    """FcmError ``details[].errorCode`` (UNREGISTERED, QUOTA_EXCEEDED, …)."""
    message: str = "error"
    retry_after: str | None = None
    delay_s: float = 0.0
    field_violation: str | None = None
    """Adds a google.rpc.BadRequest detail naming this field."""


@dataclass
class FcmRecord:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.time)
    """Wall-clock arrival (the bench compares it with the outbox commit time)."""

    @property
    def message(self) -> dict[str, Any]:
        message = self.body["message"]
        assert isinstance(message, dict)
        return message


@dataclass
class TokenEndpointReply:
    status: int = 200
    error: str = "invalid_grant"


@dataclass
class FakeFcm(ServedFake):
    public_key_pem: bytes
    replies: dict[str, FcmReply | list[FcmReply]] = field(default_factory=dict)
    """Per address: one reply for every send, or a script consumed in order (the last repeats)."""
    token_reply: TokenEndpointReply = field(default_factory=TokenEndpointReply)
    sends: list[FcmRecord] = field(default_factory=list)
    token_requests: int = 0
    issued: set[str] = field(default_factory=set)
    server: ThreadedServer | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        app.router.add_get("/_journal", self._journal)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion", "")),
                self.public_key_pem,
                algorithms=["RS256"],
                audience="https://oauth2.googleapis.com/token",
            )
        except jwt.PyJWTError as exc:
            return web.json_response(
                {"error": "invalid_grant", "error_description": str(exc)}, status=400
            )
        if self.token_reply.status != 200:
            return web.json_response(
                {"error": self.token_reply.error, "error_description": "scripted"},
                status=self.token_reply.status,
            )
        assert "cloud-platform" in claims["scope"] or "firebase" in claims["scope"]
        token = f"ya29.fake-{self.token_requests}-{int(time.time())}"
        self.issued.add(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sends.append(FcmRecord(request.path, dict(request.headers), body))
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.issued:
            return self._error(FcmReply(status=401, message="Request had invalid credentials."))
        message = body.get("message", {})
        address = message.get("token") or message.get("fid") or ""
        reply = next_reply(self.replies, address, FcmReply())
        if reply.delay_s:
            assert self.server is not None
            await self.server.stall(reply.delay_s)
        if reply.status == 200:
            project = request.match_info["project"]
            return web.json_response({"name": f"projects/{project}/messages/0:{next(self._ids)}"})
        return self._error(reply)

    async def _journal(self, request: web.Request) -> web.Response:
        """``[[address, arrival time], …]`` for a fake running in another process (the bench)."""
        rows = [[r.message.get("token") or r.message.get("fid"), r.at] for r in list(self.sends)]
        return web.json_response(rows)

    def sends_to(self, address: str) -> list[FcmRecord]:
        return [
            r for r in list(self.sends) if address in (r.message.get("token"), r.message.get("fid"))
        ]

    @staticmethod
    def _error(reply: FcmReply) -> web.Response:
        details: list[dict[str, Any]] = []
        if reply.error_code:
            details.append(
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": reply.error_code,
                }
            )
        if reply.field_violation:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [
                        {"field": reply.field_violation, "description": reply.message}
                    ],
                }
            )
        payload = {
            "error": {
                "code": reply.status,
                "message": reply.message,
                "status": _HTTP_STATUS_NAMES.get(reply.status, "UNKNOWN"),
                "details": details,
            }
        }
        headers = {"Retry-After": reply.retry_after} if reply.retry_after else None
        return web.Response(
            status=reply.status,
            text=json.dumps(payload),
            content_type="application/json",
            headers=headers,
        )
