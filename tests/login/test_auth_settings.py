"""GET /api/v1/auth/settings: public configuration for frontends, cacheable, with an ETag,
and never a secret."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.core.config import Channel, MarketSettings, Settings
from tests.challenge.support import SECRET, SITE_KEY, captcha
from tests.conftest import ClientFactory
from tests.helpers import private_key, private_pem

SETTINGS = "/api/v1/auth/settings"

DEFAULT_BODY: dict[str, Any] = {
    "markets": [
        {
            "name": "KG",
            "country_code": "+996",
            "region": "KG",
            "language": "ru",
            "channels": ["sms", "whatsapp"],
            "code_ttl_minutes": 10,
        },
        {
            "name": "US",
            "country_code": "+1",
            "region": "US",
            "language": "en",
            "channels": ["sms", "call"],
            "code_ttl_minutes": 10,
        },
    ],
    "code_length": 6,
    "captcha": {"provider": "none", "site_key": None, "mode": None, "may_be_required": False},
    "one_tap_supported": True,
}


async def test_the_defaults_describe_both_markets_and_no_challenge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(SETTINGS)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == DEFAULT_BODY


@pytest.mark.parametrize(
    ("provider", "mode"), [("turnstile", "risk"), ("hcaptcha", "always"), ("recaptcha", "risk")]
)
async def test_a_challenge_is_named_with_its_site_key(
    client_for: ClientFactory, provider: str, mode: str
) -> None:
    async with client_for(**captcha(provider, captcha_mode=mode)) as client:
        body = (await client.get(SETTINGS)).json()

    assert body["captcha"] == {
        "provider": provider,
        "site_key": SITE_KEY,
        "mode": mode,
        "may_be_required": True,
    }


async def test_markets_code_length_and_one_tap_follow_the_settings(
    client_for: ClientFactory,
) -> None:
    markets = {
        "KG": MarketSettings(
            region="KG", language="ky", code_ttl_minutes=5, channels=[Channel.WHATSAPP]
        ),
    }

    async with client_for(markets=markets, verification_code_length=8) as client:
        body = (await client.get(SETTINGS)).json()

    assert body["markets"] == [
        {
            "name": "KG",
            "country_code": "+996",
            "region": "KG",
            "language": "ky",
            "channels": ["whatsapp"],
            "code_ttl_minutes": 5,
        }
    ]
    assert body["code_length"] == 8
    # No market texts its codes: nothing for an app's SMS Retriever to read.
    assert body["one_tap_supported"] is False


async def test_the_answer_is_cacheable_with_an_etag(client: httpx.AsyncClient) -> None:
    response = await client.get(SETTINGS)

    assert response.headers["cache-control"] == "public, max-age=300"
    etag = response.headers["etag"]
    assert len(etag) > 2
    assert etag[0] == etag[-1] == '"'
    assert (await client.get(SETTINGS)).headers["etag"] == etag


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"other", {etag}', "*"],
    ids=["strong", "weak", "list", "any"],
)
async def test_a_matching_if_none_match_answers_304(
    client: httpx.AsyncClient, if_none_match: str
) -> None:
    etag = (await client.get(SETTINGS)).headers["etag"]

    response = await client.get(
        SETTINGS, headers={"If-None-Match": if_none_match.format(etag=etag)}
    )

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == "public, max-age=300"


async def test_a_stale_etag_gets_the_whole_body(client: httpx.AsyncClient) -> None:
    response = await client.get(SETTINGS, headers={"If-None-Match": '"0123456789abcdef"'})

    assert response.status_code == 200
    assert response.json() == DEFAULT_BODY


async def test_the_etag_changes_with_the_settings(client_for: ClientFactory) -> None:
    async with client_for() as client:
        before = (await client.get(SETTINGS)).headers["etag"]
    async with client_for(**captcha()) as client:
        after = await client.get(SETTINGS, headers={"If-None-Match": before})

    assert after.status_code == 200
    assert after.headers["etag"] != before
    assert after.json()["captcha"]["provider"] == "turnstile"


def _secret_fields() -> set[str]:
    """Every setting typed as a secret."""
    return {
        name
        for name, field in Settings.model_fields.items()
        if SecretStr in typing.get_args(field.annotation) or field.annotation is SecretStr
    }


async def test_no_secret_setting_is_in_the_answer(
    client_for: ClientFactory, tmp_path: Path
) -> None:
    pem = private_pem(private_key("RS256"))
    key_file = tmp_path / "key.pem"
    key_file.write_text(private_pem(private_key("RS256")))
    secrets: dict[str, Any] = {
        "jwt_secret_key": "jwt-secret-0123456789-abcdefghijklmnop",
        "jwt_algorithm": "RS256",
        "jwt_private_key": pem,
        "jwt_private_key_file": key_file,
        "twilio_auth_token": "twilio-auth-token-0123456789abcdef",
        "twilio_account_sid": "AC" + "7" * 32,
        "twilio_verify_service_sid": "VA" + "8" * 32,
        "vonage_api_key": "vonage-key-0123",
        "vonage_api_secret": "vonage-secret-0123456789",
        "vonage_signature_secret": "vonage-signature-secret-0123456789",
        **captcha(captcha_secret_key="0x4AAAAAAAthe-captcha-secret-9876543210"),
        "rate_limit_storage_url": "redis://:redis-password-0123456789@127.0.0.1:1/0",
        # The answer touches no database: a URL with a password that reaches none.
        "database_url": "postgresql+asyncpg://phone:db-password-0123456789@127.0.0.1:1/auth",
    }
    # A secret setting added later must join this test.
    assert _secret_fields() <= set(secrets), _secret_fields() - set(secrets)

    async with client_for(**secrets) as client:
        text = (await client.get(SETTINGS)).text

    named = _secret_fields() | {
        "twilio_account_sid",
        "twilio_verify_service_sid",
        "vonage_api_key",
    }
    values = [str(secrets[name]) for name in named]
    values += [line for line in (pem + key_file.read_text()).splitlines() if len(line) > 20]
    values += ["redis-password-0123456789", "db-password-0123456789", SECRET]
    found = [value for value in values if value in text]
    assert found == []
    assert SITE_KEY in text  # the site key is public by design
