"""The challenge's settings: refused when incomplete or malformed, read from the
environment, each provider's own siteverify unless CAPTCHA_VERIFY_URL says otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from tests.challenge.support import (
    HCAPTCHA_URL,
    RECAPTCHA_URL,
    SECRET,
    SITE_KEY,
    TURNSTILE_URL,
    captcha,
)

pytestmark = pytest.mark.usefixtures("clean_settings_env")


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_challenge_is_off_by_default_and_risk_based_once_on() -> None:
    config = settings()

    assert config.captcha_provider == "none"
    assert config.captcha_siteverify_url is None
    assert config.captcha_mode == "risk"
    assert config.captcha_free_sends_per_ip == "3/hour"
    assert config.captcha_expected_hostnames == []
    assert config.captcha_fail_open is False


@pytest.mark.parametrize(
    ("provider", "url"),
    [("turnstile", TURNSTILE_URL), ("hcaptcha", HCAPTCHA_URL), ("recaptcha", RECAPTCHA_URL)],
)
def test_each_provider_is_checked_at_its_own_siteverify(provider: str, url: str) -> None:
    assert settings(**captcha(provider)).captcha_siteverify_url == url
    staging = "http://127.0.0.1:9999/siteverify"
    assert settings(**captcha(provider, captcha_verify_url=staging)).captcha_siteverify_url == (
        staging
    )


@pytest.mark.parametrize(
    ("missing", "message"),
    [("captcha_secret_key", "CAPTCHA_SECRET_KEY"), ("captcha_site_key", "CAPTCHA_SITE_KEY")],
)
def test_a_provider_without_its_keys_is_refused(missing: str, message: str) -> None:
    values = captcha()
    del values[missing]

    with pytest.raises(ValidationError, match=message):
        settings(**values)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("captcha_provider", "funcaptcha"),
        ("captcha_mode", "sometimes"),
        ("captcha_free_sends_per_ip", "three an hour"),
        ("captcha_verify_url", "ftp://captcha.example/siteverify"),
        ("captcha_verify_url", "not a url"),
    ],
)
def test_malformed_challenge_settings_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        settings(**captcha(**{name: value}))


def test_the_challenge_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPTCHA_PROVIDER", "hcaptcha")
    monkeypatch.setenv("CAPTCHA_SECRET_KEY", SECRET)
    monkeypatch.setenv("CAPTCHA_SITE_KEY", SITE_KEY)
    monkeypatch.setenv("CAPTCHA_MODE", "always")
    monkeypatch.setenv("CAPTCHA_FREE_SENDS_PER_IP", "2/minute;5/day")
    monkeypatch.setenv("CAPTCHA_EXPECTED_HOSTNAMES", "Shop.Example., m.shop.example")
    monkeypatch.setenv("CAPTCHA_FAIL_OPEN", "true")

    config = settings()

    assert config.captcha_provider == "hcaptcha"
    assert config.captcha_secret_key is not None
    assert config.captcha_secret_key.get_secret_value() == SECRET
    assert SECRET not in repr(config)
    assert config.captcha_mode == "always"
    assert config.captcha_expected_hostnames == ["shop.example", "m.shop.example"]
    assert config.captcha_fail_open is True
