"""Migration 0004 (roles, disabled accounts, the acting admin of audit events): it keeps
existing users (with no roles), it is reversible on SQLite and PostgreSQL (a database of
its own), and the schema at head is the models'."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, bindparam, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alembic import command
from app.models.base import UTCDateTime, utcnow
from app.models.metadata import metadata
from tests.conftest import alembic_config

NEW_COLUMNS = {
    "users": {"roles", "disabled_at", "disabled_reason"},
    "auth_events": {"actor_id", "details"},
}


def _columns(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {table: {c["name"] for c in inspector.get_columns(table)} for table in NEW_COLUMNS}


def _differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_upgrade_keeps_users_and_downgrade_undoes_it(empty_database: str) -> None:
    config = alembic_config(empty_database)
    before = ScriptDirectory.from_config(config).get_revision("0004").down_revision
    assert isinstance(before, str)
    await asyncio.to_thread(command.upgrade, config, before)
    engine = create_async_engine(empty_database)
    try:
        async with engine.begin() as connection:
            found = await connection.run_sync(_columns)
            assert not any(NEW_COLUMNS[table] & found[table] for table in NEW_COLUMNS)
            await connection.execute(
                text(
                    "INSERT INTO users (phone, name, full_name, market, is_active, "
                    "is_verified, created_at, updated_at) VALUES ('+996555000009', "
                    "'555000009', '', 'KG', true, true, :now, :now)"
                ).bindparams(bindparam("now", type_=UTCDateTime())),
                {"now": utcnow()},
            )

        await asyncio.to_thread(command.upgrade, config, "0004")

        async with engine.connect() as connection:
            found = await connection.run_sync(_columns)
            assert all(NEW_COLUMNS[table] <= found[table] for table in NEW_COLUMNS)
            row = (
                await connection.execute(
                    text("SELECT roles, disabled_at, disabled_reason FROM users")
                )
            ).one()
        assert row.disabled_at is None
        assert row.disabled_reason is None
        assert row.roles in ([], "[]")  # JSON: decoded on PostgreSQL, text on SQLite

        await asyncio.to_thread(command.downgrade, config, before)

        async with engine.connect() as connection:
            found = await connection.run_sync(_columns)
            assert not any(NEW_COLUMNS[table] & found[table] for table in NEW_COLUMNS)
            phones = (await connection.execute(text("SELECT phone FROM users"))).scalars().all()
            assert phones == ["+996555000009"]
            if connection.dialect.name == "sqlite":
                # Rebuilt without the columns, the table keeps ids from coming back.
                table = await connection.scalar(
                    text("SELECT sql FROM sqlite_master WHERE name = 'users'")
                )
                assert "AUTOINCREMENT" in table

        await asyncio.to_thread(command.upgrade, config, "head")

        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_the_migrated_schema_is_the_models(db_engine: AsyncEngine) -> None:
    async with db_engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
