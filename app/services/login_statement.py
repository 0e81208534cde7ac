"""A whole login stored in one statement on PostgreSQL.

The approved verification marked used, the user (stamped, or made when the
number is new), the login's session, its first refresh token and the audit
event go in one data-modifying WITH, run autocommitted: one round trip where
the portable path takes eight. Nothing is written when another request used
the verification first. When the user is disabled, or a concurrent first
login of the same number made it a moment ago, only the verification is
marked; the caller then takes the portable path for the user, which tells
the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Select,
    bindparam,
    exists,
    false,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.expression import update
from sqlalchemy.sql.type_api import TypeEngine

from app.core.database import AnyRow, StatementRunner
from app.models import (
    AuthEvent,
    AuthEventType,
    AuthSession,
    RefreshToken,
    User,
)
from app.models.base import table_of
from app.services.verifications import MARK_APPROVED

_U, _S, _R, _E = (table_of(m) for m in (User, AuthSession, RefreshToken, AuthEvent))
USER_COLUMNS = ("id", "phone", "name", "full_name", "market", "is_active", "is_verified")


def _param(name: str, type_: TypeEngine[Any]) -> BindParameter[Any]:
    return bindparam(name, type_=type_)


def _build() -> Select[Any]:
    user_columns = [_U.c[name] for name in USER_COLUMNS]
    approved = MARK_APPROVED.cte("approved_verification")
    touched = (
        update(_U)
        .where(
            _U.c.phone == bindparam("b_phone"),
            _U.c.is_active.is_(True),
            exists(select(approved.c.id)),
        )
        .values(last_login_at=bindparam("b_now"), updated_at=bindparam("b_now"), is_verified=True)
        .returning(*user_columns, false().label("created"))
        .cte("touched_user")
    )
    inserted = (
        postgresql.insert(_U)
        .from_select(
            [*USER_COLUMNS[1:], "created_at", "updated_at", "last_login_at"],
            select(
                _param("b_phone", _U.c.phone.type),
                _param("b_name", _U.c.name.type),
                literal_column("''", _U.c.full_name.type),
                _param("b_market", _U.c.market.type),
                true(),
                true(),
                _param("b_now", _U.c.created_at.type),
                _param("b_now", _U.c.updated_at.type),
                _param("b_now", _U.c.last_login_at.type),
            ).where(~exists(select(touched.c.id)), exists(select(approved.c.id))),
        )
        .on_conflict_do_nothing(index_elements=[_U.c.phone])
        .returning(*user_columns, true().label("created"))
        .cte("inserted_user")
    )
    login_user = union_all(select(touched), select(inserted)).cte("login_user")
    new_session = _S.insert().from_select(
        ["id", "user_id", "created_at"],
        select(
            _param("b_session_id", _S.c.id.type),
            login_user.c.id,
            _param("b_now", _S.c.created_at.type),
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


_STORE_LOGIN = _build()


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


async def store_login(writes: StatementRunner, values: LoginValues) -> AnyRow | None:
    """None when the verification was used already; else a row of `verification_id`,
    `USER_COLUMNS` and `created`, the user's columns None to take the portable path."""
    return await writes.first(
        _STORE_LOGIN,
        {
            "b_id": values.verification_id,
            "b_phone": values.phone,
            "b_name": values.name,
            "b_market": values.market,
            "b_session_id": values.session_id,
            "b_token_hash": values.token_hash,
            "b_refresh_expires_at": values.refresh_expires_at,
            "b_phone_masked": values.phone_masked,
            "b_client_ip": values.client_ip,
            "b_now": values.now,
        },
    )
