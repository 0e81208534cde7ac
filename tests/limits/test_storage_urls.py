"""`RATE_LIMIT_STORAGE_URL`'s Redis forms, as the `limits` library writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import SSLConnection

from app.core.config import Settings
from app.core.redis_url import parse_storage_url
from app.core.settings_loader import load_settings
from app.services.limits.topology import connect
from app.services.limits.windows import RateLimiter

FORMS = (
    "memory://, redis://<host>:<port>/<db> (or rediss://), "
    "redis+sentinel://<host>:<port>[,<host>:<port>]/<service> or "
    "redis+cluster://<host>:<port>[,<host>:<port>]"
)


def test_a_sentinel_url_names_its_sentinels_service_and_passwords() -> None:
    topology = parse_storage_url(
        "redis+sentinel://:s%40cret@sentinel-0:26379,sentinel-1:26380/mymaster"
        "?sentinel_password=watch&ssl=true"
    )

    assert topology.kind == "sentinel"
    assert topology.locations == (("sentinel-0", 26379), ("sentinel-1", 26380))
    assert topology.service_name == "mymaster"
    assert topology.password == "s@cret"
    assert topology.sentinel_password == "watch"
    assert topology.ssl is True


def test_the_sentinels_share_the_masters_password_unless_given_their_own() -> None:
    shared = parse_storage_url("redis+sentinel://:pw@sentinel:26379/mymaster")
    none = parse_storage_url("redis+sentinel://:pw@sentinel:26379/mymaster?sentinel_password=")

    assert (shared.password, shared.sentinel_password, shared.ssl) == ("pw", "pw", False)
    assert (none.password, none.sentinel_password) == ("pw", None)


def test_a_cluster_url_lists_its_nodes() -> None:
    topology = parse_storage_url("redis+cluster://user:pw@redis-0:7000,redis-1:7001")

    assert topology.kind == "cluster"
    assert topology.locations == (("redis-0", 7000), ("redis-1", 7001))
    assert (topology.username, topology.password) == ("user", "pw")
    assert "pw" not in topology.shown


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel://sentinel:26379", "names its service"),
        ("redis+sentinel://sentinel/mymaster", "missing host or port"),
        ("redis+cluster://redis-0:7000,:7001", "missing host or port"),
        ("memcached://cache:11211", "memory://, redis://"),
    ],
)
def test_a_malformed_storage_url_stops_the_start(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        RateLimiter(url)


async def test_a_sentinel_or_cluster_limiter_shares_its_limits() -> None:
    for url in ("redis+sentinel://127.0.0.1:1/mymaster", "redis+cluster://127.0.0.1:1"):
        limiter = RateLimiter(url)
        assert limiter.shared
        await limiter.aclose()


def test_an_unknown_storage_scheme_is_refused_with_the_forms_it_may_take() -> None:
    with pytest.raises(ValueError, match=r"^RATE_LIMIT_STORAGE_URL must be") as refused:
        RateLimiter("memcached://cache:11211")

    assert str(refused.value) == (
        "RATE_LIMIT_STORAGE_URL must be memory://, redis://, rediss://, redis+sentinel:// "
        "or redis+cluster:// (not a Redis storage URL: memcached://)"
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://:s3cret@sentinel-0:26379,sentinel-1:26379/mymaster",
        "redis+sentinel://:s3cret@sentinel-0:26379/mymaster?sentinel_password=watch&ssl=true",
        "redis+sentinel://:s3cret@sentinel-0:26379/mymaster?sentinel_password=",
        "redis+cluster://:s3cret@redis-0:7000,redis-1:7001",
        "redis+cluster://redis-0:7000?ssl=true",
        "rediss://:s3cret@redis:6380/0",
    ],
)
def test_the_settings_take_each_redis_form(url: str) -> None:
    settings = Settings(_env_file=None, rate_limit_storage_url=url)

    assert settings.rate_limit_storage_url == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (
            "redis+sentinel://:s3cret@sentinel-0:26379",
            "a Sentinel URL names its service: redis+sentinel://host:26379/mymaster",
        ),
        (
            "redis+sentinel://:s3cret@sentinel-0/mymaster",
            "missing host or port in an address: each is host:port",
        ),
        (
            "redis+cluster://:s3cret@redis-0:7000,:7001",
            "missing host or port in an address: each is host:port",
        ),
        (
            "redis+cluster://:s3cret@redis-0:99999",
            "missing host or port in an address: each is host:port",
        ),
    ],
)
def test_a_malformed_sentinel_or_cluster_url_is_one_line_when_the_settings_are_read(
    url: str,
    why: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Refused as every other setting is (exit 2, one line, never the password), not by a
    traceback when the service starts."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URL", url)
    with pytest.raises(SystemExit) as exited:
        load_settings()

    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"RATE_LIMIT_STORAGE_URL: must be {FORMS} ({why}); "
        "e.g. RATE_LIMIT_STORAGE_URL=redis://redis:6379/0"
    ]


def test_an_unknown_scheme_is_refused_naming_every_form(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URL", "redis+unix://:s3cret@redis:6379")
    with pytest.raises(SystemExit):
        load_settings()

    assert capsys.readouterr().err.splitlines() == [
        f"RATE_LIMIT_STORAGE_URL: must be {FORMS}; e.g. RATE_LIMIT_STORAGE_URL=redis://redis:6379/0"
    ]


async def test_a_sentinel_url_connects_with_tls_and_each_password() -> None:
    clients = connect(
        parse_storage_url(
            "redis+sentinel://user:pw@sentinel-0:26379,sentinel-1:26380/mymaster"
            "?sentinel_password=watch&ssl=true"
        ),
        5,
        2.0,
    )
    try:
        windows: Any = clients.windows
        pool = windows.connection_pool
        sentinels = pool.sentinel_manager.sentinels
        assert pool.service_name == "mymaster"
        assert issubclass(pool.connection_class, SSLConnection)
        assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == (
            "user",
            "pw",
        )
        assert [
            (
                s.connection_pool.connection_kwargs["host"],
                s.connection_pool.connection_kwargs["port"],
            )
            for s in sentinels
        ] == [("sentinel-0", 26379), ("sentinel-1", 26380)]
        for sentinel in sentinels:
            assert sentinel.connection_pool.connection_class is SSLConnection
            assert sentinel.connection_pool.connection_kwargs["password"] == "watch"
            assert sentinel.connection_pool.connection_kwargs.get("username") is None
    finally:
        await clients.close()


@pytest.mark.parametrize(
    ("query", "sentinels_password"), [("", "pw"), ("?sentinel_password=", None)]
)
async def test_the_sentinels_get_the_masters_password_unless_told_otherwise(
    query: str, sentinels_password: str | None
) -> None:
    clients = connect(
        parse_storage_url(f"redis+sentinel://:pw@sentinel:26379/mymaster{query}"), 5, 2.0
    )
    try:
        windows: Any = clients.windows
        pool = windows.connection_pool
        [sentinel] = pool.sentinel_manager.sentinels
        assert pool.connection_kwargs["password"] == "pw"
        assert not issubclass(pool.connection_class, SSLConnection)
        assert sentinel.connection_pool.connection_kwargs["password"] == sentinels_password
    finally:
        await clients.close()


async def test_a_cluster_url_connects_to_its_nodes_with_tls_and_its_password() -> None:
    clients = connect(
        parse_storage_url("redis+cluster://user:pw@redis-0:7000,redis-1:7001?ssl=true"), 5, 2.0
    )
    try:
        cluster: Any = clients.windows
        assert [(n.host, n.port) for n in cluster.startup_nodes] == [
            ("redis-0", 7000),
            ("redis-1", 7001),
        ]
        assert cluster.connection_kwargs["connection_class"] is SSLConnection
        assert (cluster.connection_kwargs["username"], cluster.connection_kwargs["password"]) == (
            "user",
            "pw",
        )
    finally:
        await clients.close()
