"""Users: race-free get-or-create by phone, and lookups."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import FieldErrors
from app.models import User
from app.models.base import utcnow
from app.services.phone import Phone


@dataclass(frozen=True, slots=True)
class LoginUser:
    """The user a login resolved to, and whether this login created it."""

    user: User
    created: bool


async def get_or_create_for_login(session: AsyncSession, phone: Phone, market: str) -> LoginUser:
    """Find the user of `phone` or create it, and stamp the login time.

    Uses INSERT … ON CONFLICT DO NOTHING so that concurrent first logins of
    one number make exactly one row, and exactly one of them sees `created`.
    """
    now = utcnow()
    values = {
        "phone": phone.e164,
        "name": phone.national_number,
        "full_name": "",
        "market": market,
        "is_active": True,
        "is_verified": True,
        "created_at": now,
        "updated_at": now,
        "last_login_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(User).values(**values).on_conflict_do_nothing(index_elements=[User.phone])
    ).returning(User.id)
    new_id = (await session.execute(statement)).scalar_one_or_none()
    if new_id is not None:
        user = await session.get_one(User, new_id)
        return LoginUser(user=user, created=True)
    user = (await session.execute(select(User).where(User.phone == phone.e164))).scalar_one()
    if user.is_active:
        user.last_login_at = now
        user.is_verified = True
        await session.flush()
    return LoginUser(user=user, created=False)


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    """The user with `user_id`, if any."""
    return await session.get(User, user_id)


READ_ONLY_FIELDS = ("phone", "is_active", "is_verified")
MSG_READ_ONLY = "This field cannot be changed."


async def update_profile(
    session: AsyncSession,
    user: User,
    changes: dict[str, object],
) -> User:
    """Apply `name` / `full_name` changes; refuse any change of a read-only field."""
    refused = {
        field: [MSG_READ_ONLY]
        for field in READ_ONLY_FIELDS
        if changes.get(field) is not None and changes[field] != getattr(user, field)
    }
    if refused:
        raise FieldErrors(refused)
    for field in ("name", "full_name"):
        value = changes.get(field)
        if isinstance(value, str):
            setattr(user, field, value)
    await session.flush()
    return user
