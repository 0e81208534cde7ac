"""The clients that reach the Redis `RATE_LIMIT_STORAGE_URL` names: one server, the
master that Sentinel names (followed across failovers) or a Cluster. The URL's forms
are parsed in `app.core.redis_url`.

Imported only when the URL is Redis (it loads redis-py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.core.redis_url import RedisTopology

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster


@dataclass(slots=True)
class RedisClients:
    """The client that runs the windows' scripts, the one for health pings, the
    master's address now (Sentinel), how to drop the connections to an old master,
    and how to close them all."""

    windows: Redis | RedisCluster
    health: Redis | RedisCluster
    master: Callable[[], Awaitable[str | None]]
    close: Callable[[], Awaitable[None]]
    forget_master: Callable[[], Awaitable[None]] | None = None


async def _no_master() -> str | None:
    return None


def connect(topology: RedisTopology, max_connections: int, timeout: float) -> RedisClients:
    """Clients for `topology`: the windows' own pool bounded by `max_connections`
    (callers queue in `RateLimiter`), and a health client of one connection that is
    asked once, never retried ("can Redis be reached now?")."""
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    timeouts: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    once = Retry(NoBackoff(), 0)
    if topology.kind == "single":
        pool = BlockingConnectionPool.from_url(
            topology.url, max_connections=max_connections, timeout=timeout, **timeouts
        )
        health = Redis.from_url(topology.url, max_connections=1, retry=once, **timeouts)

        async def close_single() -> None:
            await health.aclose()
            await pool.disconnect()

        return RedisClients(Redis(connection_pool=pool), health, _no_master, close_single)
    auth: dict[str, Any] = {"username": topology.username, "password": topology.password}
    if topology.ssl:
        auth["ssl"] = True
    if topology.kind == "cluster":
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        def cluster(connections: int, **options: Any) -> RedisCluster:
            return RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in topology.locations],
                max_connections=connections,
                **auth,
                **timeouts,
                **options,
            )

        windows = cluster(max_connections)
        health_cluster = cluster(1, retry=once)

        async def close_cluster() -> None:
            await health_cluster.aclose()
            await windows.aclose()

        return RedisClients(windows, health_cluster, _no_master, close_cluster)

    from redis.asyncio.sentinel import Sentinel

    sentinel_options: dict[str, Any] = {**timeouts, "password": topology.sentinel_password}
    if topology.username and topology.sentinel_password == topology.password:
        sentinel_options["username"] = topology.username
    if topology.ssl:
        sentinel_options["ssl"] = True
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(topology.locations), sentinel_kwargs=sentinel_options, **auth, **timeouts
    )
    assert topology.service_name is not None
    service = topology.service_name
    master = sentinel.master_for(service, max_connections=max_connections)
    health_master = sentinel.master_for(service, max_connections=1, retry=once)

    async def master_address() -> str | None:
        host, port = await sentinel.discover_master(service)
        return f"{host}:{port}"

    async def close_sentinel() -> None:
        await health_master.aclose()
        await master.aclose()
        for client in sentinel.sentinels:
            await client.aclose()

    async def forget_master() -> None:
        # The pool asks the sentinels for the master only when it opens a connection:
        # the idle ones would otherwise each fail once on the old master.
        await master.connection_pool.disconnect()
        await health_master.connection_pool.disconnect()

    return RedisClients(master, health_master, master_address, close_sentinel, forget_master)
