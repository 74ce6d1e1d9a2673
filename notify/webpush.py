"""Standard Web Push (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291).

No vendor account: the browser's push service (Google, Mozilla, Apple, …) accepts
a request signed with our VAPID key for a subscription the browser made with that
key's public half. ``py_vapid`` signs the JWT (ES256), ``http_ece`` encrypts the
payload; the request itself goes out on our own ``aiohttp`` session with a bound on
every call, like the other providers.

``AlertMessage.address`` is the subscription in the browser's own JSON form
(``PushSubscription.toJSON()``: ``{"endpoint": …, "keys": {"p256dh": …, "auth": …}}``),
built with :func:`subscription_address`. It is a credential for reaching one
browser and is never logged.

What a push service answers, and what we make of it:

- 201 (or any 2xx): accepted; the ``Location`` header names the message.
- 404 / 410: the subscription is gone for good: ``unregistered`` (deactivate it).
- 429 / 5xx: retry later (``Retry-After`` honoured), as for FCM.
- 413: the payload is too large (our bug): permanent on this address, not deactivated.
- 401 / 403: our VAPID signature or key was refused: configuration alarm.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import SplitResult, urlsplit

import aiohttp
import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from notify.errors import ConfigurationError, ErrorCode, parse_retry_after, redact
from notify.payload import push_data
from notify.ports import AlertMessage, Channel, DeliveryOutcome, DeliveryResult
from notify.results import accepted, failed, unreached

MAX_TTL_S: Final = 2_419_200
"""The longest TTL we ask for (push services cap it themselves, 4 weeks at most)."""
MAX_RECORD: Final = 4096
"""RFC 8291 §4: a push message body is at most 4096 octets."""
_AES128GCM_OVERHEAD: Final = 16 + 4 + 1 + 65 + 16 + 1
"""salt, record size, key id length, key id (our public point), tag, padding delimiter."""
MAX_PAYLOAD: Final = MAX_RECORD - _AES128GCM_OVERHEAD
JWT_LIFETIME_S: Final = 12 * 3600
"""RFC 8292 §2: ``exp`` at most 24 hours ahead; 12 h leaves room for clock skew."""
_JWT_REUSE_S: Final = 3600
"""A signed JWT is reused per push-service origin for this long (it is valid for 12 h)."""
P256DH_LEN: Final = 65
AUTH_LEN: Final = 16
MAX_ENDPOINT_LEN: Final = 2048


def _utcnow() -> datetime:
    return datetime.now(UTC)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding; raises ValueError on anything else."""
    if not text.isascii():
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    if any(c not in _B64URL for c in stripped):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


_B64URL: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# --- keys -----------------------------------------------------------------------------------


def generate_vapid_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key for signing VAPID JWTs."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public half as browsers want it: base64url of the uncompressed point (65 bytes)."""
    raw = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(raw)


