"""The in-process windows hold at most RATE_LIMIT_MEMORY_MAX_KEYS keys, in process-only
mode (memory://) and as Redis's fallback: a flood of new numbers leaves memory flat."""

from __future__ import annotations

import gc
import itertools
import tracemalloc
from typing import Any

import pytest
import respx
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from app.core.markets import Markets
from app.core.metrics import Metrics
from app.core.phone import Phone
from app.main import Clocks
from app.services.limits.local import LocalMovingWindow
from app.services.limits.service import LoginLimits
from app.services.limits.steps import parse_limits
from app.services.limits.windows import RateLimiter
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import AS_PROXY, SEND, free_port, from_ip, kg_budget
from tests.twilio_fixtures import mock_start

MIB = 1024 * 1024


def _unreachable_redis() -> str:
    """A Redis URL nothing listens on: the limits live in the fallback."""
    return f"redis://127.0.0.1:{free_port()}/0"


STORAGES = pytest.mark.parametrize(
    "storage_url", ["memory://", _unreachable_redis()], ids=["memory", "redis-fallback"]
)


def _evictions(metrics_text: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "phone_auth_rate_limit_evictions_total":
                return sample.value
    raise AssertionError("phone_auth_rate_limit_evictions_total is not exported")


@STORAGES
async def test_evictions_are_counted_and_forget_the_oldest_numbers_windows(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock, storage_url: str
) -> None:
    mock_start(twilio)
    settings: dict[str, Any] = {
        "rate_limit_storage_url": storage_url,
        "rate_limit_memory_max_keys": 100,
        "rate_limit_send_per_ip": "1000/hour",
        "markets": kg_budget("1000/hour"),
        **AS_PROXY,
    }
    phones = [f"+996555{n:06d}" for n in range(40)]
    async with client_for(clocks=Clocks(wall=clock), **settings) as client:
        sent = [
            await client.post(SEND, json={"phone": p}, headers=from_ip("203.0.113.1"))
            for p in phones
        ]
        # Every window is live: 40 numbers, 3 windows each, + the client's + the budget's
        # make 122 keys, 22 over the bound.
        evicted = _evictions((await client.get("/metrics")).text)
        first_again = await client.post(SEND, json={"phone": phones[0]})
        last_again = await client.post(SEND, json={"phone": phones[-1]})

    assert [s.status_code for s in sent] == [200] * 40
    assert evicted == 22
    # What an eviction forgets: the oldest number's cooldown; the newest keeps its own.
    assert first_again.status_code == 200
    assert last_again.status_code == 429


def _limits(storage_url: str, max_keys: int, clock: FakeClock) -> tuple[LoginLimits, Metrics]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        rate_limit_storage_url=storage_url,
        rate_limit_memory_max_keys=max_keys,
        markets=kg_budget("1000000000/day"),
    )
    metrics = Metrics()
    limiter = RateLimiter(
        settings.rate_limit_storage_url,
        clock=clock,
        max_keys=settings.rate_limit_memory_max_keys,
        on_evict=metrics.rate_limit_evictions.inc,
    )
    return LoginLimits(settings, limiter, metrics), metrics


async def _flood(limits: LoginLimits, numbers: itertools.count[int], count: int) -> None:
    """Sends to `count` new KG numbers, each from a new client."""
    markets = Markets(Settings(_env_file=None))  # type: ignore[call-arg]
    for _ in range(count):
        n = next(numbers)
        # Built directly: parsing keeps a cache of numbers, which is not the windows'.
        phone = Phone(e164=f"+996555{n:06d}", region="KG", national_number=f"555{n:06d}")
        client = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        await limits.take_send(phone, markets.of(phone), client, test_number=False)


@STORAGES
async def test_a_flood_of_new_numbers_at_the_bound_leaves_memory_flat(
    clock: FakeClock, storage_url: str
) -> None:
    bound = 1_000
    limits, metrics = _limits(storage_url, bound, clock)
    numbers = itertools.count()
    gc.collect()
    # Traced from the start, so that what an eviction frees is seen to be freed.
    tracemalloc.start()
    try:
        # A send from a new client to a new number makes four keys: the client's window
        # and the number's three. Past the bound, and once round it, the tables have
        # taken their size.
        sends = bound // 4 + bound
        await _flood(limits, numbers, sends)
        gc.collect()
        at_bound = tracemalloc.get_traced_memory()[0]
        await _flood(limits, numbers, 2 * bound)  # eight times the bound in new keys
        sends += 2 * bound
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        await limits.aclose()

    flooded = (after - at_bound) / MIB
    # Unbounded, the flood would keep ~1.5 MiB more; the budget's one window grows by
    # its 8 bytes a send.
    assert flooded < 0.1, f"{flooded:.2f} MiB kept by a flood at the bound"
    keys = 4 * sends + 1  # and the market's budget
    assert metrics.rate_limit_evictions._value.get() == keys - bound


async def test_the_default_bound_keeps_the_windows_within_about_64_mb(clock: FakeClock) -> None:
    """The default bound times the largest key the default limits make: a client's full
    window of checks (60 hits), under an IPv6 address of the longest spelling."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    [item] = parse_limits(settings.rate_limit_verify_per_ip)
    limiter = LocalMovingWindow(clock)
    keys = 1_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(keys):
            client = f"2001:0db8:85a3:{n:04x}:0000:8a2e:0370:7334"
            for _ in range(item.amount):
                clock.advance(0.001)
                assert await limiter.hit(item, "verify_per_ip", client)
        gc.collect()
        per_key = (tracemalloc.get_traced_memory()[0] - before) / keys
    finally:
        tracemalloc.stop()

    assert item.amount == 60
    assert per_key * settings.rate_limit_memory_max_keys <= 64 * MIB, per_key
