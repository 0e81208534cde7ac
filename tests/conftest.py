"""Shared fixtures: a migrated database, apps built from `Settings`, Twilio mocked with
respx, clocks the tests move, Redis, and the app's log records.

With `TEST_DATABASE_URL` set the database tests run on that server (CI sets
PostgreSQL); without it they run on a SQLite file made for the run. With
`TEST_REDIS_URL` set the Redis tests run on that server; without it they skip.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import respx
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alembic import command
from app.core.config import Settings
from app.main import Clocks, create_app
from app.models.metadata import metadata
from tests.helpers import Records, ThrowawayRedis, free_port
from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SERVICE_SID,
    TWILIO_BASE_URL,
    mock_approving,
)

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _sqlite_url(tmp: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp / 'test.db'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database the tests use: `TEST_DATABASE_URL` or a fresh SQLite file."""
    return os.environ.get("TEST_DATABASE_URL") or _sqlite_url(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def on_postgres(database_url: str) -> bool:
    """Whether the tests run against PostgreSQL."""
    return database_url.startswith("postgresql")


def alembic_config(url: str) -> Config:
    """An Alembic config for `url` that leaves the test's logging alone."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False
    return config


@pytest.fixture
async def empty_database(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables, of the kind the tests run on."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    server = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
        async with server.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        await server.dispose()


@pytest.fixture(scope="session")
async def migrated(database_url: str) -> str:
    """Bring the test database to an empty schema at head, once per run."""
    config = alembic_config(database_url)
    # env.py runs its own event loop, so Alembic goes to a thread.
    await asyncio.to_thread(command.downgrade, config, "base")
    await asyncio.to_thread(command.upgrade, config, "head")
    return database_url


@pytest.fixture(scope="session")
async def db_engine(migrated: str) -> AsyncIterator[AsyncEngine]:
    """An engine for looking at the test database from the tests."""
    engine = create_async_engine(migrated)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty every table after a test that used the database."""
    yield
    if "db_engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("db_engine")
    async with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(delete(table))


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(migrated: str) -> SettingsFactory:
    """Build `Settings` for a test: Twilio configured against the mock, overrides on top."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": migrated,
            "verify_provider": "twilio",
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_verify_service_sid": SERVICE_SID,
            "twilio_verify_base_url": TWILIO_BASE_URL,
            # respx mocks httpx's own transport; production's aiohttp transport
            # has its own tests in tests/verification/test_http_client.py.
            "twilio_http_transport": "httpx",
            "jwt_secret_key": JWT_SECRET,
            "log_level": "INFO",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return factory


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and give a client that calls it in process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def app_logs() -> Iterator[Records]:
    """Log records of the app (`app.*` loggers), from apps built by `client_for`."""
    handler = Records()
    try:
        yield handler
    finally:
        logging.getLogger("app").removeHandler(handler)


@pytest.fixture
def client_for(
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    app_logs: Records,
) -> ClientFactory:
    """`async with client_for(clocks=..., **settings_overrides) as client:` — an app with
    its own settings, and the clocks it reads when given (`Clocks` of fake clocks).

    `create_app` reconfigures logging, which replaces the root logger's handlers
    (pytest's `caplog` among them) and drops those of the `app` loggers, so the
    capture handler and `app_logs` are put back after it.
    """

    def factory(
        clocks: Clocks | None = None, **overrides: Any
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        app = create_app(make_settings(**overrides), clocks=clocks)
        root = logging.getLogger()
        if caplog.handler not in root.handlers:
            root.addHandler(caplog.handler)
        app_logger = logging.getLogger("app")
        if app_logs not in app_logger.handlers:
            app_logger.addHandler(app_logs)
        return running(app)

    return factory


@pytest.fixture
async def client(client_for: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the app with the default test settings."""
    async with client_for() as http:
        yield http


@pytest.fixture
def twilio() -> Iterator[respx.MockRouter]:
    """Twilio's API, mocked at the HTTP boundary; any unmocked call fails the test."""
    with respx.mock(base_url=TWILIO_BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
def twilio_approves(twilio: respx.MockRouter) -> respx.MockRouter:
    """Twilio starts a verification for any number and approves any code."""
    mock_approving(twilio)
    return twilio


# ---------------------------------------------------------------- time


class FakeClock:
    """A clock that stands still until the test moves it: `clock()` reads it,
    `clock.advance(seconds)` moves it. Pass it as `Clocks(wall=...)` or
    `Clocks(monotonic=...)`, or as the `clock` of a limiter or breaker."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        assert seconds >= 0, "time does not go back"
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock that starts at the real epoch time now (so that it can stand for the
    wall clock next to Redis, whose keys expire in real seconds) and stands still."""
    return FakeClock(time.time())


# ---------------------------------------------------------------- Redis


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
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    """A running `redis-server` of this test alone (skipped without the binary)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: cannot stop and restart a Redis")
    server = ThrowawayRedis(binary, free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- settings from the environment


@pytest.fixture
def clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every environment variable that names a setting, so that only the test's
    values count (for tests that build `Settings` themselves)."""
    names = {name.upper() for name in Settings.model_fields}
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key, raising=False)
