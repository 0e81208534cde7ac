"""Migration 0003 goes up and down on SQLite and on PostgreSQL (a database of its own)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alembic import command
from tests.conftest import alembic_config


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


async def _columns(engine: AsyncEngine, table: str) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: {column["name"] for column in inspect(sync).get_columns(table)}
        )


async def test_0003_upgrades_with_data_and_downgrades(empty_database: str) -> None:
    config = alembic_config(empty_database)
    await asyncio.to_thread(command.upgrade, config, "0002")
    engine = create_async_engine(empty_database)
    created = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            old_id = (
                await connection.execute(
                    text(
                        "INSERT INTO users (phone, name, full_name, market, is_active, "
                        "is_verified, created_at, updated_at) VALUES ('+996555123456', 'n', '', "
                        "'KG', true, true, :t, :t) RETURNING id"
                    ),
                    {"t": created},
                )
            ).scalar_one()
            await connection.execute(
                text("INSERT INTO auth_sessions (id, user_id, created_at) VALUES ('s1', :u, :t)"),
                {"t": created, "u": old_id},
            )
            await connection.execute(
                text(
                    "INSERT INTO verifications (phone, market, channel, provider, provider_sid, "
                    "status, failed_attempts, created_at, expires_at, updated_at) VALUES "
                    "('+996555123456', 'KG', 'sms', 'twilio', 'VE1', 'pending', 0, :t, :t, :t)"
                ),
                {"t": created},
            )

        await asyncio.to_thread(command.upgrade, config, "head")

        assert {"auth_time"} <= await _columns(engine, "auth_sessions")
        assert {"purpose", "user_id"} <= await _columns(engine, "verifications")
        assert {"new_phone_masked"} <= await _columns(engine, "auth_events")
        async with engine.begin() as connection:
            # A session from before keeps the time of its login; a code is a login's.
            assert (
                await connection.execute(text("SELECT auth_time, created_at FROM auth_sessions"))
            ).one()[0] is not None
            assert (
                await connection.execute(text("SELECT purpose FROM verifications"))
            ).scalar() == ("login")
            # A deleted user's id is never given again (SQLite too).
            await connection.execute(text("DELETE FROM auth_sessions"))
            await connection.execute(text("DELETE FROM users"))
            new_id = (
                await connection.execute(
                    text(
                        "INSERT INTO users (phone, name, full_name, market, is_active, "
                        "is_verified, created_at, updated_at) VALUES ('+12025550143', 'n', '', "
                        "'US', true, true, :t, :t) RETURNING id"
                    ),
                    {"t": created},
                )
            ).scalar_one()
            assert new_id > old_id

        await asyncio.to_thread(command.downgrade, config, "0002")

        assert "auth_time" not in await _columns(engine, "auth_sessions")
        assert not {"purpose", "user_id"} & await _columns(engine, "verifications")
        assert "new_phone_masked" not in await _columns(engine, "auth_events")
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM users"))).scalar() == 1

        await asyncio.to_thread(command.upgrade, config, "head")
        assert {"auth_time"} <= await _columns(engine, "auth_sessions")
    finally:
        await engine.dispose()
