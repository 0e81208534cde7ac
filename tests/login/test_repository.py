"""`LoginRepository.store`, both ways: PostgreSQL's one statement and the steps in one
transaction (SQLite's, and PostgreSQL's when the one statement cannot tell).

Each test runs against both implementations (`one_statement=True/False`); the one
statement is PostgreSQL's, so it skips on SQLite.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import Database
from app.core.phone import Phone, parse_phone
from app.models.base import utcnow
from app.models.user import User
from app.models.verification import Verification
from app.services.login.repository import LoginRepository, LoginValues, StoredLogin
from tests.helpers import (
    KG_MASKED,
    KG_PHONE,
    event_rows,
    refresh_rows,
    session_rows,
    users,
    verifications,
)

CONCURRENT = 20
CLIENT_IP = "203.0.113.7"


@pytest.fixture(params=[True, False], ids=["one-statement", "in-steps"])
def one_statement(request: pytest.FixtureRequest, on_postgres: bool) -> bool:
    """Which implementation `LoginRepository` runs: each test runs with both."""
    chosen: bool = request.param
    if chosen and not on_postgres:
        pytest.skip("the one-statement login is PostgreSQL's (TEST_DATABASE_URL)")
    return chosen


async def add_verification(
    engine: AsyncEngine, phone: Phone, *, status: str = "pending", failed_attempts: int = 1
) -> int:
    """A verification row of `phone`, as the check leaves it: its attempt spent."""
    now = utcnow()
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(Verification).returning(Verification.id),
            {
                "phone": phone.e164,
                "market": "KG",
                "channel": "sms",
                "provider": "twilio",
                "provider_sid": "VE" + uuid.uuid4().hex,
                "status": status,
                "failed_attempts": failed_attempts,
                "created_at": now,
                "expires_at": now + timedelta(minutes=10),
                "updated_at": now,
            },
        )
        return int(result.scalar_one())


async def add_user(
    engine: AsyncEngine, phone: Phone, *, active: bool = True, last_login_at: datetime
) -> int:
    """A user of `phone` who logged in before, at `last_login_at`."""
    async with engine.begin() as connection:
        result = await connection.execute(
            insert(User).returning(User.id),
            {
                "phone": phone.e164,
                "name": "Aida",
                "full_name": "Aida Bekova",
                "market": "KG",
                "is_active": active,
                "is_verified": False,
                "created_at": last_login_at,
                "updated_at": last_login_at,
                "last_login_at": last_login_at,
            },
        )
        return int(result.scalar_one())


def login_values(verification_id: int, phone: Phone, now: datetime) -> LoginValues:
    """What one login of `phone` with `verification_id` writes, with a fresh session."""
    return LoginValues(
        verification_id=verification_id,
        phone=phone.e164,
        name=phone.national_number,
        market="KG",
        session_id=uuid.uuid4().hex,
        token_hash=uuid.uuid4().hex * 2,
        refresh_expires_at=now + timedelta(days=30),
        phone_masked=phone.masked,
        client_ip=CLIENT_IP,
        now=now,
        auth_time=now,
    )


async def store(
    engine: AsyncEngine, values: LoginValues, one_statement: bool
) -> StoredLogin | None:
    """`LoginRepository.store` on a unit of work of its own, as a request runs it."""
    uow = Database(engine).unit_of_work()
    try:
        return await LoginRepository(uow, one_statement=one_statement).store(values)
    finally:
        await uow.close()


def user_fields(user: User) -> dict[str, Any]:
    """The columns a login reads back, of a User that is not in a session."""
    return {
        "id": user.id,
        "phone": user.phone,
        "name": user.name,
        "full_name": user.full_name,
        "market": user.market,
        "is_active": user.is_active,
        "is_verified": user.is_verified,
    }


async def writes_of_logins(engine: AsyncEngine) -> tuple[int, int, int]:
    """How many sessions, refresh tokens and audit events there are."""
    return (
        len(await session_rows(engine)),
        len(await refresh_rows(engine)),
        len(await event_rows(engine)),
    )


async def test_a_used_verification_stores_nothing(
    db_engine: AsyncEngine, one_statement: bool
) -> None:
    phone = parse_phone(KG_PHONE)
    used = await add_verification(db_engine, phone, status="approved", failed_attempts=0)
    [before] = await verifications(db_engine)

    stored = await store(db_engine, login_values(used, phone, utcnow()), one_statement)

    assert stored is None
    assert await users(db_engine) == []
    assert await writes_of_logins(db_engine) == (0, 0, 0)
    assert await verifications(db_engine) == [before]


@pytest.mark.parametrize("status", ["expired", "failed"])
async def test_a_finished_verification_stores_nothing(
    db_engine: AsyncEngine, one_statement: bool, status: str
) -> None:
    """Replaced by a newer code, or failed: its approval is not a login."""
    phone = parse_phone(KG_PHONE)
    finished = await add_verification(db_engine, phone, status=status)

    stored = await store(db_engine, login_values(finished, phone, utcnow()), one_statement)

    assert stored is None
    assert await users(db_engine) == []
    assert await writes_of_logins(db_engine) == (0, 0, 0)


async def test_an_approval_stands_on_a_row_a_concurrent_wrong_code_locked(
    db_engine: AsyncEngine, one_statement: bool
) -> None:
    """The right code took attempt 4, a wrong one attempt 5 and locked the row before
    Twilio's approval came back: the approval came from a counted attempt."""
    phone = parse_phone(KG_PHONE)
    locked = await add_verification(db_engine, phone, status="locked", failed_attempts=5)

    stored = await store(db_engine, login_values(locked, phone, utcnow()), one_statement)

    assert stored is not None
    assert stored.created is True
    assert [row.phone for row in await users(db_engine)] == [KG_PHONE]
    assert await writes_of_logins(db_engine) == (1, 1, 1)
    [row] = await verifications(db_engine)
    assert (row.status, row.failed_attempts) == ("approved", 4)


