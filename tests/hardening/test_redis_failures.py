"""Redis lost and back: limits keep working in process, then are shared again."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid

import httpx
import pytest
import respx

from app.main import Clocks
from app.services.limits.windows import REDIS_RETRY_SECONDS
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import SEND, Records, ThrowawayRedis, free_port
from tests.ops.conftest import parse_metrics, sample
from tests.twilio_fixtures import mock_start


async def _send(client: httpx.AsyncClient, phone: str) -> int:
    return (await client.post(SEND, json={"phone": phone})).status_code


async def test_limits_work_in_process_when_redis_is_unreachable(
    client_for: ClientFactory, twilio: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    start = mock_start(twilio)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with client_for(rate_limit_storage_url=closed) as client:
        started_at = time.perf_counter()
        assert await _send(client, "+996555123456") == 200
        assert time.perf_counter() - started_at < 3
        # The resend cooldown (1/minute) still holds, in this process.
        assert await _send(client, "+996555123456") == 429
        assert await _send(client, "+12025550143") == 200
        assert start.call_count == 2
    assert any(
        record.levelno == logging.ERROR and "Rate-limit storage unreachable" in record.getMessage()
        for record in caplog.records
    )


async def test_redis_lost_and_back(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    throwaway_redis: ThrowawayRedis,
    clock: FakeClock,
) -> None:
    mock_start(twilio)
    shared = {
        "rate_limit_storage_url": throwaway_redis.url,
        "rate_limit_key_prefix": f"hardening-{uuid.uuid4().hex}",
    }
    clocks = Clocks(wall=clock)
    # Two replicas sharing one Redis.
    async with (
        client_for(clocks=clocks, **shared) as first,
        client_for(clocks=clocks, **shared) as second,
    ):
        assert (await first.get("/readyz")).status_code == 200
        assert await _send(first, "+12025550143") == 200
        assert await _send(second, "+12025550143") == 429, "limits are shared through Redis"

        throwaway_redis.stop()
        assert await _send(first, "+12025550144") == 200
        assert await _send(first, "+12025550144") == 429, "in-process limits while Redis is down"
        assert await _send(second, "+12025550145") == 200
        assert await _send(second, "+12025550145") == 429

        throwaway_redis.start()
        # Within the retry interval (5 s) each replica keeps to its own limits, Redis or not.
        clock.advance(4.5)
        assert await _send(first, "+12025550146") == 200
        assert await _send(second, "+12025550146") == 200, "in process until the retry"

        clock.advance(0.5)  # exactly 5 s after the outage was met: Redis is asked again
        assert await _send(first, "+12025550147") == 200
        assert await _send(second, "+12025550147") == 429, "shared again once Redis is back"
        assert (await second.get("/readyz")).status_code == 200


async def test_an_outage_is_logged_and_counted_once_however_many_requests_meet_it(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    throwaway_redis: ThrowawayRedis,
    clock: FakeClock,
    app_logs: Records,
) -> None:
    start = mock_start(twilio)
    settings = {
        "rate_limit_storage_url": throwaway_redis.url,
        "rate_limit_key_prefix": f"hardening-{uuid.uuid4().hex}",
        "rate_limit_send_per_ip": "1000/hour",
    }
    phones = (f"+1202555{n:04d}" for n in itertools.count(200))
    async with client_for(clocks=Clocks(wall=clock), **settings) as client:
        assert await _send(client, next(phones)) == 200
        assert _fallback_metrics(await client.get("/metrics")) == (0.0, 0.0)

        throwaway_redis.stop()
        # Twenty requests meet the outage at once, then more over several retry intervals.
        at_once = await asyncio.gather(*(_send(client, next(phones)) for _ in range(20)))
        assert at_once == [200] * 20
        cooling = next(phones)
        assert await _send(client, cooling) == 200
        for _ in range(3):
            clock.advance(REDIS_RETRY_SECONDS + 1)
            assert await _send(client, next(phones)) == 200
            assert await _send(client, cooling) == 429, "the cooldown holds in process"
        down = _fallback_metrics(await client.get("/metrics"))

        throwaway_redis.start()
        clock.advance(REDIS_RETRY_SECONDS + 1)
        assert await _send(client, next(phones)) == 200
        back = _fallback_metrics(await client.get("/metrics"))

    assert start.call_count == 1 + 20 + 1 + 3 + 1
    assert down == (1.0, 1.0), "one fallback, and degraded while Redis is down"
    assert back == (1.0, 0.0), "not degraded once Redis answers"
    errors = app_logs.at(logging.ERROR, "app.services.limits.windows")
    assert errors == [
        "Rate-limit storage unreachable (ConnectionError); limits are this process's own "
        "until Redis answers again (asked every 5s)"
    ]
    assert app_logs.at(logging.WARNING, "app.services.limits.windows") == [
        "Rate-limit storage reachable again; limits are shared again"
    ]


def _fallback_metrics(answer: httpx.Response) -> tuple[float | None, float | None]:
    """Fallbacks so far, and whether the limits are on the fallback now."""
    samples = parse_metrics(answer.text)
    return (
        sample(samples, "phone_auth_rate_limit_fallbacks_total"),
        sample(samples, "phone_auth_rate_limit_storage_degraded"),
    )


async def test_test_redis_url_shared_between_replicas(
    client_for: ClientFactory, twilio: respx.MockRouter, redis_url: str, key_prefix: str
) -> None:
    mock_start(twilio)
    shared = {"rate_limit_storage_url": redis_url, "rate_limit_key_prefix": key_prefix}
    async with client_for(**shared) as first, client_for(**shared) as second:
        assert await _send(first, "+12025550147") == 200
        assert await _send(second, "+12025550147") == 429
