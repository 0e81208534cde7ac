"""The engine the app builds: SQL parameters (names, phones, session ids, addresses)
never reach an error's text or the log; a multi-host PostgreSQL DSN reaches the server
that takes writes."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import respx
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import create_engine
from app.models.user import User
from tests.conftest import ClientFactory, SettingsFactory
from tests.helpers import Records, login
from tests.twilio_fixtures import mock_approving

NAME = "private-name-7c41"
PHONE = "+996555000777"


@pytest.fixture
def engine_logs() -> Iterator[Records]:
    """What SQLAlchemy's engine logs at INFO, where it writes statements and parameters."""
    records = Records()
    logger = logging.getLogger("sqlalchemy.engine")
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.setLevel(level)
        logger.removeHandler(records)


async def test_sql_parameters_reach_neither_errors_nor_logs(
    make_settings: SettingsFactory, db_engine: AsyncEngine, engine_logs: Records
) -> None:
    engine = create_engine(make_settings())
    statement = insert(User).values(phone=PHONE, name=NAME, full_name=NAME, market="KG")
    try:
        async with engine.begin() as connection:
            await connection.execute(statement)
        with pytest.raises(IntegrityError) as raised:
            async with engine.begin() as connection:
                await connection.execute(statement)
    finally:
        await engine.dispose()

    error = str(raised.value)
    logged = "\n".join(record.getMessage() for record in engine_logs.records)
    # The statements are there, so the checks below look where parameters would be.
    assert "INSERT INTO users" in error
    assert "INSERT INTO users" in logged
    for value in (NAME, PHONE):
        assert value not in error
        assert value not in logged


async def test_a_multi_host_dsn_logs_in_on_the_server_that_takes_writes(
    make_settings: SettingsFactory,
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    on_postgres: bool,
) -> None:
    """README, Scaling out: every host in `host=` query parameters and
    `target_session_attrs=read-write`; a host that refuses connections is passed over."""
    if not on_postgres:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL): a multi-host DSN is asyncpg's")
    url = make_url(make_settings().database_url)
    user = url.username if url.password is None else f"{url.username}:{url.password}"
    # The README's form: no host before the database, every host in the query.
    multi_host = (
        f"postgresql+asyncpg://{user}@/{url.database}?host=127.0.0.1:1"
        f"&host={url.host}:{url.port or 5432}&target_session_attrs=read-write"
    )
    engine = create_engine(make_settings(database_url=multi_host))
    try:
        async with engine.connect() as connection:
            where = (
                await connection.execute(text("SELECT current_database(), pg_is_in_recovery()"))
            ).one()
    finally:
        await engine.dispose()
    mock_approving(twilio)
    async with client_for(database_url=multi_host) as client:
        ready = await client.get("/readyz")
        body = await login(client, phone="+996555000778")

    assert tuple(where) == (url.database, False)
    assert ready.json()["checks"]["database"] == "ok"
    assert body["user"]["phone"] == "+996555000778"
