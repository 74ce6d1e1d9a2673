"""Service configuration, read once from the environment into a frozen value."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from dispatch.domain.log_months import MIN_RETENTION_DAYS


class ConfigError(ValueError):
    """An environment variable has a value the service cannot use."""


_ENV: Final = "env"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Var:
    """Where one setting is read from: its environment variable, its kind and its bounds."""

    name: str
    kind: Literal["text", "path", "number", "integer", "flag", "choice"]
    minimum: float = 0
    choices: tuple[str, ...] = ()
    check: Callable[[str], str] | None = None

    def read(self, env: Mapping[str, str], default: Any) -> Any:
        """The variable's value, or ``default`` when it is unset or empty."""
        raw = env.get(self.name)
        if not raw:
            return default
        if self.kind == "path":
            return Path(raw)
        if self.kind == "number":
            return _parse_number(self.name, raw, self.minimum)
        if self.kind == "integer":
            return _parse_integer(self.name, raw, int(self.minimum))
        if self.kind == "flag":
            return _parse_flag(self.name, raw)
        if self.kind == "choice" and raw not in self.choices:
            raise ConfigError(f"{self.name} must be one of {sorted(self.choices)}, got {raw!r}")
        return raw if self.check is None else self.check(raw)


def _vapid_subject(raw: str) -> str:
    if not raw.startswith(("mailto:", "https://")):
        raise ConfigError("DISPATCH_WEBPUSH_SUBJECT must be a mailto: or https:// URL")
    return raw


def _declare(default: _T, var: _Var, *, secret: bool = False) -> _T:
    return field(default=default, repr=not secret, metadata={_ENV: var})


def _text(
    name: str, default: _T, *, secret: bool = False, check: Callable[[str], str] | None = None
) -> _T:
    return _declare(default, _Var(name, "text", check=check), secret=secret)


def _path(name: str, default: _T) -> _T:
    return _declare(default, _Var(name, "path"))


def _number(name: str, default: float, *, minimum: float) -> float:
    return _declare(default, _Var(name, "number", minimum))


def _integer(name: str, default: int, *, minimum: int) -> int:
    return _declare(default, _Var(name, "integer", minimum))


def _flag(name: str, default: bool) -> bool:
    return _declare(default, _Var(name, "flag"))


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    return _declare(default, _Var(name, "choice", choices=choices))


