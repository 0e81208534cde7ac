"""`RATE_LIMIT_STORAGE_URL`'s Redis forms, as the `limits` library writes them."""

from __future__ import annotations

import pytest

from app.services.limits.topology import parse_storage_url
from app.services.limits.windows import RateLimiter


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
