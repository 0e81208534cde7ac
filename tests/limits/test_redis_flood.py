"""A flood against a healthy Redis: a busy pool waits, and every limit holds exactly."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import httpx
import pytest
import respx

from tests.conftest import ClientFactory
from tests.helpers import (
    AS_PROXY,
    SEND,
    VERIFY,
    Records,
    from_ip,
    kg_budget,
    new_phone,
)
from tests.ops.conftest import parse_metrics, sample
from tests.twilio_fixtures import form, mock_start

FLOODER = "203.0.113.7"
PROBE = "198.51.100.9"
# Requests of the flood in flight at once, and in all.
FLOOD_WORKERS = 200
FLOOD_REQUESTS = 4000
VERIFY_PER_IP = 60
KG_1, KG_2, KG_3, KG_4 = "+996555200001", "+996555200002", "+996555200003", "+996555200004"
US_1, US_2 = "+12025550161", "+12025550162"


async def _flood(
    client: httpx.AsyncClient,
    statuses: Counter[int],
    under_way: asyncio.Event,
    probed: asyncio.Event,
) -> None:
    """Wrong codes for new numbers from one client, until the probe is done or the
    flood's requests are used up."""
    remaining = iter(range(FLOOD_REQUESTS))

    async def worker() -> None:
        for _ in remaining:
            if probed.is_set():
                return
            body = {"phone": new_phone(), "verification_code": "000000"}
            answer = await client.post(VERIFY, json=body, headers=from_ip(FLOODER))
            statuses[answer.status_code] += 1
            if statuses.total() >= FLOOD_WORKERS:
                under_way.set()

    await asyncio.gather(*(worker() for _ in range(FLOOD_WORKERS)))


async def _probe(client: httpx.AsyncClient, under_way: asyncio.Event) -> list[int]:
    """Another client's sends while the flood runs: the cooldown, the market's budget and
    the client's own limit."""
    await under_way.wait()
    statuses = []
    for phone in (KG_1, KG_2, KG_3, KG_4, US_1, US_2):
        answer = await client.post(SEND, json={"phone": phone}, headers=from_ip(PROBE))
        statuses.append(answer.status_code)
    return statuses


@pytest.mark.redis
async def test_a_flood_on_a_busy_pool_keeps_every_limit_exact(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    redis_url: str,
    key_prefix: str,
    app_logs: Records,
) -> None:
    start = mock_start(twilio)
    settings = {
        **AS_PROXY,
        "rate_limit_storage_url": redis_url,
        "rate_limit_key_prefix": key_prefix,
        # Two connections for hundreds of requests in flight: the pool is always busy.
        "rate_limit_redis_max_connections": 2,
        "rate_limit_send_per_ip": "6/hour",
        "rate_limit_verify_per_ip": f"{VERIFY_PER_IP}/hour",
        "markets": kg_budget("3/hour"),
    }
    flooding: Counter[int] = Counter()
    under_way, probed = asyncio.Event(), asyncio.Event()
    async with client_for(**settings) as client:
        # The probe's first send, before the flood: its cooldown lives in Redis only.
        first = await client.post(SEND, json={"phone": KG_1}, headers=from_ip(PROBE))
        assert first.status_code == 200, first.text

        async def probe_then_stop() -> list[int]:
            try:
                return await _probe(client, under_way)
            finally:
                probed.set()

        probe, _ = await asyncio.gather(
            probe_then_stop(), _flood(client, flooding, under_way, probed)
        )
        metrics = parse_metrics((await client.get("/metrics")).text)

    # KG_1 is in its cooldown; KG_2 and KG_3 use up KG's budget of 3, so KG_4 is refused
    # for the budget; US has its own; the client's 7th send is over its 6/hour.
    assert probe == [429, 200, 200, 503, 200, 429], probe
    assert [form(call.request)["To"] for call in start.calls] == [KG_1, KG_2, KG_3, US_1]
    # The flood's first 60 checks find no code (400), every other one is over its limit.
    assert flooding[400] == VERIFY_PER_IP, flooding
    assert set(flooding) == {400, 429}, flooding
    assert FLOOD_WORKERS < flooding.total() < FLOOD_REQUESTS, "the probe ran inside the flood"
    assert app_logs.at(logging.ERROR, "app.services.limits.windows") == []
    assert sample(metrics, "phone_auth_rate_limit_fallbacks_total") == 0.0
    assert sample(metrics, "phone_auth_rate_limit_storage_degraded") == 0.0
