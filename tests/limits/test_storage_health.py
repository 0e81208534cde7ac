"""What an operator reads when the limits' Redis falters: the exact log lines, the
failover counted once, and the readiness of a process that keeps its limits in memory."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import pytest
from limits.errors import StorageError
from redis.asyncio import Redis

from app.core.metrics import Metrics
from app.core.redis_url import RedisTopology
from app.services.limits import topology
from app.services.limits.steps import Step, parse_limits
from app.services.limits.topology import RedisClients
from app.services.limits.windows import RateLimiter
from tests.conftest import FakeClock

CLOSED_PORT = "redis://127.0.0.1:1"
LOGGER = "app.services.limits.windows"
UNREACHABLE = (
    "Rate-limit storage unreachable ({}); limits are this process's own until Redis "
    "answers again (asked every 5s)"
)


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_limits_in_memory_are_always_ready() -> None:
    assert await RateLimiter("memory://").ping() is True


async def test_a_readiness_ping_that_finds_redis_down_logs_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RateLimiter(CLOSED_PORT)
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert await limiter.ping() is False
    finally:
        await limiter.aclose()

    assert _messages(caplog, logging.ERROR) == [UNREACHABLE.format("ConnectionError")]


async def test_reading_a_budget_from_an_unreachable_redis_logs_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RateLimiter(CLOSED_PORT)
    [item] = parse_limits("5/hour")
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert await limiter.counts([item], "sms_budget", "KG") == [0]
    finally:
        await limiter.aclose()

    assert _messages(caplog, logging.ERROR) == [UNREACHABLE.format("ConnectionError")]


async def test_the_outage_log_names_the_call_that_failed_not_the_ping(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call timed out, then the ping could not connect: the call's failure is the one
    an operator needs."""
    limiter = RateLimiter(CLOSED_PORT)
    windows = limiter._redis  # the Redis client behind the limiter
    assert windows is not None

    async def timed_out(steps: Sequence[Step]) -> int | None:
        raise StorageError(TimeoutError("Timeout reading from socket"))

    monkeypatch.setattr(windows, "run_in_order", timed_out)
    [item] = parse_limits("1/minute")
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert await limiter.run_in_order([Step(item, ("k",), True)]) is None
    finally:
        await limiter.aclose()

    assert _messages(caplog, logging.ERROR) == [UNREACHABLE.format("TimeoutError")]


class _Answers:
    """A health client that answers every ping."""

    async def ping(self) -> bool:
        return True


async def test_a_sentinel_failover_is_logged_and_counted_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sentinels name the master on every health ping: a new name is a failover, the
    connections to the old master are dropped, and the same name again is nothing."""
    masters = iter(["10.0.0.1:6379", "10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.2:6379"])
    forgotten = 0

    async def master() -> str | None:
        return next(masters)

    async def forget_master() -> None:
        nonlocal forgotten
        forgotten += 1

    async def close() -> None:
        return None

    def sentinel(found: RedisTopology, max_connections: int, timeout: float) -> RedisClients:
        unused = Redis.from_url(CLOSED_PORT)  # the windows' client: not called here
        health: Redis = _Answers()  # type: ignore[assignment]
        return RedisClients(unused, health, master, close, forget_master)

    monkeypatch.setattr(topology, "connect", sentinel)
    metrics = Metrics()
    limiter = RateLimiter("redis+sentinel://127.0.0.1:26379/mymaster", metrics=metrics)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        answers = [await limiter.ping() for _ in range(4)]

    assert answers == [True] * 4
    assert forgotten == 1
    assert metrics.registry.get_sample_value("phone_auth_rate_limit_storage_failovers_total") == 1
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        "Rate-limit storage master moved from 10.0.0.1:6379 to 10.0.0.2:6379 (failover)"
    ]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def storage(request: pytest.FixtureRequest) -> str:
    """memory:// or the test Redis."""
    return "memory://" if request.param == "memory" else str(request.getfixturevalue("redis_url"))


async def test_retry_after_counts_from_the_keys_own_hit(storage: str, clock: FakeClock) -> None:
    limiter = RateLimiter(storage, f"retry-after-{clock()}", clock=clock)
    [item] = parse_limits("1/minute")
    try:
        assert await limiter.run_in_order([Step(item, ("k",), True)]) is None
        clock.advance(10)
        waits = [await limiter.retry_after(item, "k"), await limiter.retry_after(item, "other")]
    finally:
        await limiter.aclose()

    # The hit of 10 s ago leaves the minute in 50 s (and counts until then); another key
    # has a whole window.
    assert waits == [51, 61]


async def test_a_redis_that_stops_answering_costs_a_call_its_timeouts_then_the_fallback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that takes connections and never replies: the call gives up after its
    2 s, the health ping after its own, and the limits are the process's."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RateLimiter(f"redis://127.0.0.1:{port}/0")
    [item] = parse_limits("1/minute")
    began = time.monotonic()
    try:
        # Without its timeouts the call would wait forever: the test gives up first.
        async with asyncio.timeout(10):
            with caplog.at_level(logging.WARNING, logger=LOGGER):
                decided = await limiter.run_in_order([Step(item, ("k",), True)])
    finally:
        await limiter.aclose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()

    assert decided is None
    assert time.monotonic() - began < 8
    assert _messages(caplog, logging.ERROR) == [UNREACHABLE.format("TimeoutError")]
