"""Migration 0005 (delivery attempts and the sync's watermark) goes up and down on SQLite
and on PostgreSQL (a database of its own) and leaves the earlier tables as they were."""

from __future__ import annotations

import asyncio

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from alembic import command
from tests.conftest import alembic_config

NEW_TABLES = {"delivery_attempts", "sync_watermarks"}


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_0005_adds_the_delivery_tables_and_removes_them_going_down(
    empty_database: str,
) -> None:
    config = alembic_config(empty_database)
    await asyncio.to_thread(command.upgrade, config, "0004")
    before = await _tables(empty_database)

    await asyncio.to_thread(command.upgrade, config, "0005")
    assert await _tables(empty_database) - before == NEW_TABLES

    await asyncio.to_thread(command.downgrade, config, "0004")
    assert await _tables(empty_database) == before

    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _tables(empty_database) >= NEW_TABLES
