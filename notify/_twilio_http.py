"""The Twilio HTTP client we hand to ``twilio.rest.Client``, and the base of both notifiers.

``AsyncTwilioHttpClient`` in twilio 9.13.0 ignores its ``timeout=``, builds
``aiohttp.BasicAuth`` (deprecated in aiohttp 3.14, a DeprecationWarning on every
request) and drops response headers on errors. :class:`DeadlineTwilioHttpClient`
overrides ``request`` to fix all of these, and can point the SDK at another base
URL (a local fake).

:class:`TwilioNotifier` holds what SMS and voice share: the SDK client over that
HTTP client, its lifecycle, the expiry check and the mapping of SDK errors to
:class:`~notify.ports.DeliveryResult`.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import quote

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from notify.errors import (
    ConfigurationError,
    ErrorCode,
    classify_twilio,
    parse_retry_after,
    redact,
)
from notify.ports import AlertMessage, Channel, DeliveryOutcome, DeliveryResult
from notify.results import accepted, failed

TWILIO_API_URL = "https://api.twilio.com"

_log = logging.getLogger("notify.twilio")


@dataclass(slots=True)
class _CallTrace:
    """Filled in by ``request`` for the task that set it (concurrency-safe via a ContextVar)."""

    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None


_trace: contextvars.ContextVar[_CallTrace | None] = contextvars.ContextVar(
    "notify_twilio_trace", default=None
)


class DeadlineTwilioHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """``AsyncTwilioHttpClient`` with a real per-request deadline and a base-URL override.

    Must be constructed inside the running event loop (it creates an
    ``aiohttp.ClientSession``) and closed with ``await close()``.
    """

    def __init__(self, *, timeout_s: float = 10.0, base_url: str | None = None) -> None:
        if timeout_s <= 0:
            raise ConfigurationError("timeout_s must be positive")
        super().__init__(pool_connections=True, timeout=timeout_s)
        self._timeout_s = timeout_s
        self._base_url = base_url.rstrip("/") if base_url else None

    async def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's signature
        allow_redirects: bool = False,
    ) -> Response:
        if self._base_url and url.startswith(TWILIO_API_URL):
            url = self._base_url + url[len(TWILIO_API_URL) :]
        budget = self._timeout_s if timeout is None else min(timeout, self._timeout_s)
        send_headers = dict(headers or {})
        if auth is not None:
            # Our own header: aiohttp 3.14 deprecates both ``auth=`` and ``BasicAuth``.
            credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
            send_headers["Authorization"] = f"Basic {credentials}"
        kwargs: dict[str, Any] = {
            "method": method.upper(),
            "url": url,
            "params": params,
            "data": data,
            "headers": send_headers,
            "allow_redirects": allow_redirects,
            "timeout": aiohttp.ClientTimeout(total=budget),
        }
        self.log_request(kwargs)
        session: aiohttp.ClientSession = self.session
        async with asyncio.timeout(budget), session.request(**kwargs) as resp:
            text = await resp.text()
        self.log_response(resp.status, resp)
        trace = _trace.get()
        if trace is not None:
            trace.status = resp.status
            trace.headers = dict(resp.headers)
        return Response(resp.status, text, resp.headers)


def build_client(
    *, account_sid: str, auth_token: str, http_client: DeadlineTwilioHttpClient
) -> Any:
    """A ``twilio.rest.Client`` using our HTTP client (no SDK retries: ``max_retries`` unset)."""
    if not (account_sid.startswith("AC") and len(account_sid) == 34):
        raise ConfigurationError("account_sid must look like AC + 32 hex digits")
    if not auth_token:
        raise ConfigurationError("auth_token is empty")
    return Client(account_sid, auth_token, account_sid=account_sid, http_client=http_client)


async def call_twilio(
    channel: Channel,
    operation: Any,
    *,
    timeout_s: float,
) -> tuple[Any, DeliveryResult | None]:
    """Await ``operation()`` (a ``*_async`` SDK call) under ``timeout_s``.

    Returns ``(instance, None)`` on success or ``(None, failure_result)``;
    never raises for provider or network failures.
    """
    started = time.perf_counter()
    trace = _CallTrace()
    token = _trace.set(trace)

    def failure(
        outcome: DeliveryOutcome,
        code: str,
        detail: str,
        retry_after_s: float | None = None,
    ) -> DeliveryResult:
        return failed(channel, started, outcome, code, detail, retry_after_s)

    try:
        async with asyncio.timeout(timeout_s):
            instance = await operation()
    except TimeoutError:
        return None, failure(
            DeliveryOutcome.RETRYABLE, ErrorCode.TIMEOUT, f"no answer within {timeout_s:g}s"
        )
    except TwilioRestException as exc:
        permanent, code = classify_twilio(exc.status, exc.code)
        retry_after = parse_retry_after(trace.headers) if not permanent else None
        return None, failure(
            DeliveryOutcome.PERMANENT if permanent else DeliveryOutcome.RETRYABLE,
            code,
            f"twilio {exc.code} (HTTP {exc.status}): {redact(str(exc.msg))}",
            retry_after,
        )
    except TwilioException as exc:
        # TwilioServiceException (RFC 9457 body) and friends carry status/code attributes.
        status = int(getattr(exc, "status", 0) or 0)
        raw_code = getattr(exc, "code", None)
        permanent, code = classify_twilio(status, int(raw_code) if raw_code else None)
        return None, failure(
            DeliveryOutcome.PERMANENT if permanent else DeliveryOutcome.RETRYABLE,
            code,
            f"twilio {raw_code} (HTTP {status}): {redact(str(exc))}",
            parse_retry_after(trace.headers) if not permanent else None,
        )
    except (aiohttp.ClientError, OSError) as exc:
        return None, failure(
            DeliveryOutcome.RETRYABLE, ErrorCode.NETWORK_ERROR, redact(type(exc).__name__)
        )
    except Exception:  # noqa: BLE001 - Notifier contract: never raise; logged
        _log.exception("unexpected error from the Twilio SDK")
        return None, failure(
            DeliveryOutcome.RETRYABLE, ErrorCode.INTERNAL, "unexpected error (logged)"
        )
    finally:
        _trace.reset(token)
    return instance, None


def utcnow() -> datetime:
    return datetime.now(UTC)


def for_alert(url: str, alert_id: str) -> str:
    """A callback URL with its ``{alert_id}`` filled in."""
    return url.replace("{alert_id}", quote(alert_id, safe=""))


class TwilioNotifier:
    """What the Twilio notifiers share. Subclasses set ``CHANNEL`` and build with ``create``.

    Must be built inside the running event loop when it makes its own HTTP client;
    ``aclose`` closes that client. Several notifiers may share one
    :class:`DeadlineTwilioHttpClient` passed to ``__init__`` (the caller closes it).
    """

    CHANNEL: ClassVar[Channel]

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        http_client: DeadlineTwilioHttpClient,
        owns_http_client: bool = False,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._http = http_client
        self._owns_http = owns_http_client
        self._client = build_client(
            account_sid=account_sid, auth_token=auth_token, http_client=http_client
        )
        self._clock = clock

    @classmethod
    async def _with_own_client(
        cls, *, request_timeout_s: float, base_url: str | None, **kwargs: Any
    ) -> Self:
        http = DeadlineTwilioHttpClient(timeout_s=request_timeout_s, base_url=base_url)
        try:
            return cls(http_client=http, owns_http_client=True, **kwargs)
        except BaseException:
            await http.close()
            raise

    @property
    def channel(self) -> Channel:
        return self.CHANNEL

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the aiohttp session if ``create`` made it."""
        if self._owns_http:
            self._owns_http = False
            await self._http.close()

    def _remaining_s(self, message: AlertMessage) -> float:
        return (message.expires_at - self._clock()).total_seconds()

    def _expired(self, detail: str) -> DeliveryResult:
        return DeliveryResult(
            channel=self.CHANNEL,
            outcome=DeliveryOutcome.PERMANENT,
            latency_ms=0.0,
            error_code=ErrorCode.EXPIRED,
            detail=detail,
        )

    async def _create(
        self, operation: Callable[[], Awaitable[Any]], *, timeout_s: float
    ) -> DeliveryResult:
        """Run a create call (message or call); its SID on success, else the failure."""
        started = time.perf_counter()
        instance, failure = await call_twilio(self.CHANNEL, operation, timeout_s=timeout_s)
        if failure is not None:
            return failure
        return accepted(self.CHANNEL, started, getattr(instance, "sid", None))
