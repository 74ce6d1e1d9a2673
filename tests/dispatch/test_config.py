"""Settings from the environment: defaults, single values, and pairs that must agree."""

from __future__ import annotations

import dataclasses

import pytest

from dispatch.config import ConfigError, Settings, load_settings


def test_an_empty_environment_gives_the_declared_defaults() -> None:
    assert load_settings({}) == Settings()


def test_values_set_in_the_environment_reach_their_fields() -> None:
    env = {
        "DATABASE_URL": "postgresql://db/x",
        "DISPATCH_DATA_DIR": "/srv/dispatch",
        "DISPATCH_PORT": "9000",
        "DISPATCH_DB_POOL_MIN": "3",
        "DISPATCH_DB_POOL_MAX": "7",
        "DISPATCH_NOTIFIER_SEND_TIMEOUT_S": "4",
        "DISPATCH_NOTIFIER_LEASE_S": "8",
        "DISPATCH_RETRY_BASE_S": "2",
        "DISPATCH_RETRY_CAP_S": "2",
        "DISPATCH_TWILIO_ACCOUNT_SID": "AC1",
        "DISPATCH_TWILIO_AUTH_TOKEN": "secret",
        "DISPATCH_TWILIO_FROM": "+15550000000",
    }
    s = load_settings(env)
    assert (s.database_url, str(s.data_dir), s.port) == ("postgresql://db/x", "/srv/dispatch", 9000)
    assert (s.db_pool_min, s.db_pool_max) == (3, 7)
    assert (s.notifier_send_timeout_s, s.notifier_lease_s) == (4.0, 8.0)
    assert (s.retry_base_s, s.retry_cap_s) == (2.0, 2.0)
    assert s.twilio_voice_from_number == "+15550000000"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        (
            {"DISPATCH_DB_POOL_MIN": "5", "DISPATCH_DB_POOL_MAX": "4"},
            ("DISPATCH_DB_POOL_MIN (5)", "DISPATCH_DB_POOL_MAX (4)"),
        ),
        (
            {"DISPATCH_RETRY_BASE_S": "40"},
            ("DISPATCH_RETRY_BASE_S (40)", "DISPATCH_RETRY_CAP_S (30)"),
        ),
        (
            {"DISPATCH_NOTIFIER_SEND_TIMEOUT_S": "20"},
            ("DISPATCH_NOTIFIER_LEASE_S (30)", "DISPATCH_NOTIFIER_SEND_TIMEOUT_S (20)"),
        ),
        (
            {"DISPATCH_NOTIFIER_LEASE_S": "19.5", "DISPATCH_NOTIFIER_SEND_TIMEOUT_S": "10"},
            ("DISPATCH_NOTIFIER_LEASE_S (19.5)", "DISPATCH_NOTIFIER_SEND_TIMEOUT_S (10)"),
        ),
    ],
    ids=[
        "pool-min-above-max",
        "retry-base-above-cap",
        "lease-under-twice-send",
        "lease-just-short",
    ],
)
def test_contradicting_pairs_are_refused_naming_both_variables(
    env: dict[str, str], names: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(env)
    for name in names:
        assert name in str(refused.value)


@pytest.mark.parametrize(
    "env",
    [
        {"DISPATCH_DB_POOL_MIN": "4", "DISPATCH_DB_POOL_MAX": "4"},
        {"DISPATCH_RETRY_BASE_S": "30", "DISPATCH_RETRY_CAP_S": "30"},
        {"DISPATCH_NOTIFIER_LEASE_S": "20", "DISPATCH_NOTIFIER_SEND_TIMEOUT_S": "10"},
    ],
    ids=["pool-equal", "retry-equal", "lease-exactly-twice"],
)
def test_the_edge_of_each_pair_is_accepted_unchanged(env: dict[str, str]) -> None:
    s = load_settings(env)
    assert (s.db_pool_min, s.retry_base_s, s.notifier_lease_s) == (
        int(env.get("DISPATCH_DB_POOL_MIN", 1)),
        float(env.get("DISPATCH_RETRY_BASE_S", 1)),
        float(env.get("DISPATCH_NOTIFIER_LEASE_S", 30)),
    )


def test_settings_built_in_code_are_checked_too() -> None:
    """Tests, benchmarks and the CLI's overrides build Settings directly: same refusal."""
    with pytest.raises(ConfigError, match="DISPATCH_DB_POOL_MIN"):
        Settings(db_pool_min=3, db_pool_max=2)
    with pytest.raises(ConfigError, match="DISPATCH_NOTIFIER_LEASE_S"):
        Settings().with_overrides(notifier_send_timeout_s=60.0)
    with pytest.raises(ConfigError, match="DISPATCH_RETRY_BASE_S"):
        dataclasses.replace(Settings(), retry_cap_s=0.5)


def test_a_half_configured_twilio_account_is_refused() -> None:
    with pytest.raises(ConfigError, match="DISPATCH_TWILIO_AUTH_TOKEN"):
        load_settings({"DISPATCH_TWILIO_ACCOUNT_SID": "AC1"})
    with pytest.raises(ConfigError, match="DISPATCH_TWILIO_FROM"):
        load_settings({"DISPATCH_TWILIO_ACCOUNT_SID": "AC1", "DISPATCH_TWILIO_AUTH_TOKEN": "t"})
