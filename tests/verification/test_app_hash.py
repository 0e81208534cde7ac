"""One-tap code entry: send-verification's `app_hash` goes to Twilio as `AppHash`, only
with the sms channel."""

from __future__ import annotations

import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import KG_PHONE, SEND, US_PHONE, verifications
from tests.twilio_fixtures import form, mock_start

APP_HASH = "FA+9qCX9VSu"
WRONG_CHANNEL = {"app_hash": ["An app hash can only be used with the sms channel."]}
MALFORMED = {"app_hash": ["Enter a valid app hash: 11 characters of A-Z, a-z, 0-9, + and /."]}


@pytest.mark.parametrize("app_hash", [APP_HASH, "abcdefghijk", "0123456789/"])
async def test_an_sms_with_an_app_hash_asks_twilio_to_append_it(
    client_for: ClientFactory, twilio: respx.MockRouter, app_hash: str
) -> None:
    start = mock_start(twilio)

    async with client_for() as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "app_hash": app_hash})

    assert response.status_code == 200, response.text
    assert response.json()["channel"] == "sms"
    assert form(start.calls.last.request) == {
        "To": KG_PHONE,
        "Channel": "sms",
        "Locale": "ru",
        "DeviceIp": "127.0.0.1",
        "AppHash": app_hash,
    }


async def test_without_an_app_hash_twilio_gets_none(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)

    async with client_for() as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "app_hash": None})

    assert response.status_code == 200, response.text
    assert "AppHash" not in form(start.calls.last.request)


@pytest.mark.parametrize(
    ("phone", "channel"), [(KG_PHONE, "whatsapp"), (US_PHONE, "call")], ids=["whatsapp", "call"]
)
async def test_an_app_hash_with_another_channel_is_refused(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    phone: str,
    channel: str,
) -> None:
    start = mock_start(twilio)

    async with client_for() as client:
        response = await client.post(
            SEND, json={"phone": phone, "channel": channel, "app_hash": APP_HASH}
        )

    assert (response.status_code, response.json()) == (400, WRONG_CHANNEL)
    assert not start.called
    assert await verifications(db_engine) == []


@pytest.mark.parametrize(
    "app_hash",
    [
        pytest.param("FA+9qCX9VS", id="10-characters"),
        pytest.param("FA+9qCX9VSuX", id="12-characters"),
        pytest.param("FA-9qCX9VSu", id="url-safe-dash"),
        pytest.param("FA+9qCX9VS=", id="padding"),
        pytest.param(" FA+9qCX9VS", id="space"),
        pytest.param("", id="empty"),
        pytest.param("FA+9qCX9VSu\n", id="newline"),
    ],
)
async def test_a_malformed_app_hash_is_refused(
    client_for: ClientFactory, twilio: respx.MockRouter, app_hash: str
) -> None:
    start = mock_start(twilio)

    async with client_for() as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "app_hash": app_hash})

    assert (response.status_code, response.json()) == (400, MALFORMED)
    assert not start.called


async def test_an_app_hash_that_is_not_text_is_refused(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)

    async with client_for() as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "app_hash": 12345678901})

    assert (response.status_code, response.json()) == (400, {"app_hash": ["Not a valid string."]})
    assert not start.called
