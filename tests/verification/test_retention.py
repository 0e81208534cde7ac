"""Data retention: `purge_verifications` and `python -m app purge-verifications`."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.database import Database
from app.models.verification import Verification, VerificationStatus
from app.services.verification.retention import purge_verifications
from tests.conftest import ROOT


async def add_rows(engine: AsyncEngine, ages: dict[str, timedelta]) -> None:
    """One verification row per sid, created `age` ago."""
    now = datetime.now(UTC)
    async with AsyncSession(engine) as session, session.begin():
        for sid, age in ages.items():
            created = now - age
            session.add(
                Verification(
                    phone="+996555123456",
                    market="KG",
                    channel="sms",
                    provider="twilio",
                    provider_sid=sid,
                    status=VerificationStatus.APPROVED,
                    failed_attempts=0,
                    created_at=created,
                    expires_at=created + timedelta(minutes=10),
                    updated_at=created,
                )
            )


async def purge(engine: AsyncEngine, days: int) -> int:
    """Purge through a unit of work of the service's own, committed as a command does."""
    uow = Database(engine).unit_of_work()
    try:
        deleted = await purge_verifications(uow, days)
        await uow.commit()
    finally:
        await uow.close()
    return deleted


async def remaining(engine: AsyncEngine) -> set[str]:
    """The sids of this module's rows still stored (other rows are not this test's)."""
    async with engine.connect() as connection:
        sids = (await connection.execute(select(Verification.provider_sid))).scalars()
    return {sid for sid in sids if sid.startswith(("old-", "new"))}


async def test_purge_deletes_rows_older_than_the_retention(db_engine: AsyncEngine) -> None:
    await add_rows(
        db_engine,
        {
            "old-year": timedelta(days=365),
            "old-31d": timedelta(days=31),
            "old-30d-1h": timedelta(days=30, hours=1),
            "new-29d": timedelta(days=29, hours=23),
            "new-1d": timedelta(days=1),
            "new-now": timedelta(0),
        },
    )

    deleted = await purge(db_engine, 30)

    assert deleted == 3
    assert await remaining(db_engine) == {"new-29d", "new-1d", "new-now"}


async def test_purge_with_nothing_to_delete(db_engine: AsyncEngine) -> None:
    await add_rows(db_engine, {"new": timedelta(days=2)})

    deleted = await purge(db_engine, 7)

    assert deleted == 0
    assert await remaining(db_engine) == {"new"}


async def test_purge_command(db_engine: AsyncEngine, database_url: str) -> None:
    await add_rows(
        db_engine,
        {
            "old-8d": timedelta(days=8),
            "old-30d": timedelta(days=30),
            "new-6d": timedelta(days=6),
            "new-now": timedelta(0),
        },
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWILIO_", "TEST_PHONE", "RATE_LIMIT", "VERIFICATION_"))
    }
    env |= {
        "DATABASE_URL": database_url,
        "VERIFY_PROVIDER": "console",
        "ENVIRONMENT": "development",
        "VERIFICATION_RETENTION_DAYS": "7",
        "LOG_LEVEL": "INFO",
    }

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "purge-verifications",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, err.decode()
    assert await remaining(db_engine) == {"new-6d", "new-now"}
    assert "Purged 2 verification rows older than 7 days" in (out + err).decode()
