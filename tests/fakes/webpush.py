"""A fake Web Push service (RFC 8030) that checks what a browser's push service checks.

A test subscribes the way a browser does (:meth:`FakeWebPush.subscribe`): a fresh
P-256 key pair and 16-byte auth secret on the "browser" side, the application
server key (our VAPID public key) remembered by the service. A push is accepted
only when

- ``Authorization: vapid t=<JWT>, k=<key>`` carries the key the subscription was
  made with, and the JWT is ES256, verifies against that key (checked here with
  ``cryptography``, not with the library that signed it), its ``aud`` is this
  server's origin, its ``exp`` lies in the future and at most 24 h ahead, and its
  ``sub`` is a ``mailto:`` or ``https:`` URL (RFC 8292);
- ``TTL`` is a non-negative integer and ``Content-Encoding`` is ``aes128gcm``;
- the body decrypts (RFC 8291) with the subscription's private key and auth secret.

Only then does the scripted answer apply (201 by default; 404/410/429/503 on
demand). Every refusal is kept with its reason, so a test can prove that the fake
cannot be fooled.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakes import ServedFake, ThreadedServer, next_reply


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class BrowserSubscription:
    """What a browser holds after ``pushManager.subscribe()``: keys the server never sees."""

    sub_id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str

    @property
    def p256dh(self) -> str:
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _b64(point)

    @property
    def auth_b64(self) -> str:
        return _b64(self.auth)

    def json(self) -> dict[str, Any]:
        """``PushSubscription.toJSON()``."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth_b64}}


@dataclass
class PushReply:
    status: int = 201
    retry_after: str | None = None


@dataclass
class ReceivedPush:
    sub_id: str
    headers: dict[str, str]
    payload: dict[str, Any]
    claims: dict[str, Any]
    at: float = field(default_factory=time.time)


@dataclass
class Rejection:
    sub_id: str
    status: int
    reason: str


@dataclass
class FakeWebPush(ServedFake):
    subscriptions: dict[str, BrowserSubscription] = field(default_factory=dict)
    replies: dict[str, PushReply | list[PushReply]] = field(default_factory=dict)
    """Per subscription id: one reply for every push, or a script consumed in order."""
    received: list[ReceivedPush] = field(default_factory=list)
    """Pushes that passed every check (whatever the scripted status)."""
    rejections: list[Rejection] = field(default_factory=list)
    server: ThreadedServer | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/push/{sub_id}", self._push)
        return app

    def reset(self) -> None:
        self.subscriptions.clear()
        self.replies.clear()
        self.received.clear()
        self.rejections.clear()

    def subscribe(self, application_server_key: str) -> BrowserSubscription:
        """A new subscription, as a browser makes one for ``applicationServerKey``."""
        sub_id = f"s{next(self._ids)}-{_b64(os.urandom(6))}"
        sub = BrowserSubscription(
            sub_id=sub_id,
            endpoint=f"{self.url}/push/{sub_id}",
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth=os.urandom(16),
            application_server_key=application_server_key,
        )
        self.subscriptions[sub_id] = sub
        return sub

    def received_by(self, sub: BrowserSubscription) -> list[ReceivedPush]:
        return [r for r in list(self.received) if r.sub_id == sub.sub_id]

    def _refuse(self, sub_id: str, status: int, reason: str) -> web.Response:
        self.rejections.append(Rejection(sub_id, status, reason))
        return web.json_response({"reason": reason}, status=status)

    def _verify_vapid(self, request: web.Request, sub: BrowserSubscription) -> dict[str, Any]:
        """The JWT's claims; raises ValueError with the reason of a refusal."""
        auth = request.headers.get("Authorization", "")
        scheme, _, rest = auth.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("authorization scheme is not vapid")
        params = {}
        for part in rest.split(","):
            name, _, value = part.strip().partition("=")
            params[name.strip()] = value.strip()
        token, key = params.get("t", ""), params.get("k", "")
        if key != sub.application_server_key:
            raise ValueError("k is not the key this subscription was made with")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(key))
            head_b64, claims_b64, sig_b64 = token.split(".")
            header = json.loads(_unb64(head_b64))
            signature = _unb64(sig_b64)
        except (ValueError, binascii.Error) as exc:
            raise ValueError(f"malformed token or key: {type(exc).__name__}") from None
        if header.get("alg") != "ES256":
            raise ValueError("alg is not ES256")
        if len(signature) != 64:
            raise ValueError("signature is not 64 bytes")
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise ValueError("signature does not verify") from None
        claims: dict[str, Any] = json.loads(_unb64(claims_b64))
        if claims.get("aud") != self.url:
            raise ValueError(f"aud {claims.get('aud')!r} is not this push service")
        exp = claims.get("exp")
        now = time.time()
        if not isinstance(exp, int) or exp <= now:
            raise ValueError("exp is not in the future")
        if exp > now + 24 * 3600:
            raise ValueError("exp is more than 24 hours ahead")
        subject = str(claims.get("sub", ""))
        if not (subject.startswith("mailto:") or subject.startswith("https://")):
            raise ValueError("sub is not a mailto: or https: URL")
        return claims

    async def _push(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["sub_id"]
        body = await request.read()
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return self._refuse(sub_id, 404, "no such subscription")
        try:
            claims = self._verify_vapid(request, sub)
        except ValueError as exc:
            return self._refuse(sub_id, 403, str(exc))
        ttl = request.headers.get("TTL", "")
        if not ttl.isdigit():
            return self._refuse(sub_id, 400, "TTL missing or not a non-negative integer")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return self._refuse(sub_id, 415, "content encoding is not aes128gcm")
        if len(body) > 4096:
            return self._refuse(sub_id, 413, "payload too large")
        try:
            plain = http_ece.decrypt(
                body, private_key=sub.private_key, auth_secret=sub.auth, version="aes128gcm"
            )
            payload = json.loads(plain)
        except Exception as exc:  # noqa: BLE001 - any failure to decrypt is a refusal
            return self._refuse(sub_id, 400, f"body does not decrypt: {type(exc).__name__}")
        self.received.append(ReceivedPush(sub_id, dict(request.headers), payload, claims))
        reply = next_reply(self.replies, sub_id, PushReply())
        if reply.status == 201:
            return web.Response(
                status=201, headers={"Location": f"{self.url}/message/{next(self._ids)}"}
            )
        headers = {"Retry-After": reply.retry_after} if reply.retry_after else None
        return web.Response(status=reply.status, headers=headers)
