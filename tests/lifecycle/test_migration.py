"""Migration 0003 goes up and down on SQLite and on PostgreSQL (a database of its own)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from alembic import command
from tests.conftest import alembic_config


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
