"""The statements of the admin domain: the audit trail, read a page at a time and added
to by every admin action."""

from __future__ import annotations

from sqlalchemy import select

from app.core.database import UnitOfWork
from app.models.auth_event import AuthEvent


class AdminRepository:
    """Audit events, in the request's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def events(
        self, user_id: int | None, before_id: int | None, limit: int
    ) -> list[AuthEvent]:
        """Up to `limit` events (of `user_id` when given), newest first, older than the
        event `before_id` when given."""
        query = select(AuthEvent).order_by(AuthEvent.id.desc()).limit(limit)
        if user_id is not None:
            query = query.where(AuthEvent.user_id == user_id)
        if before_id is not None:
            query = query.where(AuthEvent.id < before_id)
        return list((await self._uow.session.scalars(query)).all())

    async def add_event(self, event: AuthEvent) -> None:
        """Store an audit event with the request's change."""
        self._uow.session.add(event)
        await self._uow.session.flush()
