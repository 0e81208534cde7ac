"""Users: lookups and the profile a user may change."""

from __future__ import annotations

from app.core.database import UnitOfWork
from app.models.user import User
from app.services.users.exceptions import ReadOnlyFields, UserDisabled
from app.services.users.repository import UserRepository

__all__ = ["READ_ONLY_FIELDS", "UserDisabled", "UserService"]

READ_ONLY_FIELDS = ("id", "phone", "is_active", "is_verified")


class UserService:
    """Reads users and applies profile changes, one per process."""

    async def get(self, uow: UnitOfWork, user_id: int) -> User | None:
        """The user with `user_id`, if any."""
        return await UserRepository(uow).get(user_id)

    async def update_profile(self, uow: UnitOfWork, user: User, changes: dict[str, object]) -> User:
        """Apply `name` / `full_name` changes; refuse any change of a read-only field."""
        current: dict[str, object] = {
            "id": str(user.id),
            "phone": user.phone,
            "is_active": user.is_active,
            "is_verified": user.is_verified,
        }
        refused = [
            field
            for field in READ_ONLY_FIELDS
            if field in changes and changes[field] != current[field]
        ]
        if refused:
            raise ReadOnlyFields(refused)
        for field in ("name", "full_name"):
            value = changes.get(field)
            if isinstance(value, str):
                setattr(user, field, value)
        await UserRepository(uow).flush()
        return user
