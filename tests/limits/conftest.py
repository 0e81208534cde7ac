"""Fixtures of the limits' tests: `LoginLimits` on memory or Redis, and highly available
Redis started for the session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio as redis

from app.core.config import Settings
from app.core.metrics import Metrics
from app.services.limits.service import LoginLimits
from app.services.limits.windows import RateLimiter
from tests.conftest import FakeClock
from tests.redis_topologies import running_cluster, running_protected_sentinel, running_sentinel


class TickingClock:
    """A clock that moves one millisecond each time it is read."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001
        return self.now - 0.001


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster of this test process: its URL."""
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture(scope="session")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master, a replica and a sentinel of this test process: its URL."""
    with running_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as url:
        yield url


@pytest.fixture(scope="session")
def protected_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A master and a sentinel of this test process, each with a password of its own."""
    with running_protected_sentinel(tmp_path_factory.mktemp("redis-protected-sentinel")):
        yield


LimitsFactory = Callable[..., LoginLimits]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_limits(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[LimitsFactory]:
    """LoginLimits on memory:// or on the test Redis, with this test's key prefix."""
    made: list[LoginLimits] = []
    prefix = f"phone-auth-test-{uuid.uuid4().hex}"
    storage = request.getfixturevalue("redis_url") if request.param == "redis" else "memory://"

    def factory(metrics: Metrics | None = None, **values: object) -> LoginLimits:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            rate_limit_storage_url=storage,
            rate_limit_key_prefix=prefix,
            **values,
        )
        limiter = RateLimiter(storage, prefix, clock=clock)
        limits = LoginLimits(settings, limiter, metrics or Metrics())
        made.append(limits)
        return limits

    yield factory
    for limits in made:
        await limits.aclose()
    if storage != "memory://":
        client = redis.from_url(storage)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
