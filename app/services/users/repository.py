"""Every statement on the `users` table but the login's (`app.services.login.repository`)."""

from __future__ import annotations

from app.core.database import UnitOfWork
from app.models.user import User


class UserRepository:
    """Users, read and changed in the request's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def get(self, user_id: int) -> User | None:
        """The user with `user_id`, if any."""
        return await self._uow.session.get(User, user_id)

    async def flush(self) -> None:
        """Send pending changes of loaded users to the database."""
        await self._uow.session.flush()
