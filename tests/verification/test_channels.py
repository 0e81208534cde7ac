"""Delivery channels allowed per market."""

from __future__ import annotations

import pytest
import respx

from tests.conftest import ClientFactory
from tests.helpers import SEND
from tests.twilio_fixtures import form, mock_start

KG = "+996555123456"
US = "+12125551234"


@pytest.mark.parametrize(
    ("phone", "channel", "market", "locale"),
    [
        (KG, "sms", "KG", "ru"),
        (KG, "whatsapp", "KG", "ru"),
        (US, "sms", "US", "en"),
        (US, "call", "US", "en"),
    ],
)
async def test_allowed_channel_reaches_twilio_and_the_answer(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    phone: str,
    channel: str,
    market: str,
    locale: str,
) -> None:
    start = mock_start(twilio)
    async with client_for() as client:
        sent = await client.post(SEND, json={"phone": phone, "channel": channel})

    assert sent.status_code == 200, sent.text
    assert sent.json()["channel"] == channel
    assert sent.json()["market"] == market
    assert form(start.calls.last.request) == {
        "To": phone,
        "Channel": channel,
        "Locale": locale,
        "DeviceIp": "127.0.0.1",
    }


async def test_channel_defaults_to_sms(client_for: ClientFactory, twilio: respx.MockRouter) -> None:
    start = mock_start(twilio)
    async with client_for() as client:
        sent = await client.post(SEND, json={"phone": KG})

    assert sent.json()["channel"] == "sms"
    assert form(start.calls.last.request)["Channel"] == "sms"


@pytest.mark.parametrize(
    ("phone", "channel", "market"), [(KG, "call", "KG"), (US, "whatsapp", "US")]
)
async def test_channel_not_allowed_in_the_market(
    client_for: ClientFactory, twilio: respx.MockRouter, phone: str, channel: str, market: str
) -> None:
    start = mock_start(twilio)
    async with client_for() as client:
        refused = await client.post(SEND, json={"phone": phone, "channel": channel})

    assert refused.status_code == 400
    assert refused.json() == {"channel": [f'"{channel}" is not available for {market} numbers.']}
    assert start.call_count == 0


@pytest.mark.parametrize("channel", ["fax", "email", "", 1, None])
async def test_unknown_channel(
    client_for: ClientFactory, twilio: respx.MockRouter, channel: object
) -> None:
    start = mock_start(twilio)
    async with client_for() as client:
        refused = await client.post(SEND, json={"phone": KG, "channel": channel})

    assert refused.status_code == 400
    body = refused.json()
    assert list(body) == ["channel"]
    assert len(body["channel"]) == 1
    assert isinstance(body["channel"][0], str)
    assert start.call_count == 0


async def test_refused_channel_does_not_start_the_cooldown(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for() as client:
        refused = await client.post(SEND, json={"phone": KG, "channel": "call"})
        sent = await client.post(SEND, json={"phone": KG, "channel": "sms"})

    assert refused.status_code == 400
    assert sent.status_code == 200
    assert start.call_count == 1
