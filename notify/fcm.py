"""Push alerts through Firebase Cloud Messaging (HTTP v1) with firebase-admin's async API.

Lifecycle: construct :class:`FcmNotifier` inside the event loop that will use
it (the SDK's httpx client binds to the first loop that sends) and ``await
aclose()`` in the same loop at shutdown; ``await warm_up()`` once at start-up
fetches the first OAuth token off the loop. Each instance owns its own
``firebase_admin.App``.

What the SDK is told (see ``notes/integrations.md`` §1):

- ``httpTimeout`` per HTTP request, plus our own ``asyncio.timeout`` per call;
- SDK retries off (``HttpxRetry(max_retries=0)``): ``notify.retry`` decides;
- an optional base URL, applied once here through the private ``_fcm_url`` hook,
  because firebase-admin has no public endpoint override;
- OAuth tokens are refreshed in a worker thread *before* sending, so the SDK's
  synchronous refresh (``requests`` inside the event loop) does not run on the loop.

``transport="aiohttp"`` (the default) keeps the SDK for what it is good at (OAuth
credentials, the mapping of FCM error bodies to ``FirebaseError``) but writes each
``messages:send`` body itself (:func:`encode_request`, held byte for byte to the SDK's
encoding by a test) and posts it with one shared ``aiohttp`` session.
``transport="sdk"`` is the SDK's own ``send_each_async``: on a 2-core machine it tops
out near 400 messages/s, 2.2 ms of CPU per message in httpx/httpcore (pool bookkeeping
that grows with the requests queued in it), several times slower than the aiohttp path
(bench/notify.py). Both produce identical requests (tests/notify/test_fcm_transports.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring_ascii
from typing import Any, Final, Literal

import aiohttp
import firebase_admin
import httpx
from firebase_admin import _http_client, _retry, credentials, messaging
from multidict import CIMultiDict

from notify.errors import ConfigurationError, ErrorCode, redact
from notify.fcm_errors import classify_auth_failure, classify_fcm_error
from notify.payload import push_data
from notify.ports import AlertMessage, Channel, DeliveryOutcome, DeliveryResult
from notify.results import accepted, failed, unreached

MAX_BATCH = 500
"""``send_each_async`` accepts at most 500 messages per call."""
MAX_TTL_S = 2_419_200
"""FCM's maximum time-to-live (4 weeks)."""

