"""The Redis forms of `RATE_LIMIT_STORAGE_URL`, parsed without loading redis-py.

The forms are the `limits` library's (its `parse_storage_uri`, mirrored):

- `redis://[[user]:password@]host:6379/0` or `rediss://…`: one server;
- `redis+sentinel://[[user]:password@]host:26379[,host2:26379]/service_name`: the
  master that the sentinels name, found again after a failover. The password
  is the master's and, as in `limits`, the sentinels' too; the query's
  `sentinel_password=` gives the sentinels one of their own, `ssl=true` speaks
  TLS to both;
- `redis+cluster://[[user]:password@]host:7000[,host:7001]`: a Redis Cluster,
  found from any of the nodes (`ssl=true` for TLS).

The settings check the form when they are read; the limits connect with it.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Literal

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
    """Parse a Redis URL of one of the three forms; ValueError when it is none (the
    message never quotes the password)."""
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
        try:
            sub = urllib.parse.urlsplit(f"fake://{location.strip()}")
            host, port = sub.hostname, sub.port
        except ValueError:
            host = port = None
        if host is None or port is None:
            raise ValueError("missing host or port in an address: each is host:port")
        locations.append((host, port))
    service_name = parsed.path.strip("/") or None
    if kind == "sentinel" and service_name is None:
        raise ValueError("a Sentinel URL names its service: redis+sentinel://host:26379/mymaster")
    sentinel_password = query.get("sentinel_password", [password])[0] or None
    ssl = query.get("ssl", ["false"])[0].lower() in _TRUE
    return RedisTopology(
        kind, url, tuple(locations), service_name, username, password, sentinel_password, ssl
    )
