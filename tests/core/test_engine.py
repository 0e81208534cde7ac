"""The engine the app builds: SQL parameters (names, phones, session ids, addresses)
never reach an error's text or the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import create_engine
from app.models.user import User
from tests.conftest import SettingsFactory
from tests.helpers import Records

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
