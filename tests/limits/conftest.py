"""Fixtures of the limits' tests: highly available Redis started for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_topologies import running_cluster, running_sentinel


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
