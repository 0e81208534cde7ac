"""`python -m app purge-verifications` deletes the delivery attempts older than
VERIFICATION_RETENTION_DAYS too, with the verification rows."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.__main__ import _purge
from app.cli.database import with_database
from app.models.delivery_attempt import DeliveryAttempt
from tests.conftest import SettingsFactory
from tests.delivery.conftest import stored
from tests.delivery.support import attempt_sid, verification_sid


async def add_attempts(engine: AsyncEngine, ages: dict[int, timedelta]) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        for n, age in ages.items():
            await connection.execute(
                insert(DeliveryAttempt).values(
                    provider="twilio",
                    attempt_sid=attempt_sid(n),
                    verification_sid=verification_sid(n),
                    channel="sms",
                    delivery_status="delivered",
                    attempted_at=now - age,
                    synced_at=now,
                )
            )


async def test_purge_deletes_the_attempts_older_than_the_retention(
    make_settings: SettingsFactory, db_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await add_attempts(
        db_engine, {1: timedelta(days=8), 2: timedelta(days=6, hours=23), 3: timedelta(0)}
    )
    settings = make_settings(verification_retention_days=7)
    caplog.set_level(logging.INFO, logger="app")

    status = await asyncio.to_thread(with_database, settings, partial(_purge, days=7))

    assert status == 0
    assert set(await stored(db_engine)) == {attempt_sid(2), attempt_sid(3)}
    assert "Purged 0 verification rows older than 7 days, and 1 delivery attempts" in caplog.text
