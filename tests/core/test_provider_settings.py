"""Settings of the providers: Vonage's credentials, each market's provider order and its
price per provider."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import DEFAULT_MARKETS, Settings

pytestmark = pytest.mark.usefixtures("clean_settings_env")


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def kg(**changes: Any) -> dict[str, Any]:
    """The KG market as MARKETS JSON gives it, with some fields changed."""
    market: dict[str, Any] = {"region": "KG", "language": "ru", **changes}
    return {"KG": market}


def test_defaults_keep_twilio_alone_at_the_markets_price() -> None:
    loaded = settings()
    assert [m.providers for m in loaded.markets.values()] == [["twilio"], ["twilio"]]
    assert loaded.markets["KG"].price_for("twilio") == 0.15
    assert loaded.markets["KG"].price_for("vonage") == 0.15  # one price for every provider
    assert loaded.vonage_base_url == "https://api.nexmo.com"
    assert loaded.vonage_brand == "Phone Auth"
    assert loaded.vonage_whatsapp_from is None
    assert settings(vonage_whatsapp_from="+996700000000").vonage_whatsapp_from == "+996700000000"
    assert not loaded.vonage_configured


def test_markets_json_from_the_environment_with_orders_and_prices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    markets = {
        "KG": {
            "region": "KG",
            "language": "ru",
            "providers": ["vonage", "twilio"],
            "price_usd": {"twilio": 0.15, "vonage": 0.09},
        },
        "US": {"region": "US", "language": "en", "providers": ["twilio", "vonage"]},
    }
    monkeypatch.setenv("MARKETS", json.dumps(markets))
    monkeypatch.setenv("VONAGE_API_KEY", "key")
    monkeypatch.setenv("VONAGE_API_SECRET", "secret")
    loaded = settings()
    assert loaded.markets["KG"].providers == ["vonage", "twilio"]
    assert loaded.markets["KG"].price_for("vonage") == 0.09
    assert loaded.markets["KG"].price_for("twilio") == 0.15
    assert loaded.markets["KG"].price_for("console") == 0.0
    assert loaded.markets["US"].price_for("vonage") == 0.0  # the default price
    assert loaded.vonage_configured
    assert loaded.provider_configured("vonage")
    assert not loaded.provider_configured("twilio")


@pytest.mark.parametrize(
    ("market", "complaint"),
    [
        (kg(providers=[]), "at least 1 item"),
        (kg(providers=["sinch"]), "'twilio' or 'vonage'"),
        (kg(providers=["twilio", "twilio"]), "providers lists a provider twice"),
        (kg(providers=["twilio", "vonage"], price_usd={"twilio": 0.1}), "no price for vonage"),
        (kg(price_usd={"twilio": -1}), "greater than or equal to 0"),
        (kg(price_usd=-0.5), "greater than or equal to 0"),
        (kg(price_usd={"sinch": 0.1}), "'twilio' or 'vonage'"),
    ],
    ids=["empty", "unknown", "twice", "unpriced", "negative-map", "negative", "unknown-price"],
)
def test_bad_orders_and_prices_are_refused_at_start(market: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(markets=market)
    assert complaint in str(caught.value)


@pytest.mark.parametrize(
    "values",
    [
        {"vonage_brand": ""},
        {"vonage_brand": "x" * 17},
        {"vonage_base_url": "api.nexmo.com"},
        {"vonage_whatsapp_from": "Marketplace"},
        {"vonage_whatsapp_from": "12345"},
        {"vonage_whatsapp_from": "+0996700000000"},
    ],
)
def test_bad_vonage_settings_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**values)


def test_vonage_needs_both_credentials() -> None:
    assert not settings(vonage_api_key="key").vonage_configured
    assert not settings(vonage_api_secret="secret").vonage_configured
    assert not settings(vonage_api_key="key", vonage_api_secret="").vonage_configured
    assert settings(vonage_api_key="key", vonage_api_secret="secret").vonage_configured


def test_default_markets_are_unchanged_for_a_single_provider() -> None:
    for market in DEFAULT_MARKETS.values():
        assert market.providers == ["twilio"]
        assert isinstance(market.price_usd, float)