async def test_a_verification_stores_one_login_only(
    db_engine: AsyncEngine, one_statement: bool
) -> None:
    phone = parse_phone(KG_PHONE)
    verification = await add_verification(db_engine, phone)
    first = await store(db_engine, login_values(verification, phone, utcnow()), one_statement)
    [after_first] = await verifications(db_engine)

    again = await store(db_engine, login_values(verification, phone, utcnow()), one_statement)

    assert first is not None
    assert again is None
    assert len(await users(db_engine)) == 1
    assert await writes_of_logins(db_engine) == (1, 1, 1)
    assert await verifications(db_engine) == [after_first]


async def test_a_new_number_makes_the_user_and_its_session(
    db_engine: AsyncEngine, one_statement: bool
) -> None:
    phone = parse_phone(KG_PHONE)
    verification = await add_verification(db_engine, phone)
    now = utcnow()
    values = login_values(verification, phone, now)

    stored = await store(db_engine, values, one_statement)

    assert stored is not None
    assert stored.created is True
    [user] = await users(db_engine)
    assert user_fields(stored.user) == {
        "id": user.id,
        "phone": KG_PHONE,
        "name": "555123456",
        "full_name": "",
        "market": "KG",
        "is_active": True,
        "is_verified": True,
    }
    assert (user.created_at, user.updated_at, user.last_login_at) == (now, now, now)
    [session] = await session_rows(db_engine)
    assert session == {
        "id": values.session_id,
        "user_id": user.id,
        "created_at": now,
        "auth_time": now,
        "revoked_at": None,
        "revoked_reason": None,
    }
    [token] = await refresh_rows(db_engine)
    assert token == {
        "id": token["id"],
        "session_id": values.session_id,
        "token_hash": values.token_hash,
        "parent_id": None,
        "created_at": now,
        "expires_at": values.refresh_expires_at,
        "rotated_at": None,
    }
    [event] = await event_rows(db_engine)
    assert event == {
        "id": event["id"],
        "event": "login",
        "user_id": user.id,
        "session_id": values.session_id,
        "phone_masked": KG_MASKED,
        "client_ip": CLIENT_IP,
        "created_at": now,
        "new_phone_masked": None,
        "actor_id": None,
        "details": None,
    }
    # The verification is used; the attempt the approved check took was not a failed one.
    [row] = await verifications(db_engine)
    assert (row.id, row.status, row.failed_attempts, row.updated_at) == (
        verification,
        "approved",
        0,
        now,
    )