_log = logging.getLogger("notify.fcm")
_app_names = itertools.count(1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def alert_collapse_id(alert_id: str) -> str:
    """The collapse identifier of every push about one alert: ``alert-<alert id>``."""
    return f"alert-{alert_id}"


def collapse_key_for(message: AlertMessage) -> str:
    """``message.collapse_key`` or :func:`alert_collapse_id`, cut to APNs' 64-byte limit.

    One identifier per alert, on Android (``collapse_key``) and iOS (``apns-collapse-id``):
    a push sent again for the same alert (after a crash left it unrecorded) replaces the
    first one instead of showing a second.
    """
    key = message.collapse_key or alert_collapse_id(message.alert_id)
    return key.encode()[:64].decode(errors="ignore")


_CRITICAL_SOUND: dict[str, Any] = {"name": "default", "volume": 1.0, "critical": 1}
_SOUND: Final = {False: json.dumps("default"), True: json.dumps(_CRITICAL_SOUND)}
_LEVEL: Final = {False: json.dumps("time-sensitive"), True: json.dumps("critical")}
_quoted: Final[Callable[[str], str]] = encode_basestring_ascii
"""A JSON string as ``json.dumps`` writes it (ASCII, escaped)."""


def encode_request(message: AlertMessage, ttl_s: int, address_field: str = "token") -> bytes:
    """The ``messages:send`` body for one alert, byte for byte what the SDK would post.

    The SDK builds a tree of ``messaging`` objects and validates every field of every
    option FCM has: ~130 µs per message, more than the HTTP request itself. We know the
    shape of ours, so it is written directly; ``tests/notify/test_fcm_encoding.py``
    holds it to the SDK's output (:meth:`FcmNotifier.build_message` + its encoder).
    Raises ``ValueError`` where the SDK would: a blank address, a non-string data value.
    """
    if not message.address:
        raise ValueError(f"Message.{address_field} must be a non-empty string.")
    data: dict[Any, Any] = push_data(message)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError("Message.data must not contain non-string keys or values.")
    collapse = _quoted(collapse_key_for(message))
    critical = bool(message.critical)
    pairs = ", ".join(f"{_quoted(k)}: {_quoted(v)}" for k, v in data.items())
    # json.dumps of the nested dicts, written out: its layout (", " and ": ", keys in this
    # order) around each string quoted by json's own escaping. Half the time of building
    # the tree and encoding it; the encoding test holds it to the SDK byte for byte.
    expiration = math.floor(message.expires_at.timestamp())
    return (
        f'{{"message": {{"android": {{"collapse_key": {collapse}, "priority": "high",'
        f' "ttl": "{ttl_s}s"}}, "apns": {{"headers": {{"apns-priority": "10",'
        f' "apns-push-type": "alert", "apns-expiration": "{expiration}",'
        f' "apns-collapse-id": {collapse}}}, "payload": {{"aps": {{"alert":'
        f' {{"title": {_quoted(message.title)}, "body": {_quoted(message.body)}}},'
        f' "sound": {_SOUND[critical]},'
        f' "thread-id": {_quoted(f"incident-{message.incident_id}")},'
        f' "interruption-level": {_LEVEL[critical]}}}}}}}, "data": {{{pairs}}},'
        f" {_quoted(address_field)}: {_quoted(message.address)}}}}}"
    ).encode()


class FcmNotifier:
    """:class:`notify.ports.Notifier` for FCM push (Android and iOS via APNs)."""

    def __init__(
        self,
        *,
        service_account_file: str | os.PathLike[str],
        project_id: str | None = None,
        base_url: str | None = None,
        http_timeout_s: float = 10.0,
        address_field: Literal["token", "fid"] = "token",
        app_name: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
        transport: Literal["sdk", "aiohttp"] = "aiohttp",
        max_connections: int = 50,
    ) -> None:
        """
        ``base_url`` (e.g. ``http://127.0.0.1:8081``) replaces ``https://fcm.googleapis.com``.
        ``address_field`` picks the v1 field for ``AlertMessage.address``: ``token`` (the
        default) accepts both registration tokens and installation IDs during FCM's
        transition; ``fid`` only installation IDs.
        """
        if http_timeout_s <= 0:
            raise ConfigurationError("http_timeout_s must be positive")
        if transport not in ("sdk", "aiohttp"):
            raise ConfigurationError("transport must be 'sdk' or 'aiohttp'")
        try:
            cred = credentials.Certificate(os.fspath(service_account_file))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot load the FCM service account: {exc}") from exc
        options: dict[str, Any] = {"httpTimeout": http_timeout_s}
        if project_id:
            options["projectId"] = project_id
        name = app_name or f"notify-fcm-{os.getpid()}-{next(_app_names)}"
        try:
            self._app = firebase_admin.initialize_app(cred, options, name=name)
            service = messaging._get_messaging_service(self._app)
        except ValueError as exc:
            raise ConfigurationError(f"cannot set up the FCM app: {exc}") from exc
        self._project_id: str = service._project_id
        if base_url:
            service._fcm_url = (
                f"{base_url.rstrip('/')}/v1/projects/{self._project_id}/messages:send"
            )
        # One attempt per call: our caller owns retries (notify.retry).
        self._spare_client = service._async_client
        service._async_client = _http_client.HttpxAsyncClient(
            credential=service._credential,
            timeout=http_timeout_s,
            retry_config=_retry.HttpxRetry(max_retries=0),
        )
        self._service = service
        self._url = str(service._fcm_url)
        self._address_field = address_field
        self._clock = clock
        self._refresh_lock = asyncio.Lock()
        self._closed = False
        self._transport = transport
        self._http_timeout_s = http_timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._headers_for: str | None = None
        self._headers_cache: CIMultiDict[str] = CIMultiDict()

    @property
    def channel(self) -> Channel:
        return Channel.PUSH

    @property
    def fcm_url(self) -> str:
        return str(self._service._fcm_url)

    async def warm_up(self) -> None:
        """Fetch an OAuth token now (in a thread); raises if the credentials are refused."""
        await asyncio.to_thread(self._app.credential.get_access_token)

    async def aclose(self) -> None:
        """Close the HTTP clients, then delete the App in a thread (it calls asyncio.run)."""
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            await self._session.close()
        await self._service._async_client.aclose()
        await self._spare_client.aclose()
        await asyncio.to_thread(firebase_admin.delete_app, self._app)

    async def _ensure_token(self) -> None:
        cred = self._app.credential.get_credential()
        state = getattr(getattr(cred, "token_state", None), "name", None)
        fresh = state == "FRESH" if state is not None else bool(getattr(cred, "valid", False))
        if fresh:
            return
        async with self._refresh_lock:
            state = getattr(getattr(cred, "token_state", None), "name", None)
            if state == "FRESH":
                return
            await asyncio.to_thread(self._app.credential.get_access_token)

    def build_message(self, message: AlertMessage, ttl_s: int) -> Any:
        """The ``messaging.Message`` for one alert (Android high priority, APNs priority 10)."""
        collapse = collapse_key_for(message)
        expires = message.expires_at.astimezone(UTC)
        data = push_data(message)
        android = messaging.AndroidConfig(
            priority="high", ttl=timedelta(seconds=ttl_s), collapse_key=collapse
        )
        if message.critical:
            sound: Any = messaging.CriticalSound("default", critical=True, volume=1.0)
            level = "critical"
        else:
            sound = "default"
            level = "time-sensitive"
        apns = messaging.APNSConfig(
            headers={
                "apns-priority": "10",
                "apns-push-type": "alert",
                "apns-expiration": str(math.floor(expires.timestamp())),
                "apns-collapse-id": collapse,
            },
            payload=messaging.APNSPayload(
                aps=messaging.Aps(
                    alert=messaging.ApsAlert(title=message.title, body=message.body),
                    sound=sound,
                    # Grouped per incident in Notification Center; replaced per alert.
                    thread_id=f"incident-{message.incident_id}",
                    custom_data={"interruption-level": level},
                )
            ),
        )
        if self._address_field == "fid":
            return messaging.Message(data=data, android=android, apns=apns, fid=message.address)
        # v1 still accepts ``token`` (and FIDs in it); firebase-admin >= 7.5 warns on it.
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Message.token is deprecated", category=DeprecationWarning
            )
            return messaging.Message(data=data, android=android, apns=apns, token=message.address)

    async def send(self, message: AlertMessage, *, timeout_s: float) -> DeliveryResult:
        return (await self.send_many([message], timeout_s=timeout_s))[0]

    async def send_many(
        self, messages: Sequence[AlertMessage], *, timeout_s: float
    ) -> list[DeliveryResult]:
        """Send alerts (500 per SDK call, concurrently); one result per message, in order."""
        started = time.perf_counter()
        results: list[DeliveryResult | None] = [None] * len(messages)
        now = self._clock()
        pending: list[tuple[int, Any]] = []
        for index, alert in enumerate(messages):
            remaining = (alert.expires_at - now).total_seconds()
            if remaining < 1:
                results[index] = failed(
                    Channel.PUSH,
                    started,
                    DeliveryOutcome.PERMANENT,
                    ErrorCode.EXPIRED,
                    "alert expired",
                )
                continue
            ttl_s = min(MAX_TTL_S, int(remaining))
            try:
                built = (
                    encode_request(alert, ttl_s, self._address_field)
                    if self._transport == "aiohttp"
                    else self.build_message(alert, ttl_s)
                )
            except (ValueError, TypeError) as exc:
                results[index] = failed(
                    Channel.PUSH,
                    started,
                    DeliveryOutcome.PERMANENT,
                    ErrorCode.INVALID_MESSAGE,
                    redact(str(exc)),
                )
                continue
            pending.append((index, built))

        if pending:
            try:
                async with asyncio.timeout(timeout_s):
                    try:
                        await self._ensure_token()
                    except Exception as exc:  # noqa: BLE001 - classified, never raised
                        self._fail_auth(exc, pending, results, started)
                    else:
                        chunks = [
                            pending[i : i + MAX_BATCH] for i in range(0, len(pending), MAX_BATCH)
                        ]
                        await asyncio.gather(
                            *(self._send_chunk(chunk, results, started) for chunk in chunks)
                        )
            except TimeoutError:
                for index, _ in pending:
                    if results[index] is None:
                        results[index] = failed(
                            Channel.PUSH,
                            started,
                            DeliveryOutcome.RETRYABLE,
                            ErrorCode.TIMEOUT,
                            f"no answer within {timeout_s:g}s",
                        )
        return [r for r in results if r is not None]

    def _fail_auth(
        self,
        exc: Exception,
        chunk: list[tuple[int, Any]],
        results: list[DeliveryResult | None],
        started: float,
    ) -> None:
        outcome, code = classify_auth_failure(exc)
        if code is ErrorCode.INTERNAL:
            _log.error("unexpected error while sending FCM messages", exc_info=exc)
        detail = redact(f"{type(exc).__name__}: {exc}")
        for index, _ in chunk:
            results[index] = failed(Channel.PUSH, started, outcome, code, detail)

    async def _send_chunk(
        self, chunk: list[tuple[int, Any]], results: list[DeliveryResult | None], started: float
    ) -> None:
        if self._transport == "aiohttp":
            await asyncio.gather(
                *(self._post_one(index, built, results, started) for index, built in chunk)
            )
            return
        try:
            batch = await messaging.send_each_async([m for _, m in chunk], app=self._app)
        except Exception as exc:  # noqa: BLE001 - classified, never raised
            # The whole batch fails only for auth/refresh problems (UnknownError with a cause).
            self._fail_auth(exc, chunk, results, started)
            return
        for (index, _), response in zip(chunk, batch.responses, strict=True):
            if response.success:
                results[index] = accepted(Channel.PUSH, started, response.message_id)
                continue
            error = response.exception
            outcome, code, retry_after = classify_fcm_error(error)
            results[index] = _refused(started, error, outcome, code, retry_after)

    def _http_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Created on first use, inside the loop that will use it.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(total=self._http_timeout_s),
                # FCM sets no cookies; a real jar costs a look-up and a merge per request.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _headers(self) -> CIMultiDict[str]:
        """The request headers, rebuilt only when the access token changes (built as the
        case-insensitive mapping aiohttp would otherwise make of a dict on every request)."""
        token = self._app.credential.get_credential().token
        if self._headers_for != token:
            self._headers_for = token
            self._headers_cache = CIMultiDict(
                {
                    **self._service._fcm_headers,
                    **_http_client.METRICS_HEADERS,
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                }
            )
        return self._headers_cache

    async def _post_one(
        self, index: int, body: bytes, results: list[DeliveryResult | None], started: float
    ) -> None:
        """One ``messages:send`` over aiohttp; errors go through the SDK's own FCM error mapping."""
        service = self._service
        url = self._url
        try:
            async with self._http_session().post(url, data=body, headers=self._headers()) as resp:
                status, content = resp.status, await resp.read()
                resp_headers = None if status == 200 else dict(resp.headers)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            results[index] = unreached(Channel.PUSH, started, exc)
            return
        if status == 200:
            try:
                name = json.loads(content).get("name")
            except ValueError:
                name = None
            results[index] = accepted(Channel.PUSH, started, name)
            return
        request = httpx.Request("POST", url)
        response = httpx.Response(status, headers=resp_headers, content=content, request=request)
        error = service._handle_fcm_httpx_error(
            httpx.HTTPStatusError(f"HTTP {status}", request=request, response=response)
        )
        outcome, code, retry_after = classify_fcm_error(error)
        if status == 401 and code is ErrorCode.AUTH_ERROR:
            # Our access token was refused (revoked early): the SDK would refresh and resend;
            # we refresh before the caller's retry instead of failing for good.
            self._app.credential.get_credential().token = None
            outcome, code = DeliveryOutcome.RETRYABLE, ErrorCode.AUTH_UNAVAILABLE
        results[index] = _refused(started, error, outcome, code, retry_after)


def _refused(
    started: float,
    error: Exception | None,
    outcome: DeliveryOutcome,
    code: str,
    retry_after_s: float | None,
) -> DeliveryResult:
    """FCM refused the message: ``error`` as the SDK raised it, classified."""
    detail = redact(f"{getattr(error, 'code', '')}: {error}")
    return failed(Channel.PUSH, started, outcome, code, detail, retry_after_s)


__all__ = ["FcmNotifier", "alert_collapse_id", "collapse_key_for"]
