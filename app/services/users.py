"""Users: race-free get-or-create by phone, and lookups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import FieldErrors
from app.models import User
from app.models.base import table_of, utcnow
from app.services.phone import Phone

_U = table_of(User)
_COLUMNS = (
    _U.c.id,
    _U.c.phone,
    _U.c.name,
    _U.c.full_name,
    _U.c.market,
    _U.c.is_active,
    _U.c.is_verified,
    _U.c.created_at,
    _U.c.last_login_at,
)
_TOUCH_ACTIVE = (
    update(_U)
    .where(_U.c.phone == bindparam("b_phone"), _U.c.is_active.is_(True))
    .values(last_login_at=bindparam("b_now"), updated_at=bindparam("b_now"), is_verified=True)
    .returning(*_COLUMNS)
)
_BY_PHONE = select(*_COLUMNS).where(_U.c.phone == bindparam("b_phone"))
_INSERT_POSTGRESQL = (
    postgresql.insert(_U).on_conflict_do_nothing(index_elements=[_U.c.phone]).returning(*_COLUMNS)
)
_INSERT_SQLITE = (
    sqlite.insert(_U).on_conflict_do_nothing(index_elements=[_U.c.phone]).returning(*_COLUMNS)
)


@dataclass(frozen=True, slots=True)
class LoginUser:
    """The user a login resolved to, and whether this login created it."""

    user: User
    created: bool


async def get_or_create_for_login(session: AsyncSession, phone: Phone, market: str) -> LoginUser:
    """Find the user of `phone` or create it, and stamp the login time.

    A returning user costs one UPDATE … RETURNING. A new number is inserted
    with INSERT … ON CONFLICT DO NOTHING, so that concurrent first logins of
    one number make exactly one row, and exactly one of them sees `created`.
    """
    connection = await session.connection()
    now = utcnow()
    touch = {"b_phone": phone.e164, "b_now": now}
    row = (await connection.execute(_TOUCH_ACTIVE, touch)).first()
    if row is not None:
        return LoginUser(user=_user(row), created=False)
    insert = _INSERT_POSTGRESQL if connection.dialect.name == "postgresql" else _INSERT_SQLITE
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
    row = (await connection.execute(insert, values)).first()
    if row is not None:
        return LoginUser(user=_user(row), created=True)
    # A disabled user, or one that a concurrent first login has just made.
    row = (await connection.execute(_TOUCH_ACTIVE, touch)).first()
    if row is None:
        row = (await connection.execute(_BY_PHONE, {"b_phone": phone.e164})).one()
    return LoginUser(user=_user(row), created=False)


def _user(row: Row[Any]) -> User:
    """A detached `User` from a row of `_COLUMNS`."""
    return User(**row._mapping)


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
