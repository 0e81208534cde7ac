"""Fixtures of the abuse-protection tests: Redis, a unique key prefix, captured app logs."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from tests.abuse.helpers import Records
from tests.conftest import ClientFactory


@pytest.fixture
def redis_url() -> str:
    """`TEST_REDIS_URL` (CI sets it); the test is skipped without it."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL is not set: Redis rate-limit tests need a Redis server")
    return url


@pytest.fixture
async def key_prefix(redis_url: str) -> AsyncIterator[str]:
    """A Redis key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"phone-auth-test-{uuid.uuid4().hex}"
    yield prefix
    client = redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def app_logs() -> Iterator[Records]:
    """Log records of the app (`app.*` loggers), from apps built by `client_for`."""
    handler = Records()
    try:
        yield handler
    finally:
        logging.getLogger("app").removeHandler(handler)


@pytest.fixture
def client_for(client_for: ClientFactory, app_logs: Records) -> ClientFactory:
    """The shared `client_for`, with `app_logs` listening to the app it builds.

    `create_app` reconfigures logging, which drops the handlers of the `app`
    loggers (and pytest's `caplog` on the root), so the handler is added after.
    """

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        running = client_for(**overrides)
        app_logger = logging.getLogger("app")
        if app_logs not in app_logger.handlers:
            app_logger.addHandler(app_logs)
        return running

    return factory
