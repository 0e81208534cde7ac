"""`load_settings`: a refused setting is one line (name, what it must be, an example),
never its value, and the command exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.core.settings_loader import load_settings
from tests.helpers import private_key, private_pem

STRONG_SECRET = "Vq3-Ld8_xT1pZ6rK0wYbN4mE7sJ2hG5cF9aUoQiRtSyW"
WEAK_SECRET = "hunter2-is-my-password"
AUTH_TOKEN_VALUE = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from the environment or a `.env` but the test's own."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **env: str
) -> list[str]:
    """The lines load_settings prints for `env`, having checked that it exits 2."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        load_settings()
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    return err.splitlines()


def by_name(lines: list[str]) -> dict[str, str]:
    """Lines by the setting each starts with; one line per setting."""
    names = [line.split(":", 1)[0] for line in lines]
    assert len(set(names)) == len(names), lines
    return dict(zip(names, lines, strict=True))


@pytest.mark.parametrize(
    ("name", "value", "must", "example"),
    [
        (
            "MARKETS",
            "notjson",
            "must be a JSON object of markets by name, each with region and language",
            """MARKETS='{"KG": {"region": "KG", "language": "ru", "sms_budget": "500/hour"}}'""",
        ),
        (
            "RATE_LIMIT_SEND_PER_PHONE",
            "1/fortnight",
            "must be limits like 5/hour (per second, minute, hour or day), separated by ';'",
            "RATE_LIMIT_SEND_PER_PHONE='1/minute;5/hour;10/day'",
        ),
        (
            "VERIFICATION_RETENTION_DAYS",
            "0",
            "must be a whole number from 1 to 3650",
            "VERIFICATION_RETENTION_DAYS=30",
        ),
        ("PORT", "eighty", "must be a whole number from 1 to 65535", "PORT=8000"),
        (
            "METRICS_PORT",
            "0",
            "must be empty or a whole number from 1 to 65535",
            "METRICS_PORT=9090",
        ),
        ("RATE_LIMIT_ENABLED", "maybe", "must be true or false", "RATE_LIMIT_ENABLED=true"),
        (
            "LOG_LEVEL",
            "loud",
            "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
            "LOG_LEVEL=INFO",
        ),
        (
            "ENVIRONMENT",
            "prod",
            "must be one of development, test, production",
            "ENVIRONMENT=development",
        ),
        (
            "TWILIO_READ_TIMEOUT_SECONDS",
            "0",
            "must be a number over 0 and at most 120",
            "TWILIO_READ_TIMEOUT_SECONDS=10.0",
        ),
    ],
)
def test_a_refused_setting_is_one_line_with_what_it_must_be_and_an_example(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    must: str,
    example: str,
) -> None:
    [line] = refused(monkeypatch, capsys, **{name: value})

    assert line.startswith(f"{name}: {must}")
    assert line.endswith(f"; e.g. {example}")


def test_a_market_names_where_inside_markets_the_fault_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    markets = '{"KG": {"region": "KG", "language": "ru", "sms_budget": "9/eon"}, "US": {}}'
    [line] = refused(monkeypatch, capsys, MARKETS=markets)

    assert line.startswith("MARKETS: must be a JSON object of markets by name")
    assert "KG.sms_budget: must be limits like 5/hour" in line
    assert "US.region: Field required" in line
    assert "US.language: Field required" in line


def test_every_refused_setting_is_listed_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = refused(
        monkeypatch,
        capsys,
        MARKETS="notjson",
        RATE_LIMIT_SEND_PER_PHONE="1/fortnight",
        VERIFICATION_RETENTION_DAYS="0",
        # Valid one by one, refused together: listed with the others.
        ENVIRONMENT="production",
        VERIFY_PROVIDER="console",
        JWT_SECRET_KEY=WEAK_SECRET,
    )

    assert set(by_name(lines)) == {
        "MARKETS",
        "RATE_LIMIT_SEND_PER_PHONE",
        "VERIFICATION_RETENTION_DAYS",
        "VERIFY_PROVIDER",
        "JWT_SECRET_KEY",
    }
    assert all("; e.g. " in line for line in lines)


def test_production_lists_each_unsafe_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = by_name(
        refused(
            monkeypatch,
            capsys,
            ENVIRONMENT="production",
            VERIFY_PROVIDER="console",
            JWT_SECRET_KEY=WEAK_SECRET,
        )
    )

    assert lines["VERIFY_PROVIDER"].startswith(
        "VERIFY_PROVIDER: must be twilio when ENVIRONMENT=production"
    )
    assert lines["VERIFY_PROVIDER"].endswith("; e.g. VERIFY_PROVIDER=twilio")
    assert lines["JWT_SECRET_KEY"].startswith(
        "JWT_SECRET_KEY: must be set to a random value of at least 32 bytes"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"JWT_SECRET_KEY": WEAK_SECRET, "ENVIRONMENT": "production"},
        {"TWILIO_AUTH_TOKEN": AUTH_TOKEN_VALUE, "TWILIO_MAX_RETRIES": "9", "PORT": "x"},
        {"DATABASE_URL": f"postgresql://app:{AUTH_TOKEN_VALUE}@db/phone_auth"},
        {"DATABASE_URL": f"sqlite+aiosqlite:///{AUTH_TOKEN_VALUE}?mode=x", "PORT": "0"},
        {
            "JWT_ALGORITHM": "RS256",
            "JWT_PRIVATE_KEY": f"-----BEGIN PRIVATE KEY-----{AUTH_TOKEN_VALUE}",
        },
        {"JWT_SECRET_KEY": AUTH_TOKEN_VALUE + "x" * 40, "JWT_ALGORITHM": "HS512"},
    ],
    ids=["weak-jwt-secret", "twilio-token", "database-password", "sqlite-path", "pem", "secret"],
)
def test_no_line_echoes_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    lines = refused(monkeypatch, capsys, **env)

    assert lines
    secrets = [value for name, value in env.items() if name.endswith(("_KEY", "_TOKEN", "_URL"))]
    for line in lines:
        assert not any(secret in line for secret in secrets), line
        assert AUTH_TOKEN_VALUE not in line
        assert WEAK_SECRET not in line


def test_a_key_that_serving_would_refuse_is_refused_when_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In development too: the service would fail at start, so every command refuses it."""
    rsa_pem = private_pem(private_key("RS256"))
    lines = by_name(refused(monkeypatch, capsys, JWT_ALGORITHM="ES256", JWT_PRIVATE_KEY=rsa_pem))

    assert lines["JWT_PRIVATE_KEY"].startswith(
        "JWT_PRIVATE_KEY: must be an EC key on curve P-256 for JWT_ALGORITHM=ES256"
    )
    assert "PRIVATE KEY-----" not in lines["JWT_PRIVATE_KEY"].split("e.g.")[0]


def test_good_settings_load_without_a_word(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET_KEY", STRONG_SECRET)
    monkeypatch.setenv("RATE_LIMIT_SEND_PER_PHONE", "1/minute;3/hour")

    settings = load_settings(port=8123)

    assert settings.port == 8123
    assert settings.rate_limit_send_per_phone == "1/minute;3/hour"
    assert capsys.readouterr() == ("", "")


def test_a_value_in_dot_env_is_reported_the_same(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("VERIFICATION_RETENTION_DAYS=0\n")

    with pytest.raises(SystemExit) as exited:
        load_settings()

    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("VERIFICATION_RETENTION_DAYS: must be a whole number")
