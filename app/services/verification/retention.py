"""Data retention: verification rows are kept for a limited time."""

from __future__ import annotations

from datetime import timedelta

from app.core.database import UnitOfWork
from app.models.base import utcnow
from app.services.verification.repository import VerificationRepository


async def purge_verifications(uow: UnitOfWork, retention_days: int) -> int:
    """Delete verification rows created more than `retention_days` ago; return how many."""
    cutoff = utcnow() - timedelta(days=retention_days)
    return await VerificationRepository(uow).purge_created_before(cutoff)
