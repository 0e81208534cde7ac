"""Users: lookups, the profile a user may change, and deleting an account."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from app.core.database import UnitOfWork
from app.core.metrics import Metrics
from app.core.phone import mask_phone
from app.models.auth_event import AuthEvent, AuthEventType
from app.models.base import utcnow
from app.models.user import User
from app.services.users.exceptions import UserDisabled
from app.services.users.repository import UserRepository

__all__ = ["DeletedUser", "UserDisabled", "UserService"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeletedUser:
    """What is left of a deleted account: its id and masked number."""

    id: int
    phone_masked: str


class UserService:
    """Reads users, applies profile changes and deletes accounts, one per process."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    async def get(self, uow: UnitOfWork, user_id: int) -> User | None:
        """The user with `user_id`, if any."""
        return await UserRepository(uow).get(user_id)

    async def update_profile(self, uow: UnitOfWork, user: User, changes: dict[str, object]) -> User:
        """Apply `name` / `full_name` changes (the body's schema lets nothing else in)."""
        for field in ("name", "full_name"):
            value = changes.get(field)
            if isinstance(value, str):
                setattr(user, field, value)
        await UserRepository(uow).flush()
        return user

    async def delete(
        self, uow: UnitOfWork, user_id: int, *, actor_id: int | None = None
    ) -> DeletedUser | None:
        """Delete the account `user_id` with its personal data, in the unit's transaction.

        Gone: the user row (phone, names), its sessions and refresh tokens (so every
        token of the user answers 401), the verifications of its number and of its
        number changes. The audit trail keeps the user's id: its earlier events lose
        their client IP and keep the masked number, and a `user_deleted` event records
        the id and the masked number only. `actor_id` is the admin who deleted it, or
        None for the user themselves. None when there is no such user (already
        deleted, possibly by a concurrent request): nothing is written then.
        """
        repository = UserRepository(uow)
        user = await repository.get(user_id)
        if user is None:
            return None
        phone_masked = mask_phone(user.phone)
        if not await repository.delete_account(user_id, user.phone):
            return None
        repository.add_event(
            AuthEvent(
                event=AuthEventType.USER_DELETED.value,
                user_id=user_id,
                actor_id=actor_id,
                phone_masked=phone_masked,
                created_at=utcnow(),
            )
        )
        await repository.flush()
        by = "self" if actor_id is None else "admin"
        if self._metrics is not None:
            self._metrics.account_deletions.labels(by).inc()
        logger.info(
            "Account deleted: user=%s by=%s phone=%s",
            user_id,
            by if actor_id is None else f"admin {actor_id}",
            phone_masked,
        )
        return DeletedUser(id=user_id, phone_masked=phone_masked)

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
