"""What a login writes: the approved verification marked used, the user (stamped, or
made when the number is new), the login's session, its first refresh token and
the audit event, all or nothing.

`LoginRepository.store` is the one method; how it runs depends on the database.
PostgreSQL does it in one data-modifying WITH, run autocommitted: one round
trip. SQLite runs the same steps as separate statements in one transaction
(`_store_in_steps`), which PostgreSQL also takes when the one statement cannot
tell a disabled user from a first login made by a concurrent request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Select,
    bindparam,
    exists,
    false,
    insert,
    literal_column,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.type_api import TypeEngine

from app.core.database import UnitOfWork
from app.models.auth_event import AuthEvent, AuthEventType
from app.models.base import table_of
from app.models.login_session import LoginSession, RefreshToken
from app.models.user import User
from app.models.verification import Verification, VerificationStatus

_V, _U, _S, _R, _E = (
    table_of(m) for m in (Verification, User, LoginSession, RefreshToken, AuthEvent)
)
USER_COLUMNS = ("id", "phone", "name", "full_name", "market", "is_active", "is_verified")
# A new user's roles are the column's default; the login reads them for the token.
_USER = [_U.c[name] for name in (*USER_COLUMNS, "roles")]

# The approved check's row marked used; the attempt it took was not a failed one.
# A row locked meanwhile (a concurrent wrong code took the last attempt) is taken
# too: the approval came from one of its counted attempts.
_MARK_APPROVED = (
    update(_V)
    .where(
        _V.c.id == bindparam("b_id"),
        _V.c.status.in_([VerificationStatus.PENDING.value, VerificationStatus.LOCKED.value]),
    )
    .values(
        status=VerificationStatus.APPROVED.value,
        updated_at=bindparam("b_now"),
        failed_attempts=_V.c.failed_attempts - 1,
    )
    .returning(_V.c.id)
)
_TOUCH_ACTIVE_USER = (
    update(_U)
    .where(_U.c.phone == bindparam("b_phone"), _U.c.is_active.is_(True))
    .values(last_login_at=bindparam("b_now"), updated_at=bindparam("b_now"), is_verified=True)
    .returning(*_USER)
)
_USER_BY_PHONE = select(*_USER).where(_U.c.phone == bindparam("b_phone"))
_NEW_USER_VALUES = select(
    bindparam("b_phone", type_=_U.c.phone.type),
    bindparam("b_name", type_=_U.c.name.type),
    literal_column("''", _U.c.full_name.type),
    bindparam("b_market", type_=_U.c.market.type),
    true(),
    true(),
    bindparam("b_now", type_=_U.c.created_at.type),
    bindparam("b_now", type_=_U.c.updated_at.type),
    bindparam("b_now", type_=_U.c.last_login_at.type),
)
_NEW_USER_COLUMNS = [*USER_COLUMNS[1:], "created_at", "updated_at", "last_login_at"]
# Concurrent first logins of one number make exactly one row; only one sees it made.
_INSERT_USER = {
    "postgresql": postgresql.insert(_U)
    .from_select(_NEW_USER_COLUMNS, _NEW_USER_VALUES)
    .on_conflict_do_nothing(index_elements=[_U.c.phone])
    .returning(*_USER),
    # SQLite needs a WHERE in INSERT … SELECT … ON CONFLICT, or it reads ON as a join's.
    "sqlite": sqlite.insert(_U)
    .from_select(_NEW_USER_COLUMNS, _NEW_USER_VALUES.where(true()))
    .on_conflict_do_nothing(index_elements=[_U.c.phone])
    .returning(*_USER),
}
_INSERT_SESSION = insert(_S).values(
    id=bindparam("b_session_id"),
    user_id=bindparam("b_user_id"),
    created_at=bindparam("b_now"),
    auth_time=bindparam("b_auth_time"),
)
_INSERT_REFRESH_TOKEN = insert(_R).values(
    session_id=bindparam("b_session_id"),
    token_hash=bindparam("b_token_hash"),
    created_at=bindparam("b_now"),
    expires_at=bindparam("b_refresh_expires_at"),
)
_INSERT_EVENT = insert(_E).values(
    event=AuthEventType.LOGIN.value,
    user_id=bindparam("b_user_id"),
    session_id=bindparam("b_session_id"),
    phone_masked=bindparam("b_phone_masked"),
    client_ip=bindparam("b_client_ip"),
    created_at=bindparam("b_now"),
)


def _param(name: str, type_: TypeEngine[Any]) -> BindParameter[Any]:
    return bindparam(name, type_=type_)


def _build_one_statement() -> Select[Any]:
    approved = _MARK_APPROVED.cte("approved_verification")
    touched = (
        update(_U)
        .where(
            _U.c.phone == bindparam("b_phone"),
            _U.c.is_active.is_(True),
            exists(select(approved.c.id)),
        )
        .values(last_login_at=bindparam("b_now"), updated_at=bindparam("b_now"), is_verified=True)
        .returning(*_USER, false().label("created"))
        .cte("touched_user")
    )
    inserted = (
        postgresql.insert(_U)
        .from_select(
            _NEW_USER_COLUMNS,
            _NEW_USER_VALUES.where(~exists(select(touched.c.id)), exists(select(approved.c.id))),
        )
        .on_conflict_do_nothing(index_elements=[_U.c.phone])
        .returning(*_USER, true().label("created"))
        .cte("inserted_user")
    )
    login_user = union_all(select(touched), select(inserted)).cte("login_user")
    new_session = _S.insert().from_select(
        ["id", "user_id", "created_at", "auth_time"],
        select(
            _param("b_session_id", _S.c.id.type),
            login_user.c.id,
            _param("b_now", _S.c.created_at.type),
            _param("b_auth_time", _S.c.auth_time.type),
        ),
    )
    new_token = _R.insert().from_select(
        ["session_id", "token_hash", "created_at", "expires_at"],
        select(
            _param("b_session_id", _R.c.session_id.type),
            _param("b_token_hash", _R.c.token_hash.type),
            _param("b_now", _R.c.created_at.type),
            _param("b_refresh_expires_at", _R.c.expires_at.type),
        ).select_from(login_user),
    )
    event = _E.insert().from_select(
        ["event", "user_id", "session_id", "phone_masked", "client_ip", "created_at"],
        select(
            literal_column(f"'{AuthEventType.LOGIN.value}'", _E.c.event.type),
            login_user.c.id,
            _param("b_session_id", _E.c.session_id.type),
            _param("b_phone_masked", _E.c.phone_masked.type),
            _param("b_client_ip", _E.c.client_ip.type),
            _param("b_now", _E.c.created_at.type),
        ),
    )
    return (
        select(approved.c.id.label("verification_id"), *login_user.c)
        .select_from(approved.outerjoin(login_user, true()))
        .add_cte(
            new_session.cte("new_session"),
            new_token.cte("new_refresh_token"),
            event.cte("login_event"),
        )
    )


_STORE_LOGIN_PG = _build_one_statement()


@dataclass(frozen=True, slots=True)
class LoginValues:
    """What one login writes."""

    verification_id: int
    phone: str
    name: str
    market: str
    session_id: str
    token_hash: str
    refresh_expires_at: datetime
    phone_masked: str
    client_ip: str | None
    now: datetime
    auth_time: datetime

    def params(self) -> dict[str, Any]:
        """The statements' bind parameters."""
        return {
            "b_id": self.verification_id,
            "b_phone": self.phone,
            "b_name": self.name,
            "b_market": self.market,
            "b_session_id": self.session_id,
            "b_token_hash": self.token_hash,
            "b_refresh_expires_at": self.refresh_expires_at,
            "b_phone_masked": self.phone_masked,
            "b_client_ip": self.client_ip,
            "b_now": self.now,
            "b_auth_time": self.auth_time,
        }


