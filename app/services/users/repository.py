"""Every statement on the `users` table but the login's (`app.services.login.repository`)."""

from __future__ import annotations

from sqlalchemy import select

from app.core.database import UnitOfWork
from app.models.user import User


class UserRepository:
    """Users, read and changed in the request's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def get(self, user_id: int) -> User | None:
        """The user with `user_id`, if any."""
        return await self._uow.session.get(User, user_id)

    async def get_for_update(self, user_id: int) -> User | None:
        """The user with `user_id`, read afresh and locked until the request ends (on
        PostgreSQL; SQLite's transactions already run one at a time)."""
        return await self._uow.session.get(
            User, user_id, with_for_update=True, populate_existing=True
        )

    async def by_phone(self, phone: str) -> User | None:
        """The user with the E.164 number `phone`, if any."""
        return await self._uow.session.scalar(select(User).where(User.phone == phone))

    async def page(self, before_id: int | None, limit: int) -> list[User]:
        """Up to `limit` users, newest first, older than the user `before_id` when given."""
        query = select(User).order_by(User.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(User.id < before_id)
        return list((await self._uow.session.scalars(query)).all())

    async def flush(self) -> None:
        """Send pending changes of loaded users to the database."""
        await self._uow.session.flush()
