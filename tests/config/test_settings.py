"""The one Settings object: every variable declared once, parsed strictly, documented."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flashsale.cli.main import app
from flashsale.payments.service import PaymentSettings
from flashsale.payments.setup import payment_settings_from
from flashsale.settings import (
    DEV_JWT_SECRET,
    ConfigError,
    PersistSettings,
    Settings,
    markdown_table,
    variables,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_table(after: str) -> str:
    """The first Markdown table after the line that starts with ``after``."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return "\n".join(table)


def test_readme_configure_table_is_the_generated_one() -> None:
    assert _readme_table("## Configure") == markdown_table(), (
        "README's Configure table is stale: paste `flashsale config --markdown`"
    )


def test_readme_development_table_is_the_generated_one() -> None:
    assert _readme_table("Development-only variables") == markdown_table(dev_only=True)


def test_every_variable_is_declared_once() -> None:
    names = [v.name for v in variables()] + [v.name for v in variables(dev_only=True)]
    assert len(names) == len(set(names))
    assert all(name.startswith("FLASHSALE_") for name in names)
    assert all(v.meaning and v.default for v in variables())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLASHSALE_REDIS_MAX_CONNECTIONS", "many"),
        ("FLASHSALE_REDIS_MAX_CONNECTIONS", "0"),
        ("FLASHSALE_REDIS_CLUSTER", "maybe"),
        ("FLASHSALE_DURABILITY", "sometimes"),
        ("FLASHSALE_ENV", "staging"),
        ("FLASHSALE_IP_RATE_PER_S", "fast"),
        ("FLASHSALE_IP_RATE_PER_S", "0"),
        ("FLASHSALE_SOLD_OUT_CACHE_S", "5"),
        ("FLASHSALE_PERSIST_BATCH_SIZE", "1.5"),
        ("FLASHSALE_PERSIST_RECLAIM_EVERY_S", "nan"),
        ("FLASHSALE_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local"),
        ("FLASHSALE_LT", "[1, 2]"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert caught.value.variable == name
    assert str(caught.value).startswith(f"{name} must be")


def test_values_are_read_into_their_sections() -> None:
    settings = Settings.from_env(
        {
            "FLASHSALE_REDIS_URL": "redis://127.0.0.1:7000/0",
            "FLASHSALE_REDIS_CLUSTER": "1",
            "FLASHSALE_REDIS_TIMEOUT_MS": "500",
            "FLASHSALE_DATABASE_POOL_MAX": "4",
            "FLASHSALE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7 ,::1",
            "FLASHSALE_CHAIN_CONFIRMATIONS": "12",
            "FLASHSALE_DURABILITY": "FAST",
            "FLASHSALE_NAMESPACE": "",  # empty counts as unset
        }
    )
    assert settings.redis.cluster and settings.redis.timeout_ms == 500
    assert settings.redis.namespace == "fs"
    assert settings.database.pool_max == 4
    assert settings.api.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.chain.confirmations == 12 and settings.durability == "fast"
    assert settings.env == "prod" and settings.jwt_secret is None


def test_every_persist_knob_is_overridable_by_its_own_variable() -> None:
    fields = dataclasses.fields(PersistSettings)
    env = {f"FLASHSALE_PERSIST_{f.name.upper()}": "7" for f in fields}
    persist = Settings.from_env(env).persist
    assert all(getattr(persist, f.name) == 7 for f in fields)


def test_payment_knobs_default_to_the_flows_own_defaults() -> None:
    assert payment_settings_from(Settings()) == PaymentSettings()
    tuned = Settings.from_env(
        {"FLASHSALE_PAYMENTS_CALLBACK_WINDOW_S": "5", "FLASHSALE_PUBLIC_URL": "https://shop.test"}
    )
    built = payment_settings_from(tuned)
    assert built.callback_window_s == 5 and built.public_url == "https://shop.test"


def test_dev_defaults_apply_in_dev_mode_only() -> None:
    dev = {"FLASHSALE_ENV": "dev"}
    assert Settings.from_env(dev).jwt_secret == DEV_JWT_SECRET
    assert Settings.from_env({}).jwt_secret is None
    assert Settings.from_env({**dev, "FLASHSALE_JWT_SECRET": "x"}).jwt_secret == "x"


runner = CliRunner()


def test_config_prints_effective_values_with_secrets_masked() -> None:
    secret = "s" * 40
    result = runner.invoke(
        app,
        ["config"],
        env={
            "FLASHSALE_JWT_SECRET": secret,
            "FLASHSALE_DATABASE_URL": "postgresql://app:hunter2@db.internal/flashsale",
            "FLASHSALE_REDIS_CLUSTER": "yes",
        },
    )
    assert result.exit_code == 0, result.output
    assert secret not in result.output and "hunter2" not in result.output
    lines = result.output.splitlines()
    assert "FLASHSALE_JWT_SECRET=*** (40 bytes)" in lines
    assert "FLASHSALE_DATABASE_URL=postgresql://app:***@db.internal/flashsale" in lines
    assert "FLASHSALE_REDIS_CLUSTER=1" in lines
    assert len(lines) == len(variables())


def test_config_markdown_prints_the_table() -> None:
    result = runner.invoke(app, ["config", "--markdown"])
    assert result.exit_code == 0 and result.output.strip() == markdown_table()


def test_a_command_given_a_bad_value_exits_2_with_one_line() -> None:
    result = runner.invoke(
        app,
        ["sale", "status"],
        env={"FLASHSALE_REDIS_URL": "redis://127.0.0.1:9/0", "FLASHSALE_REDIS_CLUSTER": "maybe"},
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "flashsale: FLASHSALE_REDIS_CLUSTER must be 1 or 0 (or true/false, yes/no, on/off), "
        "not 'maybe'"
    ]
