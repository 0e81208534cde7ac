"""Shared fixtures: a migrated database, apps built from `Settings`, Twilio mocked with respx.

With `TEST_DATABASE_URL` set the database tests run on that server (CI sets
PostgreSQL); without it they run on a SQLite file made for the run.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alembic import command
from app.core.config import Settings
from app.main import create_app
from app.models.metadata import metadata
from tests.twilio_fixtures import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, TWILIO_BASE_URL

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
            # has its own tests in tests/services/test_http_client.py.
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
def client_for(
    make_settings: SettingsFactory, db_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> ClientFactory:
    """`async with client_for(**settings_overrides) as client:` — an app with its own settings.

    `create_app` reconfigures logging, which replaces the root logger's handlers
    (pytest's `caplog` among them), so the capture handler is put back after it.
    """

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        app = create_app(make_settings(**overrides))
        root = logging.getLogger()
        if caplog.handler not in root.handlers:
            root.addHandler(caplog.handler)
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