def _parse_number(name: str, raw: str, minimum: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be a finite number >= {minimum}, got {raw!r}")
    return value


def _parse_integer(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def _parse_flag(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob the service has. The README's configuration table mirrors this.

    Each field names the variable it is read from (and its bounds) beside its default, so
    :func:`load_settings` is one loop and every default is written once.
    """

    database_url: str | None = _text("DATABASE_URL", None)
    data_dir: Path = _path("DISPATCH_DATA_DIR", Path("var"))
    host: str = _text("DISPATCH_HOST", "127.0.0.1")
    port: int = _integer("DISPATCH_PORT", 8080, minimum=0)
    public_base_url: str | None = _text("DISPATCH_PUBLIC_BASE_URL", None)
    log_format: str = _choice("DISPATCH_LOG_FORMAT", "auto", ("auto", "json", "console"))
    log_level: str = _choice("DISPATCH_LOG_LEVEL", "info", ("debug", "info", "warning", "error"))
    db_pool_min: int = _integer("DISPATCH_DB_POOL_MIN", 1, minimum=0)
    db_pool_max: int = _integer("DISPATCH_DB_POOL_MAX", 10, minimum=1)
    db_command_timeout_s: float = _number("DISPATCH_DB_COMMAND_TIMEOUT_S", 5.0, minimum=0.01)
    db_acquire_timeout_s: float = _number("DISPATCH_DB_ACQUIRE_TIMEOUT_S", 2.0, minimum=0.01)
    notifier_enabled: bool = _flag("DISPATCH_NOTIFIER_ENABLED", True)
    notifier_poll_s: float = _number("DISPATCH_NOTIFIER_POLL_S", 0.2, minimum=0.01)
    notifier_batch: int = _integer("DISPATCH_NOTIFIER_BATCH", 100, minimum=1)
    notifier_send_timeout_s: float = _number("DISPATCH_NOTIFIER_SEND_TIMEOUT_S", 10.0, minimum=0.1)
    notifier_lease_s: float = _number("DISPATCH_NOTIFIER_LEASE_S", 30.0, minimum=1.0)
    notifier_pipeline: int = _integer("DISPATCH_NOTIFIER_PIPELINE", 4, minimum=1)
    log_provider_file: Path | None = _path("DISPATCH_LOG_PROVIDER_FILE", None)
    position_flush_s: float = _number("DISPATCH_POSITION_FLUSH_S", 0.2, minimum=0.01)
    position_flush_rows: int = _integer("DISPATCH_POSITION_FLUSH_ROWS", 2000, minimum=1)
    position_follow_s: float = _number("DISPATCH_POSITION_FOLLOW_S", 0.2, minimum=0.01)
    shutdown_grace_s: float = _number("DISPATCH_SHUTDOWN_GRACE_S", 10.0, minimum=0.0)
    feeds_enabled: bool = _flag("DISPATCH_FEEDS_ENABLED", True)
    feed_tick_s: float = _number("DISPATCH_FEED_TICK_S", 0.5, minimum=0.05)
    feed_max_bytes: int = _integer("DISPATCH_FEED_MAX_BYTES", 8 * 1024 * 1024, minimum=1024)
    ticker_enabled: bool = _flag("DISPATCH_TICKER_ENABLED", True)
    ticker_tick_s: float = _number("DISPATCH_TICKER_TICK_S", 0.5, minimum=0.05)
    clock_offset_file: Path | None = _path("DISPATCH_CLOCK_OFFSET_FILE", None)
    rejected_keep_days: float = _number("DISPATCH_REJECTED_KEEP_DAYS", 30.0, minimum=0.0)
    auth_tarpit_s: float = _number("DISPATCH_AUTH_TARPIT_S", 1.0, minimum=0.0)
    auth_client_failures: int = _integer("DISPATCH_AUTH_CLIENT_FAILURES", 20, minimum=1)
    auth_agency_failures: int = _integer("DISPATCH_AUTH_AGENCY_FAILURES", 60, minimum=1)
    notice_tick_s: float = _number("DISPATCH_NOTICE_TICK_S", 1.0, minimum=0.05)
    housekeeping_s: float = _number("DISPATCH_HOUSEKEEPING_S", 30.0, minimum=0.1)
    # Tick of keeping the standard activations reports computed; 0 turns it off.
    report_warmup_s: float = _number("DISPATCH_REPORT_WARMUP_S", 5.0, minimum=0.0)
    response_log_retention_days: int = _integer(
        "DISPATCH_RESPONSE_LOG_RETENTION_DAYS", 0, minimum=0
    )
    """Drop response-log months wholly older than this; 0 keeps the log for ever."""
    # --- delivery providers. Nothing configured: the log provider only. ---
    fcm_service_account_file: Path | None = _path("DISPATCH_FCM_SERVICE_ACCOUNT_FILE", None)
    fcm_base_url: str | None = _text("DISPATCH_FCM_BASE_URL", None)
    fcm_transport: str = _choice("DISPATCH_FCM_TRANSPORT", "aiohttp", ("sdk", "aiohttp"))
    # The Twilio account is read as a whole by _twilio (a half-configured one fails).
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_voice_from_number: str | None = None
    twilio_base_url: str | None = _text("DISPATCH_TWILIO_BASE_URL", None)
    twilio_ring_timeout_s: int = _integer("DISPATCH_TWILIO_RING_TIMEOUT_S", 25, minimum=5)
    sms_rate_per_s: float = _number("DISPATCH_SMS_RATE_PER_S", 1.0, minimum=0.01)
    voice_rate_per_s: float = _number("DISPATCH_VOICE_RATE_PER_S", 1.0, minimum=0.01)
    provider_max_in_flight: int = _integer("DISPATCH_PROVIDER_MAX_IN_FLIGHT", 100, minimum=1)
    retry_base_s: float = _number("DISPATCH_RETRY_BASE_S", 1.0, minimum=0.01)
    retry_cap_s: float = _number("DISPATCH_RETRY_CAP_S", 30.0, minimum=0.1)
    # --- Web Push and the live stream: no vendor account, on unless switched off. ---
    webpush_enabled: bool = _flag("DISPATCH_WEBPUSH_ENABLED", True)
    webpush_subject: str | None = _text("DISPATCH_WEBPUSH_SUBJECT", None, check=_vapid_subject)
    """VAPID ``sub``: a mailto: or https: contact; default the https public URL, else mailto."""
    webpush_key_passphrase: str | None = _text("DISPATCH_WEBPUSH_KEY_PASSPHRASE", None, secret=True)
    """Seals the stored VAPID private key (PKCS#8 encryption); unset: stored unsealed."""
    webpush_allow_http_loopback: bool = _flag("DISPATCH_WEBPUSH_ALLOW_HTTP_LOOPBACK", False)
    """Accept http://127.0.0.1 push endpoints: for tests against a local fake only."""
    live_heartbeat_s: float = _number("DISPATCH_LIVE_HEARTBEAT_S", 15.0, minimum=0.05)
    live_stream_max_s: float = _number("DISPATCH_LIVE_STREAM_MAX_S", 300.0, minimum=1.0)
    """A live stream ends after this long: the app reconnects with a fresh access token."""

    # --- web console ---
    console_idle_s: float = _number("DISPATCH_CONSOLE_IDLE_S", 30 * 60.0, minimum=1.0)
    console_max_age_s: float = _number("DISPATCH_CONSOLE_MAX_AGE_S", 12 * 3600.0, minimum=1.0)
    board_tick_s: float = _number("DISPATCH_BOARD_TICK_S", 0.25, minimum=0.02)

    def __post_init__(self) -> None:
        _check_pairs(self)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _check_pairs(s: Settings) -> None:
    """Refuse settings that contradict each other, naming the variables to change.

    Each pair used to be reconciled quietly where it was used (or failed late, deep in a
    library); a configuration that says two incompatible things is an operator's mistake
    to hear about at start, not one to guess the intent of.
    """
    if s.db_pool_min > s.db_pool_max:
        raise ConfigError(
            f"DISPATCH_DB_POOL_MIN ({s.db_pool_min}) must not exceed"
            f" DISPATCH_DB_POOL_MAX ({s.db_pool_max})"
        )
    if s.retry_base_s > s.retry_cap_s:
        raise ConfigError(
            f"DISPATCH_RETRY_BASE_S ({s.retry_base_s:g}) must not exceed"
            f" DISPATCH_RETRY_CAP_S ({s.retry_cap_s:g})"
        )
    # A lease that a slow send can outlast lets a second worker take the same row and send
    # it twice; the wait for a pacing slot is bounded by half the lease less a send timeout.
    if s.notifier_lease_s < 2 * s.notifier_send_timeout_s:
        raise ConfigError(
            f"DISPATCH_NOTIFIER_LEASE_S ({s.notifier_lease_s:g}) must be at least twice"
            f" DISPATCH_NOTIFIER_SEND_TIMEOUT_S ({s.notifier_send_timeout_s:g})"
        )
    _check_log_retention(s.response_log_retention_days)


def _check_log_retention(days: int) -> None:
    # Below a month a partition would be dropped while its incidents are still reviewed
    # (the monthly partitions keep between `days` and `days` + 31 days anyway).
    if days < 0 or 0 < days < MIN_RETENTION_DAYS:
        raise ConfigError(
            f"DISPATCH_RESPONSE_LOG_RETENTION_DAYS ({days}) must be 0 (keep everything)"
            f" or at least {MIN_RETENTION_DAYS}"
        )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``); bad values fail loudly."""
    env = os.environ if env is None else env
    twilio = _twilio(env)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        var = f.metadata.get(_ENV)
        if isinstance(var, _Var):
            values[f.name] = var.read(env, f.default)
    return Settings(
        **values,
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_from_number=twilio.from_number,
        twilio_messaging_service_sid=twilio.messaging_service_sid,
        twilio_voice_from_number=env.get("DISPATCH_TWILIO_VOICE_FROM") or twilio.from_number,
    )


@dataclass(frozen=True, slots=True)
class _Twilio:
    account_sid: str | None
    auth_token: str | None
    from_number: str | None
    messaging_service_sid: str | None


def _twilio(env: Mapping[str, str]) -> _Twilio:
    """The Twilio account, checked as a whole so a half-configured one fails loudly."""
    sid = env.get("DISPATCH_TWILIO_ACCOUNT_SID") or None
    token = env.get("DISPATCH_TWILIO_AUTH_TOKEN") or None
    from_number = env.get("DISPATCH_TWILIO_FROM") or None
    service = env.get("DISPATCH_TWILIO_MESSAGING_SERVICE_SID") or None
    if (sid is None) != (token is None):
        raise ConfigError("set both DISPATCH_TWILIO_ACCOUNT_SID and DISPATCH_TWILIO_AUTH_TOKEN")
    if sid is not None and from_number is None and service is None:
        raise ConfigError(
            "Twilio needs DISPATCH_TWILIO_FROM or DISPATCH_TWILIO_MESSAGING_SERVICE_SID"
        )
    return _Twilio(sid, token, from_number, service)
