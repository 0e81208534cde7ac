"""Users: lookups and the profile a user may change."""

from __future__ import annotations

from datetime import datetime

from app.core.database import UnitOfWork
from app.models.user import User
from app.services.users.exceptions import ReadOnlyFields, UserDisabled
from app.services.users.repository import UserRepository

__all__ = ["READ_ONLY_FIELDS", "UserDisabled", "UserService"]

READ_ONLY_FIELDS = ("phone", "is_active", "is_verified")


class UserService:
    """Reads users and applies profile changes, one per process."""

    async def get(self, uow: UnitOfWork, user_id: int) -> User | None:
        """The user with `user_id`, if any."""
        return await UserRepository(uow).get(user_id)

    async def update_profile(self, uow: UnitOfWork, user: User, changes: dict[str, object]) -> User:
        """Apply `name` / `full_name` changes; refuse any change of a read-only field."""
        refused = [
            field
            for field in READ_ONLY_FIELDS
            if changes.get(field) is not None and changes[field] != getattr(user, field)
        ]
        if refused:
            raise ReadOnlyFields(refused)
        for field in ("name", "full_name"):
            value = changes.get(field)
            if isinstance(value, str):
                setattr(user, field, value)
        await UserRepository(uow).flush()
        return user

    async def get_for_update(self, uow: UnitOfWork, user_id: int) -> User | None:
        """The user with `user_id`, locked against concurrent changes until the request
        ends; a concurrent login waits for the change made under this lock."""
        return await UserRepository(uow).get_for_update(user_id)

    async def by_phone(self, uow: UnitOfWork, phone: str) -> User | None:
        """The user with the E.164 number `phone`, if any."""
        return await UserRepository(uow).by_phone(phone)

    async def page(self, uow: UnitOfWork, before_id: int | None, limit: int) -> list[User]:
        """Up to `limit` users, newest first, older than the user `before_id` when given."""
        return await UserRepository(uow).page(before_id, limit)

    async def set_active(
        self, uow: UnitOfWork, user: User, *, active: bool, reason: str | None, now: datetime
    ) -> None:
        """Disable the user (with why and when) or enable them again, written at once."""
        if active:
            user.is_active, user.disabled_at, user.disabled_reason = True, None, None
        elif user.is_active:
            user.is_active, user.disabled_at, user.disabled_reason = False, now, reason
        else:
            user.disabled_reason = reason
        user.updated_at = now
        await UserRepository(uow).flush()

    async def set_roles(self, uow: UnitOfWork, user: User, roles: list[str], now: datetime) -> None:
        """Replace the user's roles (already normalised) and write them."""
        user.roles = list(roles)
        user.updated_at = now
        await UserRepository(uow).flush()