@dataclass(frozen=True, slots=True)
class StoredLogin:
    """The user a login resolved to and whether it made it. A disabled user's login
    stores only the used verification: no session."""

    user: User
    created: bool


class LoginRepository:
    """Stores logins. `one_statement` picks the implementation (default: PostgreSQL's
    one statement where the database is PostgreSQL), so that tests run both."""

    def __init__(self, uow: UnitOfWork, *, one_statement: bool | None = None) -> None:
        self._uow = uow
        self._one_statement = (
            uow.dialect == "postgresql" if one_statement is None else one_statement
        )

    async def store(self, values: LoginValues) -> StoredLogin | None:
        """Store a login, committed at once; None when another request used the
        verification first (then nothing is written)."""
        params = values.params()
        if not self._one_statement:
            return await self._uow.committed_now(
                lambda connection: _store_in_steps(connection, params, mark_approved=True)
            )
        row = await self._uow.commit_statement_now(_STORE_LOGIN_PG, params)
        if row is None:
            return None
        found = row._asdict()
        del found["verification_id"]
        created = bool(found.pop("created"))
        if found["id"] is not None:
            return StoredLogin(User(**found), created)
        # Only the verification was marked: a disabled user, or a first login of
        # the number that a concurrent request made a moment ago.
        return await self._uow.committed_now(
            lambda connection: _store_in_steps(connection, params, mark_approved=False)
        )


def _store_in_steps(
    connection: Connection, params: dict[str, Any], *, mark_approved: bool
) -> StoredLogin | None:
    if mark_approved and connection.execute(_MARK_APPROVED, params).first() is None:
        return None
    created = False
    row = connection.execute(_TOUCH_ACTIVE_USER, params).first()
    if row is None:
        row = connection.execute(_INSERT_USER[connection.dialect.name], params).first()
        created = row is not None
    if row is None:
        # A disabled user, or one that a concurrent first login has just made.
        row = connection.execute(_TOUCH_ACTIVE_USER, params).first()
    if row is None:
        row = connection.execute(_USER_BY_PHONE, params).one()
    user = User(**row._mapping)
    if not user.is_active:
        return StoredLogin(user, created=False)
    session_params = {**params, "b_user_id": user.id}
    connection.execute(_INSERT_SESSION, session_params)
    connection.execute(_INSERT_REFRESH_TOKEN, session_params)
    connection.execute(_INSERT_EVENT, session_params)
    return StoredLogin(user, created)
