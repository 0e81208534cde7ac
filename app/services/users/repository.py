"""Every statement on the `users` table but the login's (`app.services.login.repository`),
and the statements that delete an account with its personal data."""

from __future__ import annotations

from sqlalchemy import delete, or_, select, update

from app.core.database import UnitOfWork
from app.models.auth_event import AuthEvent
from app.models.base import table_of
from app.models.login_session import LoginSession, RefreshToken
from app.models.user import User
from app.models.verification import Verification

_U, _S, _R, _V, _E = (
    table_of(m) for m in (User, LoginSession, RefreshToken, Verification, AuthEvent)
)


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

    async def delete_account(self, user_id: int, phone: str) -> bool:
        """Delete the user, its sessions and refresh tokens, and the verifications of its
        number and of its number changes; False when the user was already gone (a
        concurrent delete), and then nothing is deleted.

        Refresh tokens go first, then sessions, then the user: the order in which a
        refresh locks them (its token, then its session), so that a delete and a
        refresh of the same session queue rather than deadlock.
        """
        session = self._uow.session
        sessions_of_user = select(_S.c.id).where(_S.c.user_id == user_id).scalar_subquery()
        await session.execute(delete(_R).where(_R.c.session_id.in_(sessions_of_user)))
        await session.execute(delete(_S).where(_S.c.user_id == user_id))
        deleted = await session.scalar(delete(_U).where(_U.c.id == user_id).returning(_U.c.id))
        if deleted is None:
            return False
        await session.execute(delete(_V).where(or_(_V.c.phone == phone, _V.c.user_id == user_id)))
        # The audit trail keeps the account's history by id and masked number only.
        await session.execute(update(_E).where(_E.c.user_id == user_id).values(client_ip=None))
        return True

    def add_event(self, event: AuthEvent) -> None:
        """Store an audit event with the request."""
        self._uow.session.add(event)