def dump_private_key(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    """PKCS#8 DER, encrypted with ``passphrase`` when one is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key(der: bytes, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    """The key from :func:`dump_private_key`; ConfigurationError when it cannot be opened."""
    try:
        key = serialization.load_der_private_key(der, password=passphrase or None)
    except (TypeError, ValueError) as exc:
        # TypeError: encrypted without a passphrase given, or the other way round.
        raise ConfigurationError(
            "cannot open the stored VAPID key (wrong or missing passphrase?)"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigurationError("the stored VAPID key is not a P-256 key")
    return key


# --- subscriptions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    endpoint: str
    p256dh: bytes
    """The browser's ECDH public key, an uncompressed P-256 point."""
    auth: bytes
    """The browser's 16-byte authentication secret."""


class InvalidSubscription(ValueError):
    """A subscription that cannot be used; ``field`` names the offending member."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _loopback_http(parts: SplitResult) -> bool:
    return parts.scheme == "http" and parts.hostname == "127.0.0.1"


def parse_subscription(
    endpoint: object, p256dh: object, auth: object, *, allow_http_loopback: bool = False
) -> Subscription:
    """Check a subscription strictly; raises :class:`InvalidSubscription` naming the field.

    The endpoint must be an absolute ``https`` URL with a host (``http`` to the
    loopback address only when ``allow_http_loopback``, for tests); ``p256dh`` must
    decode to a point on P-256, ``auth`` to 16 bytes.
    """
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidSubscription("endpoint", "must be a URL")
    if len(endpoint) > MAX_ENDPOINT_LEN:
        raise InvalidSubscription("endpoint", f"must be at most {MAX_ENDPOINT_LEN} characters")
    if not endpoint.isascii() or any(c.isspace() or ord(c) < 32 for c in endpoint):
        raise InvalidSubscription("endpoint", "must be a plain ASCII URL")
    try:
        parts = urlsplit(endpoint)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise InvalidSubscription("endpoint", "must be a URL") from None
    if parts.username or parts.password or parts.fragment:
        raise InvalidSubscription("endpoint", "must not carry credentials or a fragment")
    if not parts.hostname:
        raise InvalidSubscription("endpoint", "must name a host")
    if parts.scheme != "https" and not (allow_http_loopback and _loopback_http(parts)):
        raise InvalidSubscription("endpoint", "must be an https URL")
    point = _key_bytes(p256dh, "keys/p256dh")
    if len(point) != P256DH_LEN or point[0] != 4:
        raise InvalidSubscription("keys/p256dh", "must be an uncompressed P-256 point (65 bytes)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise InvalidSubscription("keys/p256dh", "is not a point on P-256") from None
    secret = _key_bytes(auth, "keys/auth")
    if len(secret) != AUTH_LEN:
        raise InvalidSubscription("keys/auth", "must be 16 bytes")
    return Subscription(endpoint, point, secret)


def _key_bytes(value: object, field: str) -> bytes:
    """A subscription key as the browser gives it (base64url text), decoded."""
    if not isinstance(value, str):
        raise InvalidSubscription(field, "must be a base64url string")
    try:
        return b64url_decode(value)
    except ValueError:
        raise InvalidSubscription(field, "must be base64url") from None


def subscription_address(sub: Subscription) -> str:
    """The ``AlertMessage.address`` for a subscription (the browser's JSON form)."""
    return json.dumps(
        {
            "endpoint": sub.endpoint,
            "keys": {"p256dh": b64url(sub.p256dh), "auth": b64url(sub.auth)},
        },
        separators=(",", ":"),
    )


def _address_subscription(address: str) -> Subscription:
    data = json.loads(address)
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, dict):
        raise InvalidSubscription("keys", "missing")
    return parse_subscription(
        data.get("endpoint"), keys.get("p256dh"), keys.get("auth"), allow_http_loopback=True
    )


def audience(endpoint: str) -> str:
    """RFC 8292 §2: the ``aud`` claim is the push resource's origin."""
    parts = urlsplit(endpoint)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def topic_for(alert_id: str) -> str:
    """RFC 8030 §5.4 ``Topic`` (≤ 32 base64url characters): a later push for the same
    alert replaces one the push service still holds. A UUID fits as its 32 hex digits."""
    try:
        return uuid.UUID(alert_id).hex
    except ValueError:
        compact = "".join(c for c in alert_id if c in _B64URL)
        return compact[:32] or "alert"


def payload_for(message: AlertMessage) -> bytes:
    """The JSON the service worker receives: title, body, and the same data keys as FCM.

    Shortened to fit one push record: the body first, then any long data value
    (free text such as the AED's access notes); the identifying keys always stay.
    """
    data = push_data(message)
    doc = {"title": message.title, "body": message.body, "data": data}
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if len(raw) <= MAX_PAYLOAD:
        return raw
    doc["body"] = message.body[:200]
    for key in sorted(message.data, key=lambda k: -len(message.data[k])):
        raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        if len(raw) <= MAX_PAYLOAD:
            return raw
        data[key] = data[key][:80]
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    if len(raw) > MAX_PAYLOAD:
        raise ValueError("the alert does not fit in a push message")
    return raw


def encrypt(payload: bytes, sub: Subscription) -> bytes:
    """RFC 8291 aes128gcm for one subscription, with a fresh ephemeral key and salt."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        payload,
        salt=os.urandom(16),
        private_key=ephemeral,
        dh=sub.p256dh,
        auth_secret=sub.auth,
        version="aes128gcm",
    )
    return body


class WebPushNotifier:
    """:class:`notify.ports.Notifier` for standard Web Push."""

    def __init__(
        self,
        *,
        vapid_key: ec.EllipticCurvePrivateKey,
        subject: str,
        http_timeout_s: float = 10.0,
        clock: Callable[[], datetime] = _utcnow,
        wall_time: Callable[[], float] = time.time,
        max_connections: int = 50,
    ) -> None:
        """
        ``subject`` is the VAPID ``sub`` claim: a ``mailto:`` or ``https:`` contact the
        push service can reach the operator on. ``clock`` (the service's clock) sets the
        TTL from the alert's expiry; ``wall_time`` the JWT's ``exp``, which the push
        service checks against its own clock.
        """
        if http_timeout_s <= 0:
            raise ConfigurationError("http_timeout_s must be positive")
        if not (subject.startswith("mailto:") or subject.startswith("https://")):
            raise ConfigurationError("the VAPID subject must be a mailto: or https: URL")
        self._vapid = Vapid02(vapid_key)
        self._public_key = public_key_b64(vapid_key)
        self._subject = subject
        self._http_timeout_s = http_timeout_s
        self._clock = clock
        self._wall_time = wall_time
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._jwts: dict[str, tuple[float, str]] = {}
        self._closed = False

    @property
    def channel(self) -> Channel:
        return Channel.WEB_PUSH

    @property
    def public_key(self) -> str:
        return self._public_key

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            await self._session.close()

    def _http_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Created on first use, inside the loop that will use it.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(
                    total=self._http_timeout_s, connect=min(5.0, self._http_timeout_s)
                ),
            )
        return self._session

    def authorization(self, endpoint: str) -> str:
        """``vapid t=<JWT>, k=<public key>`` for the endpoint's push service (cached per origin)."""
        aud = audience(endpoint)
        now = self._wall_time()
        cached = self._jwts.get(aud)
        if cached is not None and now - cached[0] < _JWT_REUSE_S:
            return cached[1]
        claims = {"aud": aud, "exp": int(now) + JWT_LIFETIME_S, "sub": self._subject}
        header: str = self._vapid.sign(claims)["Authorization"]
        self._jwts[aud] = (now, header)
        return header

    async def send(self, message: AlertMessage, *, timeout_s: float) -> DeliveryResult:
        started = time.perf_counter()
        remaining = (message.expires_at - self._clock()).total_seconds()
        if remaining < 1:
            return failed(
                Channel.WEB_PUSH,
                started,
                DeliveryOutcome.PERMANENT,
                ErrorCode.EXPIRED,
                "alert expired",
            )
        try:
            sub = _address_subscription(message.address)
            body = encrypt(payload_for(message), sub)
        except (ValueError, TypeError) as exc:
            # ValueError covers InvalidSubscription and malformed JSON alike; the
            # message names the field only, never the address.
            where = exc.field if isinstance(exc, InvalidSubscription) else "address"
            return failed(
                Channel.WEB_PUSH,
                started,
                DeliveryOutcome.PERMANENT,
                ErrorCode.INVALID_MESSAGE,
                f"{type(exc).__name__}: {where}",
            )
        headers = {
            "Authorization": self.authorization(sub.endpoint),
            "TTL": str(min(MAX_TTL_S, int(remaining))),
            "Urgency": "high",
            "Topic": topic_for(message.alert_id),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        try:
            async with asyncio.timeout(timeout_s):
                async with self._http_session().post(
                    sub.endpoint, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    status = resp.status
                    location = resp.headers.get("Location")
                    retry_after = parse_retry_after(resp.headers)
                    text = (await resp.content.read(300)).decode("utf-8", "replace")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return unreached(Channel.WEB_PUSH, started, exc)
        if 200 <= status < 300:
            return accepted(Channel.WEB_PUSH, started, location[:300] if location else None)
        outcome, code = classify_status(status)
        return failed(
            Channel.WEB_PUSH,
            started,
            outcome,
            code,
            redact(f"HTTP {status}: {text}"),
            retry_after if outcome is DeliveryOutcome.RETRYABLE else None,
        )

    async def send_many(
        self, messages: Sequence[AlertMessage], *, timeout_s: float
    ) -> list[DeliveryResult]:
        """Each message concurrently; one result per message, in order."""
        return list(await asyncio.gather(*(self.send(m, timeout_s=timeout_s) for m in messages)))


def classify_status(status: int) -> tuple[DeliveryOutcome, ErrorCode]:
    """What a push service's non-2xx status means (RFC 8030 §§ 5, 6, 8; RFC 8292 §4)."""
    if status in (404, 410):
        return DeliveryOutcome.PERMANENT, ErrorCode.UNREGISTERED
    if status == 429:
        return DeliveryOutcome.RETRYABLE, ErrorCode.RATE_LIMITED
    if status >= 500:
        return DeliveryOutcome.RETRYABLE, ErrorCode.SERVER_ERROR
    if status in (401, 403):
        return DeliveryOutcome.PERMANENT, ErrorCode.AUTH_ERROR
    if status == 413:
        return DeliveryOutcome.PERMANENT, ErrorCode.INVALID_MESSAGE
    return DeliveryOutcome.PERMANENT, ErrorCode.PROVIDER_ERROR


__all__ = [
    "InvalidSubscription",
    "Subscription",
    "WebPushNotifier",
    "audience",
    "classify_status",
    "dump_private_key",
    "generate_vapid_key",
    "load_private_key",
    "parse_subscription",
    "payload_for",
    "public_key_b64",
    "subscription_address",
]
