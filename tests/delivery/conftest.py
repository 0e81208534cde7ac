"""The delivery tests' fixtures: Twilio's Attempts API faked at the HTTP boundary, a
clock the tests move, stored rows read back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import Database
from app.models.delivery_attempt import DeliveryAttempt, SyncWatermark
from app.models.verification import Verification
from tests.delivery.support import ATTEMPTS_PATH, FakeAttempts, at

NOW = at("2026-11-30T12:00:00Z")


@dataclass
class Clock:
    """The sync's clock: `now` until a test moves it."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def sync_clock() -> Clock:
    """The sync's clock (the app's `clock` fixture stays the suite's)."""
    return Clock()


@pytest.fixture
def fake_attempts(twilio: respx.MockRouter) -> FakeAttempts:
    """Twilio's attempts list, stateful; the conftest's `twilio` router serves it."""
    fake = FakeAttempts()
    twilio.get(ATTEMPTS_PATH).mock(side_effect=fake)
    return fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=1.0)) as client:
        yield client


@pytest.fixture
def database(db_engine: AsyncEngine) -> Database:
    return Database(db_engine)


async def add_verification(
    engine: AsyncEngine, provider_sid: str, created: datetime, *, market: str = "KG"
) -> int:
    """A verification row as a send stores it; its id."""
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(Verification)
            .values(
                phone="+996555123456" if market == "KG" else "+12025550143",
                market=market,
                channel="sms",
                provider="twilio",
                provider_sid=provider_sid,
                status="approved",
                failed_attempts=0,
                created_at=created,
                expires_at=created + timedelta(minutes=10),
                updated_at=created,
            )
            .returning(Verification.id)
        )
        return int(result.scalar_one())


async def stored(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    """Every stored attempt by sid, as its columns."""
    async with engine.connect() as connection:
        rows = (await connection.execute(select(DeliveryAttempt.__table__))).mappings().all()
    return {row["attempt_sid"]: dict(row) for row in rows}


async def watermark(engine: AsyncEngine, name: str = "twilio_attempts") -> datetime | None:
    async with engine.connect() as connection:
        return (
            await connection.execute(
                select(SyncWatermark.watermark_at).where(SyncWatermark.name == name)
            )
        ).scalar_one_or_none()
