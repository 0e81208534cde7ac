"""The Cluster's way of deciding, against the test Redis: a Cluster client whose every
slot is that one server, so that the single-server suite reaches what only a Cluster
does (keys tagged with their identity, one script per run of steps of one identity,
the slots learned once) without starting the Cluster's processes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError

from app.core.config import Settings
from app.core.markets import Markets
from app.core.metrics import Metrics
from app.core.phone import parse_phone
from app.core.redis_url import RedisTopology
from app.services.limits import topology
from app.services.limits.redis import _runs
from app.services.limits.service import LoginLimits, RateLimited
from app.services.limits.steps import Step, parse_limits
from app.services.limits.topology import RedisClients
from app.services.limits.windows import RateLimiter
from tests.conftest import FakeClock
from tests.helpers import new_phone

CLIENT = "203.0.113.7"


class OneNodeCluster(RedisCluster):
    """A Cluster client that sends every script to one server, and notes the keys of
    each script call and how often it learned the slots."""

    def __init__(self, url: str) -> None:  # no super(): nothing to discover
        self.node = Redis.from_url(url)
        self.scripts: list[tuple[str, ...]] = []
        self.initializations = 0
        self.fail_next_initialize = False

    def get_encoder(self) -> Any:
        return self.node.get_encoder()

    async def initialize(self) -> RedisCluster:
        self.initializations += 1
        if self.fail_next_initialize:
            self.fail_next_initialize = False
            raise ClusterDownError("The cluster is down")
        return self

    async def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:  # type: ignore[override]
        self.scripts.append(tuple(str(key) for key in args[:numkeys]))
        return await self.node.evalsha(sha, numkeys, *args)

    async def script_load(self, script: Any) -> Any:  # type: ignore[override]
        return await self.node.script_load(script)

    async def ping(self, **kwargs: Any) -> Any:  # type: ignore[override]
        return await self.node.ping()

    async def aclose(self) -> None:
        await self.node.aclose()

    def __del__(self) -> None:
        return None


@pytest.fixture
async def cluster(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[OneNodeCluster]:
    """`redis+cluster://` URLs reach the test Redis through a `OneNodeCluster`."""
    client = OneNodeCluster(redis_url)

    async def close() -> None:
        await client.aclose()

    def connect(found: RedisTopology, max_connections: int, timeout: float) -> RedisClients:
        assert found.kind == "cluster"
        return RedisClients(client, client, topology._no_master, close)

    monkeypatch.setattr(topology, "connect", connect)
    yield client
    await client.aclose()


def test_a_decision_is_cut_where_the_identity_changes() -> None:
    [minute, hour] = parse_limits("1/minute;5/hour")

    def step(who: str) -> Step:
        return Step(minute if who.islower() else hour, (who.lower(),), True)

    steps = [step(who) for who in "aAbcCa"]
    assert [[s.identifiers[0] for s in run] for run in _runs(steps)] == [
        ["a", "a"],
        ["b"],
        ["c", "c"],
        ["a"],
    ]
    assert _runs([]) == []
    assert _runs(steps[:1]) == [steps[:1]]


@pytest.mark.redis
async def test_a_check_on_a_cluster_is_refused_by_the_window_that_is_full(
    cluster: OneNodeCluster, key_prefix: str, clock: FakeClock
) -> None:
    """Refusals in the second script of a decision, at its first and at its second
    window, name the number's limit and wait for the window that refused."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        rate_limit_verify_per_ip="60/hour;100/day;1000/month",
        rate_limit_verify_per_phone="2/minute;3/day",
    )
    metrics = Metrics()
    limits = LoginLimits(
        settings, RateLimiter("redis+cluster://127.0.0.1:7000", key_prefix, clock=clock), metrics
    )
    phone = parse_phone(new_phone())
    market = Markets(settings).of(phone)

    waits = []
    for _ in range(2):
        await limits.take_verify(phone, market, CLIENT)
        await limits.take_code_check(phone, market, CLIENT)
    with pytest.raises(RateLimited) as minute:
        await limits.take_verify(phone, market, CLIENT)
    waits.append(minute.value.retry_after)
    clock.advance(61)
    await limits.take_verify(phone, market, CLIENT)
    await limits.take_code_check(phone, market, CLIENT)
    clock.advance(1)
    with pytest.raises(RateLimited) as day:
        await limits.take_verify(phone, market, CLIENT)
    waits.append(day.value.retry_after)

    assert waits == [61, 86400 - 62 + 1]
    refusals = metrics.registry.get_sample_value
    assert refusals("phone_auth_rate_limit_refusals_total", {"limit": "verify_per_phone"}) == 2
    assert refusals("phone_auth_rate_limit_refusals_total", {"limit": "verify_per_ip"}) is None
    # A check: the client's script, then the client's at the number; each key carries
    # its identity as a hash tag.
    ip_tag = f"{key_prefix}:{{verify_per_ip/{CLIENT}}}:"
    phone_tag = f"{key_prefix}:{{verify_per_phone/{phone.e164}/{CLIENT}}}:"
    assert [{key.rpartition(":")[0] + ":" for key in keys} for keys in cluster.scripts[:2]] == [
        {ip_tag},
        {phone_tag},
    ]
    assert [len(keys) for keys in cluster.scripts[:2]] == [3, 2]
    assert cluster.initializations == 1


@pytest.mark.redis
async def test_slots_not_learned_are_asked_again_and_the_log_names_why(
    cluster: OneNodeCluster, key_prefix: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RateLimiter("redis+cluster://127.0.0.1:7000", key_prefix, clock=clock)
    [item] = parse_limits("1/minute")
    cluster.fail_next_initialize = True
    with caplog.at_level(logging.WARNING, logger="app.services.limits.windows"):
        assert await limiter.run_in_order([Step(item, (str(uuid.uuid4()),), True)]) is None

    assert cluster.initializations == 2
    assert [r.getMessage() for r in caplog.records] == [
        "Rate-limit storage call failed (ClusterDownError) while Redis answers; asking again"
    ]
