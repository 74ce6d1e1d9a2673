"""Service configuration, read once from the environment into a frozen value."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from dispatch.domain.log_months import MIN_RETENTION_DAYS


class ConfigError(ValueError):
    """An environment variable has a value the service cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob the service has. The README's configuration table mirrors this."""

    database_url: str | None = None
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str | None = None
    log_format: str = "auto"
    log_level: str = "info"
    db_pool_min: int = 1
    db_pool_max: int = 10
    db_command_timeout_s: float = 5.0
    db_acquire_timeout_s: float = 2.0
    notifier_enabled: bool = True
    notifier_poll_s: float = 0.2
    notifier_batch: int = 100
    notifier_send_timeout_s: float = 10.0
    notifier_lease_s: float = 30.0
    notifier_pipeline: int = 4
    log_provider_file: Path | None = None
    position_flush_s: float = 0.2
    position_flush_rows: int = 2000
    position_follow_s: float = 0.2
    shutdown_grace_s: float = 10.0
    feeds_enabled: bool = True
    feed_tick_s: float = 0.5
    feed_max_bytes: int = 8 * 1024 * 1024
    ticker_enabled: bool = True
    ticker_tick_s: float = 0.5
    clock_offset_file: Path | None = None
    rejected_keep_days: float = 30.0
    auth_tarpit_s: float = 1.0
    auth_client_failures: int = 20
    auth_agency_failures: int = 60
    notice_tick_s: float = 1.0
    housekeeping_s: float = 30.0
    response_log_retention_days: int = 0
    """Drop response-log months wholly older than this; 0 keeps the log for ever."""
    # --- delivery providers. Nothing configured: the log provider only. ---
    fcm_service_account_file: Path | None = None
    fcm_base_url: str | None = None
    fcm_transport: str = "aiohttp"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_voice_from_number: str | None = None
    twilio_base_url: str | None = None
    twilio_ring_timeout_s: int = 25
    sms_rate_per_s: float = 1.0
    voice_rate_per_s: float = 1.0
    provider_max_in_flight: int = 100
    retry_base_s: float = 1.0
    retry_cap_s: float = 30.0
    # --- Web Push and the live stream: no vendor account, on unless switched off. ---
    webpush_enabled: bool = True
    webpush_subject: str | None = None
    """VAPID ``sub``: a mailto: or https: contact; default the https public URL, else mailto."""
    webpush_key_passphrase: str | None = field(default=None, repr=False)
    """Seals the stored VAPID private key (PKCS#8 encryption); unset: stored unsealed."""
    webpush_allow_http_loopback: bool = False
    """Accept http://127.0.0.1 push endpoints: for tests against a local fake only."""
    live_heartbeat_s: float = 15.0
    live_stream_max_s: float = 300.0
    """A live stream ends after this long: the app reconnects with a fresh access token."""

    # --- web console ---
    console_idle_s: float = 30 * 60.0
    console_max_age_s: float = 12 * 3600.0
    board_tick_s: float = 0.25

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


