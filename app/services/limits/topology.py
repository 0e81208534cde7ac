"""Which Redis `RATE_LIMIT_STORAGE_URL` names, and the clients that reach it.

The URL forms are the `limits` library's (its `parse_storage_uri`, mirrored):

- `redis://[[user]:password@]host:6379/0` or `rediss://…`: one server;
- `redis+sentinel://[[user]:password@]host:26379[,host2:26379]/service_name`: the
  master that the sentinels name, found again after a failover. The password
  is the master's and, as in `limits`, the sentinels' too; the query's
  `sentinel_password=` gives the sentinels one of their own, `ssl=true` speaks
  TLS to both;
- `redis+cluster://[[user]:password@]host:7000[,host:7001]`: a Redis Cluster,
  found from any of the nodes (`ssl=true` for TLS).

Imported only when the URL is Redis (it loads redis-py).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

Kind = Literal["single", "sentinel", "cluster"]
SCHEMES: dict[str, Kind] = {
    "redis": "single",
    "rediss": "single",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
}
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class RedisTopology:
    """A parsed Redis storage URL."""

    kind: Kind
    url: str
    locations: tuple[tuple[str, int], ...]
    service_name: str | None
    username: str | None
    password: str | None
    sentinel_password: str | None
    ssl: bool

    @property
    def shown(self) -> str:
        """The URL without its password, for logs."""
        return f"{self.kind} {','.join(f'{host}:{port}' for host, port in self.locations)}"


def parse_storage_url(url: str) -> RedisTopology:
    """Parse a Redis URL of one of the three forms; ValueError when it is none."""
    parsed = urllib.parse.urlsplit(url)
    kind = SCHEMES.get(parsed.scheme)
    if kind is None:
        raise ValueError(f"not a Redis storage URL: {parsed.scheme}://")
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    username = urllib.parse.unquote(parsed.username) if parsed.username else None
    password = urllib.parse.unquote(parsed.password) if parsed.password else None
    if kind == "single":
        return RedisTopology(kind, url, (), None, username, password, None, False)
    locations = []
    for location in parsed.netloc.rpartition("@")[2].split(","):
        sub = urllib.parse.urlsplit(f"fake://{location.strip()}")
        if sub.hostname is None or sub.port is None:
            raise ValueError(f"missing host or port in {location!r}")
        locations.append((sub.hostname, sub.port))
    service_name = parsed.path.strip("/") or None
    if kind == "sentinel" and service_name is None:
        raise ValueError("a Sentinel URL names its service: redis+sentinel://host:26379/mymaster")
    sentinel_password = query.get("sentinel_password", [password])[0] or None
    ssl = query.get("ssl", ["false"])[0].lower() in _TRUE
    return RedisTopology(
        kind, url, tuple(locations), service_name, username, password, sentinel_password, ssl
    )


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
