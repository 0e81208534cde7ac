"""Every statement of a number change: the approved code marked used, the number checked
and moved, the audit events."""

from __future__ import annotations

from sqlalchemy import select, update

from app.core.database import UnitOfWork
from app.models.auth_event import AuthEvent
from app.models.base import table_of, utcnow
from app.models.user import User
from app.models.verification import Verification, VerificationStatus

_V, _U = table_of(Verification), table_of(User)


class PhoneChangeRepository:
    """Users' numbers and their change codes, in the request's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def taken_by_other(self, phone: str, user_id: int) -> bool:
        """Whether another user has `phone`."""
        found = await self._uow.session.scalar(
            select(_U.c.id).where(_U.c.phone == phone, _U.c.id != user_id)
        )
        return found is not None

    async def mark_used(self, verification_id: int) -> bool:
        """Mark the approved change code used; False when another request used it
        first. A row locked meanwhile is taken too, as a login takes it: the approval
        came from one of its counted attempts."""
        used = await self._uow.session.scalar(
            update(_V)
            .where(
                _V.c.id == verification_id,
                _V.c.status.in_(
                    [VerificationStatus.PENDING.value, VerificationStatus.LOCKED.value]
                ),
            )
            .values(
                status=VerificationStatus.APPROVED.value,
                updated_at=utcnow(),
                failed_attempts=_V.c.failed_attempts - 1,
            )
            .returning(_V.c.id)
        )
        return used is not None

    async def move(self, user: User, phone: str, market: str) -> None:
        """Give `user` the number `phone` of `market`; raises IntegrityError when a
        concurrent request gave it to another user."""
        user.phone = phone
        user.market = market
        await self._uow.session.flush()

    async def add_event(self, event: AuthEvent) -> None:
        """Store an audit event with the request."""
        self._uow.session.add(event)
        await self._uow.session.flush()