async def test_a_returning_user_is_stamped_not_made(
    db_engine: AsyncEngine, one_statement: bool
) -> None:
    phone = parse_phone(KG_PHONE)
    last_week = utcnow() - timedelta(days=7)
    existing = await add_user(db_engine, phone, last_login_at=last_week)
    verification = await add_verification(db_engine, phone)
    now = utcnow()
    values = login_values(verification, phone, now)

    stored = await store(db_engine, values, one_statement)

    assert stored is not None
    assert stored.created is False
    assert user_fields(stored.user) == {
        "id": existing,
        "phone": KG_PHONE,
        "name": "Aida",
        "full_name": "Aida Bekova",
        "market": "KG",
        "is_active": True,
        "is_verified": True,
    }
    [user] = await users(db_engine)
    assert (user.id, user.name, user.is_verified) == (existing, "Aida", True)
    assert (user.created_at, user.updated_at, user.last_login_at) == (last_week, now, now)
    [session] = await session_rows(db_engine)
    assert (session["id"], session["user_id"]) == (values.session_id, existing)
    [token] = await refresh_rows(db_engine)
    assert (token["session_id"], token["token_hash"]) == (values.session_id, values.token_hash)
    [event] = await event_rows(db_engine)
    assert (event["event"], event["user_id"], event["session_id"]) == (
        "login",
        existing,
        values.session_id,
    )
    [row] = await verifications(db_engine)
    assert (row.status, row.failed_attempts) == ("approved", 0)


async def test_a_disabled_user_gets_no_session(db_engine: AsyncEngine, one_statement: bool) -> None:
    phone = parse_phone(KG_PHONE)
    last_week = utcnow() - timedelta(days=7)
    disabled = await add_user(db_engine, phone, active=False, last_login_at=last_week)
    verification = await add_verification(db_engine, phone)

    stored = await store(db_engine, login_values(verification, phone, utcnow()), one_statement)

    assert stored is not None
    assert stored.created is False
    assert (stored.user.id, stored.user.is_active) == (disabled, False)
    # Nothing of a login: no session, token or event, and the user is not stamped.
    assert await writes_of_logins(db_engine) == (0, 0, 0)
    [user] = await users(db_engine)
    assert (user.is_active, user.last_login_at, user.updated_at) == (False, last_week, last_week)
    # The code is spent all the same.
    [row] = await verifications(db_engine)
    assert (row.status, row.failed_attempts) == ("approved", 0)


async def test_concurrent_first_logins_make_one_user(
    db_engine: AsyncEngine, one_statement: bool
) -> None:
    phone = parse_phone(KG_PHONE)
    ids = [await add_verification(db_engine, phone) for _ in range(CONCURRENT)]
    now = utcnow()

    async def one_login(verification_id: int) -> tuple[int, bool]:
        stored = await store(db_engine, login_values(verification_id, phone, now), one_statement)
        assert stored is not None
        return stored.user.id, stored.created

    results = await asyncio.gather(*(one_login(i) for i in ids))

    assert sum(created for _, created in results) == 1
    rows = await users(db_engine)
    assert len(rows) == 1
    assert {user_id for user_id, _ in results} == {rows[0].id}
    assert (rows[0].phone, rows[0].name, rows[0].market) == (KG_PHONE, "555123456", "KG")
    # Every login has its session, token and event.
    assert await writes_of_logins(db_engine) == (CONCURRENT, CONCURRENT, CONCURRENT)
    async with db_engine.connect() as connection:
        statuses = await connection.scalars(select(Verification.status).distinct())
        assert list(statuses) == ["approved"]
