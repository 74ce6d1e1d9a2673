"""Service configuration, read once from the environment into a frozen value."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


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
    # --- delivery providers (issue 4). Nothing configured: the log provider only. ---
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
    # --- web console ---
    console_idle_s: float = 30 * 60.0
    console_max_age_s: float = 12 * 3600.0
    board_tick_s: float = 0.25

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


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


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default ``os.environ``); bad values fail loudly."""
    env = os.environ if env is None else env
    log_file = env.get("DISPATCH_LOG_PROVIDER_FILE")
    return Settings(
        database_url=env.get("DATABASE_URL") or None,
        data_dir=Path(env.get("DISPATCH_DATA_DIR") or "var"),
        host=env.get("DISPATCH_HOST") or "127.0.0.1",
        port=_integer(env, "DISPATCH_PORT", 8080, minimum=0),
        public_base_url=env.get("DISPATCH_PUBLIC_BASE_URL") or None,
        log_format=_choice(env, "DISPATCH_LOG_FORMAT", "auto", {"auto", "json", "console"}),
        log_level=_choice(env, "DISPATCH_LOG_LEVEL", "info", {"debug", "info", "warning", "error"}),
        db_pool_min=_integer(env, "DISPATCH_DB_POOL_MIN", 1, minimum=0),
        db_pool_max=_integer(env, "DISPATCH_DB_POOL_MAX", 10, minimum=1),
        db_command_timeout_s=_number(env, "DISPATCH_DB_COMMAND_TIMEOUT_S", 5.0, minimum=0.01),
        db_acquire_timeout_s=_number(env, "DISPATCH_DB_ACQUIRE_TIMEOUT_S", 2.0, minimum=0.01),
        notifier_enabled=_flag(env, "DISPATCH_NOTIFIER_ENABLED", True),
        notifier_poll_s=_number(env, "DISPATCH_NOTIFIER_POLL_S", 0.2, minimum=0.01),
        notifier_batch=_integer(env, "DISPATCH_NOTIFIER_BATCH", 100, minimum=1),
        notifier_send_timeout_s=_number(env, "DISPATCH_NOTIFIER_SEND_TIMEOUT_S", 10.0, minimum=0.1),
        notifier_lease_s=_number(env, "DISPATCH_NOTIFIER_LEASE_S", 30.0, minimum=1.0),
        notifier_pipeline=_integer(env, "DISPATCH_NOTIFIER_PIPELINE", 4, minimum=1),
        log_provider_file=Path(log_file) if log_file else None,
        position_flush_s=_number(env, "DISPATCH_POSITION_FLUSH_S", 0.2, minimum=0.01),
        position_flush_rows=_integer(env, "DISPATCH_POSITION_FLUSH_ROWS", 2000, minimum=1),
        shutdown_grace_s=_number(env, "DISPATCH_SHUTDOWN_GRACE_S", 10.0, minimum=0.0),
        feeds_enabled=_flag(env, "DISPATCH_FEEDS_ENABLED", True),
        feed_tick_s=_number(env, "DISPATCH_FEED_TICK_S", 0.5, minimum=0.05),
        feed_max_bytes=_integer(env, "DISPATCH_FEED_MAX_BYTES", 8 * 1024 * 1024, minimum=1024),
        ticker_enabled=_flag(env, "DISPATCH_TICKER_ENABLED", True),
        ticker_tick_s=_number(env, "DISPATCH_TICKER_TICK_S", 0.5, minimum=0.05),
        clock_offset_file=(
            Path(env["DISPATCH_CLOCK_OFFSET_FILE"])
            if env.get("DISPATCH_CLOCK_OFFSET_FILE")
            else None
        ),
        rejected_keep_days=_number(env, "DISPATCH_REJECTED_KEEP_DAYS", 30.0, minimum=0.0),
        auth_tarpit_s=_number(env, "DISPATCH_AUTH_TARPIT_S", 1.0, minimum=0.0),
        auth_client_failures=_integer(env, "DISPATCH_AUTH_CLIENT_FAILURES", 20, minimum=1),
        auth_agency_failures=_integer(env, "DISPATCH_AUTH_AGENCY_FAILURES", 60, minimum=1),
        notice_tick_s=_number(env, "DISPATCH_NOTICE_TICK_S", 1.0, minimum=0.05),
        housekeeping_s=_number(env, "DISPATCH_HOUSEKEEPING_S", 30.0, minimum=0.1),
        console_idle_s=_number(env, "DISPATCH_CONSOLE_IDLE_S", 30 * 60.0, minimum=1.0),
        console_max_age_s=_number(env, "DISPATCH_CONSOLE_MAX_AGE_S", 12 * 3600.0, minimum=1.0),
        board_tick_s=_number(env, "DISPATCH_BOARD_TICK_S", 0.25, minimum=0.02),
        **_delivery_settings(env),
    )


def _delivery_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Provider settings (issue 4); checked together so a half-configured Twilio fails loudly."""
    fcm_file = env.get("DISPATCH_FCM_SERVICE_ACCOUNT_FILE")
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
    return {
        "fcm_service_account_file": Path(fcm_file) if fcm_file else None,
        "fcm_base_url": env.get("DISPATCH_FCM_BASE_URL") or None,
        "fcm_transport": _choice(env, "DISPATCH_FCM_TRANSPORT", "aiohttp", {"sdk", "aiohttp"}),
        "twilio_account_sid": sid,
        "twilio_auth_token": token,
        "twilio_from_number": from_number,
        "twilio_messaging_service_sid": service,
        "twilio_voice_from_number": env.get("DISPATCH_TWILIO_VOICE_FROM") or from_number,
        "twilio_base_url": env.get("DISPATCH_TWILIO_BASE_URL") or None,
        "twilio_ring_timeout_s": _integer(env, "DISPATCH_TWILIO_RING_TIMEOUT_S", 25, minimum=5),
        "sms_rate_per_s": _number(env, "DISPATCH_SMS_RATE_PER_S", 1.0, minimum=0.01),
        "voice_rate_per_s": _number(env, "DISPATCH_VOICE_RATE_PER_S", 1.0, minimum=0.01),
        "provider_max_in_flight": _integer(env, "DISPATCH_PROVIDER_MAX_IN_FLIGHT", 100, minimum=1),
        "retry_base_s": _number(env, "DISPATCH_RETRY_BASE_S", 1.0, minimum=0.01),
        "retry_cap_s": _number(env, "DISPATCH_RETRY_CAP_S", 30.0, minimum=0.1),
    }
