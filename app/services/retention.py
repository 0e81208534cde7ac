"""Data retention: verification rows are kept for a limited time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Verification
from app.models.base import utcnow


async def purge_verifications(session: AsyncSession, retention_days: int) -> int:
    """Delete verification rows created more than `retention_days` ago; return how many."""
    cutoff = utcnow() - timedelta(days=retention_days)
    result = await session.execute(delete(Verification).where(Verification.created_at < cutoff))
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)
