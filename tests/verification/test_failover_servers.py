"""Failover end to end over real sockets: the service's production HTTP client
(aiohttp) against the fake Twilio and the fake Vonage servers of tests/load/.

Stopping a fake's answers, or the fake itself, moves new sends to the other
provider within one request; codes already sent are checked where they were sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import SEND, VERIFY, new_phone, verifications
from tests.load.fake_twilio import FakeTwilio
from tests.load.fake_vonage import FakeVonage
from tests.vonage_fixtures import API_KEY, API_SECRET, BRAND, markets

CODE = "123456"


@pytest.fixture
async def twilio_server() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio(latency=0, approve_code=CODE)
    await fake.start()
    yield fake
    await fake.aclose()


@pytest.fixture
async def vonage_server() -> AsyncIterator[FakeVonage]:
    fake = FakeVonage(approve_code=CODE)
    await fake.start()
    yield fake
    await fake.aclose()


def served(twilio: FakeTwilio, vonage: FakeVonage) -> dict[str, Any]:
    return {
        "twilio_verify_base_url": f"http://127.0.0.1:{twilio.port}",
        "twilio_http_transport": "aiohttp",
        "twilio_max_retries": 0,
        "vonage_api_key": API_KEY,
        "vonage_api_secret": API_SECRET,
        "vonage_brand": BRAND,
        "vonage_base_url": vonage.url,
        "markets": markets(["vonage", "twilio"], ["twilio", "vonage"]),
        "rate_limit_enabled": False,
    }


async def send(client: httpx.AsyncClient, phone: str) -> int:
    return (await client.post(SEND, json={"phone": phone})).status_code


async def verify(client: httpx.AsyncClient, phone: str) -> int:
    answer = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})
    return answer.status_code


async def test_stopping_either_fake_moves_sends_and_loses_no_started_code(
    client_for: ClientFactory,
    twilio_server: FakeTwilio,
    vonage_server: FakeVonage,
    db_engine: AsyncEngine,
) -> None:
    kg_1, us_1, us_2, kg_2 = new_phone(), "+12025550161", "+12025550162", new_phone()
    async with client_for(**served(twilio_server, vonage_server)) as client:
        assert await send(client, kg_1) == 200  # Vonage: first in KG's order
        assert await send(client, us_1) == 200  # Twilio: first in US's order
        assert (vonage_server.calls["start"], twilio_server.requests) == (1, 1)

        twilio_server.stopped = True  # Twilio answers 500 from now on
        assert await send(client, us_2) == 200
        assert vonage_server.calls["start"] == 2, "US moved to Vonage within one request"
        assert await verify(client, kg_1) == 200  # checked at Vonage
        assert await verify(client, us_1) == 502  # only Twilio knows it, and it is down
        twilio_server.stopped = False

        await vonage_server.aclose()  # Vonage unreachable
        assert await send(client, kg_2) == 200, "KG moved to Twilio within one request"
        assert await verify(client, us_1) == 200  # the code sent before still logs in
        assert await verify(client, kg_2) == 200
        assert await verify(client, us_2) == 502  # sent by Vonage, never asked of Twilio

    rows = {row.phone: (row.provider, row.status) for row in await verifications(db_engine)}
    assert rows == {
        kg_1: ("vonage", "approved"),
        us_1: ("twilio", "approved"),
        us_2: ("vonage", "pending"),
        kg_2: ("twilio", "approved"),
    }
    assert vonage_server.calls == {"start": 2, "check": 1, "cancel": 0}