_DEFAULT: Final = Settings()
"""The defaults, written once (on :class:`Settings`), for the environment reader."""


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be a finite number >= {minimum}, got {raw!r}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: set[str]) -> str:
    raw = env.get(name) or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {sorted(choices)}, got {raw!r}")
    return raw


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``); bad values fail loudly."""
    env = os.environ if env is None else env
    d = _DEFAULT
    twilio = _twilio(env)
    return Settings(
        database_url=env.get("DATABASE_URL") or d.database_url,
        data_dir=_path(env, "DISPATCH_DATA_DIR") or d.data_dir,
        host=env.get("DISPATCH_HOST") or d.host,
        port=_integer(env, "DISPATCH_PORT", d.port, minimum=0),
        public_base_url=env.get("DISPATCH_PUBLIC_BASE_URL") or d.public_base_url,
        log_format=_choice(env, "DISPATCH_LOG_FORMAT", d.log_format, {"auto", "json", "console"}),
        log_level=_choice(
            env, "DISPATCH_LOG_LEVEL", d.log_level, {"debug", "info", "warning", "error"}
        ),
        db_pool_min=_integer(env, "DISPATCH_DB_POOL_MIN", d.db_pool_min, minimum=0),
        db_pool_max=_integer(env, "DISPATCH_DB_POOL_MAX", d.db_pool_max, minimum=1),
        db_command_timeout_s=_number(
            env, "DISPATCH_DB_COMMAND_TIMEOUT_S", d.db_command_timeout_s, minimum=0.01
        ),
        db_acquire_timeout_s=_number(
            env, "DISPATCH_DB_ACQUIRE_TIMEOUT_S", d.db_acquire_timeout_s, minimum=0.01
        ),
        notifier_enabled=_flag(env, "DISPATCH_NOTIFIER_ENABLED", d.notifier_enabled),
        notifier_poll_s=_number(env, "DISPATCH_NOTIFIER_POLL_S", d.notifier_poll_s, minimum=0.01),
        notifier_batch=_integer(env, "DISPATCH_NOTIFIER_BATCH", d.notifier_batch, minimum=1),
        notifier_send_timeout_s=_number(
            env, "DISPATCH_NOTIFIER_SEND_TIMEOUT_S", d.notifier_send_timeout_s, minimum=0.1
        ),
        notifier_lease_s=_number(env, "DISPATCH_NOTIFIER_LEASE_S", d.notifier_lease_s, minimum=1.0),
        notifier_pipeline=_integer(
            env, "DISPATCH_NOTIFIER_PIPELINE", d.notifier_pipeline, minimum=1
        ),
        log_provider_file=_path(env, "DISPATCH_LOG_PROVIDER_FILE") or d.log_provider_file,
        position_flush_s=_number(
            env, "DISPATCH_POSITION_FLUSH_S", d.position_flush_s, minimum=0.01
        ),
        position_flush_rows=_integer(
            env, "DISPATCH_POSITION_FLUSH_ROWS", d.position_flush_rows, minimum=1
        ),
        position_follow_s=_number(
            env, "DISPATCH_POSITION_FOLLOW_S", d.position_follow_s, minimum=0.01
        ),
        shutdown_grace_s=_number(env, "DISPATCH_SHUTDOWN_GRACE_S", d.shutdown_grace_s, minimum=0.0),
        feeds_enabled=_flag(env, "DISPATCH_FEEDS_ENABLED", d.feeds_enabled),
        feed_tick_s=_number(env, "DISPATCH_FEED_TICK_S", d.feed_tick_s, minimum=0.05),
        feed_max_bytes=_integer(env, "DISPATCH_FEED_MAX_BYTES", d.feed_max_bytes, minimum=1024),
        ticker_enabled=_flag(env, "DISPATCH_TICKER_ENABLED", d.ticker_enabled),
        ticker_tick_s=_number(env, "DISPATCH_TICKER_TICK_S", d.ticker_tick_s, minimum=0.05),
        clock_offset_file=_path(env, "DISPATCH_CLOCK_OFFSET_FILE") or d.clock_offset_file,
        rejected_keep_days=_number(
            env, "DISPATCH_REJECTED_KEEP_DAYS", d.rejected_keep_days, minimum=0.0
        ),
        auth_tarpit_s=_number(env, "DISPATCH_AUTH_TARPIT_S", d.auth_tarpit_s, minimum=0.0),
        auth_client_failures=_integer(
            env, "DISPATCH_AUTH_CLIENT_FAILURES", d.auth_client_failures, minimum=1
        ),
        auth_agency_failures=_integer(
            env, "DISPATCH_AUTH_AGENCY_FAILURES", d.auth_agency_failures, minimum=1
        ),
        notice_tick_s=_number(env, "DISPATCH_NOTICE_TICK_S", d.notice_tick_s, minimum=0.05),
        housekeeping_s=_number(env, "DISPATCH_HOUSEKEEPING_S", d.housekeeping_s, minimum=0.1),
        response_log_retention_days=_integer(
            env,
            "DISPATCH_RESPONSE_LOG_RETENTION_DAYS",
            d.response_log_retention_days,
            minimum=0,
        ),
        fcm_service_account_file=(
            _path(env, "DISPATCH_FCM_SERVICE_ACCOUNT_FILE") or d.fcm_service_account_file
        ),
        fcm_base_url=env.get("DISPATCH_FCM_BASE_URL") or d.fcm_base_url,
        fcm_transport=_choice(env, "DISPATCH_FCM_TRANSPORT", d.fcm_transport, {"sdk", "aiohttp"}),
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_from_number=twilio.from_number,
        twilio_messaging_service_sid=twilio.messaging_service_sid,
        twilio_voice_from_number=env.get("DISPATCH_TWILIO_VOICE_FROM") or twilio.from_number,
        twilio_base_url=env.get("DISPATCH_TWILIO_BASE_URL") or d.twilio_base_url,
        twilio_ring_timeout_s=_integer(
            env, "DISPATCH_TWILIO_RING_TIMEOUT_S", d.twilio_ring_timeout_s, minimum=5
        ),
        sms_rate_per_s=_number(env, "DISPATCH_SMS_RATE_PER_S", d.sms_rate_per_s, minimum=0.01),
        voice_rate_per_s=_number(
            env, "DISPATCH_VOICE_RATE_PER_S", d.voice_rate_per_s, minimum=0.01
        ),
        provider_max_in_flight=_integer(
            env, "DISPATCH_PROVIDER_MAX_IN_FLIGHT", d.provider_max_in_flight, minimum=1
        ),
        retry_base_s=_number(env, "DISPATCH_RETRY_BASE_S", d.retry_base_s, minimum=0.01),
        retry_cap_s=_number(env, "DISPATCH_RETRY_CAP_S", d.retry_cap_s, minimum=0.1),
        webpush_enabled=_flag(env, "DISPATCH_WEBPUSH_ENABLED", d.webpush_enabled),
        webpush_subject=_vapid_subject(env.get("DISPATCH_WEBPUSH_SUBJECT") or d.webpush_subject),
        webpush_key_passphrase=(
            env.get("DISPATCH_WEBPUSH_KEY_PASSPHRASE") or d.webpush_key_passphrase
        ),
        webpush_allow_http_loopback=_flag(
            env, "DISPATCH_WEBPUSH_ALLOW_HTTP_LOOPBACK", d.webpush_allow_http_loopback
        ),
        live_heartbeat_s=_number(
            env, "DISPATCH_LIVE_HEARTBEAT_S", d.live_heartbeat_s, minimum=0.05
        ),
        live_stream_max_s=_number(
            env, "DISPATCH_LIVE_STREAM_MAX_S", d.live_stream_max_s, minimum=1.0
        ),
        console_idle_s=_number(env, "DISPATCH_CONSOLE_IDLE_S", d.console_idle_s, minimum=1.0),
        console_max_age_s=_number(
            env, "DISPATCH_CONSOLE_MAX_AGE_S", d.console_max_age_s, minimum=1.0
        ),
        board_tick_s=_number(env, "DISPATCH_BOARD_TICK_S", d.board_tick_s, minimum=0.02),
    )


def _vapid_subject(raw: str | None) -> str | None:
    if raw is not None and not raw.startswith(("mailto:", "https://")):
        raise ConfigError("DISPATCH_WEBPUSH_SUBJECT must be a mailto: or https:// URL")
    return raw


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
