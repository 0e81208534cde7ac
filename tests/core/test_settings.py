"""Settings: production safety checks, the development secret, defaults the contract relies on."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import MIN_SECRET_BYTES, PLACEHOLDER_SECRETS, Environment, Settings
from app.core.http_server import BoundedProtocol, HttpBounds, server_config

# These tests build `Settings` themselves: the process environment stays out.
pytestmark = pytest.mark.usefixtures("clean_settings_env")

STRONG_SECRET = "Zq8vN2xR7mK4pL9sT1wY6bH3jF5dC0gA"  # 32 random-looking bytes
assert len(STRONG_SECRET) == MIN_SECRET_BYTES


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_production_refuses_the_console_provider() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(environment="production", verify_provider="console", jwt_secret_key=STRONG_SECRET)

    message = str(caught.value)
    assert "VERIFY_PROVIDER=console" in message
    assert "ENVIRONMENT=production" in message


def test_production_refuses_the_console_provider_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("VERIFY_PROVIDER", "console")
    monkeypatch.setenv("JWT_SECRET_KEY", STRONG_SECRET)

    with pytest.raises(ValidationError, match="VERIFY_PROVIDER=console"):
        settings()


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("k" * (MIN_SECRET_BYTES - 1), id="one-byte-short"),
        pytest.param("short", id="short"),
        *(pytest.param(p, id=f"placeholder-{p}") for p in sorted(PLACEHOLDER_SECRETS)),
        pytest.param("CHANGEME", id="placeholder-upper-case"),
    ],
)
def test_production_refuses_a_missing_short_or_placeholder_jwt_secret(secret: str | None) -> None:
    values: dict[str, Any] = {"environment": "production", "verify_provider": "twilio"}
    if secret is not None:
        values["jwt_secret_key"] = secret

    with pytest.raises(ValidationError) as caught:
        settings(**values)

    message = str(caught.value)
    assert "JWT_SECRET_KEY" in message
    assert f"at least {MIN_SECRET_BYTES} bytes" in message
    assert "ENVIRONMENT=production" in message


def test_production_refuses_a_missing_secret_given_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET_KEY", "")

    with pytest.raises(ValidationError, match="JWT_SECRET_KEY"):
        settings()


def test_production_error_message_does_not_echo_the_secret() -> None:
    weak = "weak-but-recognisable-secret"

    with pytest.raises(ValidationError) as caught:
        settings(environment="production", jwt_secret_key=weak)

    assert weak not in str(caught.value)


def test_production_accepts_a_long_random_secret() -> None:
    config = settings(environment="production", jwt_secret_key=STRONG_SECRET)

    assert config.is_production
    assert config.signing_secret == STRONG_SECRET


def test_secret_length_is_counted_in_bytes() -> None:
    # 16 two-byte characters are 32 bytes.
    secret = "éèêëàâäôöûüùçîïñ"
    config = settings(environment="production", jwt_secret_key=secret)

    assert config.signing_secret == secret


@pytest.mark.parametrize(
    "secret", [" " * 40, "a" * 40, "ab" * 20], ids=["spaces", "one-char", "two-chars"]
)
def test_production_refuses_a_low_variety_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET_KEY"):
        settings(environment="production", jwt_secret_key=secret)


@pytest.mark.parametrize("environment", ["development", "test"])
def test_console_provider_is_allowed_outside_production(environment: str) -> None:
    config = settings(environment=environment, verify_provider="console")

    assert config.verify_provider == "console"


def test_development_generates_a_random_secret_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="app.core.config")
    first = settings(environment="development")
    second = settings(environment="development")

    assert first.environment is Environment.DEVELOPMENT
    assert first.jwt_secret_key is None
    assert first.signing_secret != second.signing_secret
    assert len(first.signing_secret.encode()) >= MIN_SECRET_BYTES
    assert first.signing_secret == first.signing_secret, "one secret per Settings object"
    assert "JWT_SECRET_KEY is not set" in caplog.text
    assert first.signing_secret not in caplog.text


def test_configured_secret_is_used_as_is() -> None:
    assert settings(jwt_secret_key=STRONG_SECRET).signing_secret == STRONG_SECRET


def test_default_environment_is_development_and_provider_is_twilio() -> None:
    config = settings()

    assert config.environment is Environment.DEVELOPMENT
    assert config.verify_provider == "twilio"
    assert config.twilio_verify_base_url == "https://verify.twilio.com"
    assert config.jwt_algorithm == "HS256"
    assert config.verification_code_length == 6
    assert config.verification_max_attempts == 5


def test_default_markets_are_kg_in_russian_and_us_in_english() -> None:
    config = settings()

    assert set(config.markets) == {"KG", "US"}
    assert (config.markets["KG"].region, config.markets["KG"].language) == ("KG", "ru")
    assert (config.markets["US"].region, config.markets["US"].language) == ("US", "en")
    assert config.markets["KG"].code_ttl_minutes == 10
    assert config.markets["US"].code_ttl_minutes == 10
    assert set(config.market_by_region) == {"KG", "US"}


@pytest.mark.parametrize(
    ("values", "configured"),
    [
        ({}, False),
        ({"twilio_account_sid": "AC1", "twilio_auth_token": "t"}, False),
        ({"twilio_account_sid": "AC1", "twilio_verify_service_sid": "VA1"}, False),
        ({"twilio_auth_token": "t", "twilio_verify_service_sid": "VA1"}, False),
        (
            {
                "twilio_account_sid": "AC1",
                "twilio_auth_token": "t",
                "twilio_verify_service_sid": "V",
            },
            True,
        ),
    ],
)
def test_twilio_is_configured_only_with_all_three_credentials(
    values: dict[str, str], configured: bool
) -> None:
    assert settings(**values).twilio_configured is configured


def test_old_backend_setting_names_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "auth-token-value-42")
    monkeypatch.setenv("TWILIO_VERIFY_SERVICE_SID", "VA" + "a" * 32)
    monkeypatch.setenv("TWILIO_VERIFY_BASE_URL", "http://127.0.0.1:4010")

    config = settings()

    assert config.twilio_configured
    assert config.twilio_verify_base_url == "http://127.0.0.1:4010"
    assert config.twilio_auth_token is not None
    assert config.twilio_auth_token.get_secret_value() == "auth-token-value-42"
    assert "auth-token-value-42" not in repr(config)


def test_settings_are_frozen() -> None:
    config = settings()

    with pytest.raises(ValidationError):
        config.environment = Environment.PRODUCTION  # type: ignore[misc]


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///./phone_auth.db",
        "sqlite+aiosqlite:////var/lib/phone-auth/db.sqlite",
        "postgresql+asyncpg://app:secret@db:5432/phone_auth",
    ],
)
def test_database_urls_of_both_supported_drivers_are_accepted(url: str) -> None:
    assert settings(database_url=url).database_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://app:s3cr3t-pw@db/phone_auth", "postgresql+asyncpg://"),
        ("mysql+aiomysql://app@db/phone_auth", "postgresql+asyncpg://"),
        ("not a url", "not a database URL"),
        ("sqlite+aiosqlite://", "SQLite needs a file"),
        ("sqlite+aiosqlite:///:memory:", "SQLite needs a file"),
    ],
)
def test_unsupported_database_urls_are_refused_with_what_to_use(url: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(database_url=url)

    assert message in str(caught.value)
    assert "s3cr3t-pw" not in str(caught.value)  # a refused URL's password is not echoed


def test_server_bounds_default_and_reach_uvicorn() -> None:
    defaults = settings()
    assert defaults.metrics_port is None
    config = server_config(defaults)
    assert config.bounds == HttpBounds(
        max_header_bytes=16 * 1024, header_timeout=10.0, body_timeout=10.0, max_connections=1000
    )
    assert config.timeout_keep_alive == 5
    assert config.http is BoundedProtocol
    assert config.ws == "none"  # no WebSocket route, so no upgrade handling

    tuned = server_config(
        settings(
            http_max_header_bytes=8192,
            http_header_timeout_seconds=3,
            http_body_timeout_seconds=4,
            http_keepalive_timeout_seconds=75,
            limit_concurrency=50,
        )
    )
    assert tuned.bounds == HttpBounds(8192, 3.0, 4.0, 50)
    assert tuned.timeout_keep_alive == 75


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        # At most twice the bound is ever held for one request's headers: 64 KiB.
        ({"http_max_header_bytes": 32 * 1024 + 1}, "http_max_header_bytes"),
        ({"http_max_header_bytes": 512}, "http_max_header_bytes"),
        ({"http_header_timeout_seconds": 0}, "http_header_timeout_seconds"),
        ({"http_body_timeout_seconds": 0}, "http_body_timeout_seconds"),
        ({"http_keepalive_timeout_seconds": 0}, "http_keepalive_timeout_seconds"),
        ({"limit_concurrency": 0}, "limit_concurrency"),
        ({"metrics_port": 0}, "metrics_port"),
    ],
)
def test_server_bounds_out_of_range_are_refused(values: dict[str, Any], setting: str) -> None:
    with pytest.raises(ValidationError, match=setting):
        settings(**values)


def test_metrics_port_must_differ_from_port() -> None:
    with pytest.raises(ValidationError, match="METRICS_PORT must differ from PORT"):
        settings(port=8000, metrics_port=8000)
    assert settings(port=8000, metrics_port=9090).metrics_port == 9090
