"""Concurrent first logins of one new phone make one user, and one `is_new_user: true`."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import Database
from app.core.phone import parse_phone
from app.models.base import utcnow
from app.models.verification import Verification
from app.services.login.repository import LoginRepository, LoginValues
from tests.api.helpers import (
    CODE,
    INVALID_CODE,
    KG_PHONE,
    LOCKED,
    SEND,
    VERIFY,
    mock_start,
    users,
)
from tests.conftest import ClientFactory
from tests.twilio_fixtures import CHECK_PATH, checked, form

CONCURRENT = 20
TWILIO_LATENCY_SECONDS = 0.5


def slow_approving_check(twilio: respx.MockRouter) -> respx.Route:
    """Twilio approving every code after a pause, so the requests truly overlap."""

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(TWILIO_LATENCY_SECONDS)
        return checked("approved", KG_PHONE, sid=form(request)["VerificationSid"])

    return twilio.post(CHECK_PATH).mock(side_effect=answer)


async def concurrent_logins(
    client_for: ClientFactory, twilio: respx.MockRouter, count: int
) -> list[httpx.Response]:
    """Send one code, then `count` verify-code calls with it at the same moment."""
    mock_start(twilio)
    slow_approving_check(twilio)
    async with client_for(rate_limit_enabled=False) as client:
        sent = await client.post(SEND, json={"phone": KG_PHONE})
        assert sent.status_code == 200, sent.text
        return await asyncio.gather(
            *(
                client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})
                for _ in range(count)
            )
        )


async def assert_one_new_user(answers: list[httpx.Response], db_engine: AsyncEngine) -> None:
    statuses = Counter(a.status_code for a in answers)
    assert statuses[200] == 1, sorted(statuses.items())
    [winner] = [a.json() for a in answers if a.status_code == 200]
    assert winner["is_new_user"] is True
    # The code is single-use: the others are refused, none is a second new user.
    others = {(a.status_code, a.text) for a in answers if a.status_code != 200}
    for status, text in others:
        assert (status, json.loads(text)) in [(400, INVALID_CODE), (429, LOCKED)], text
    rows = await users(db_engine)
    assert [row.phone for row in rows] == [KG_PHONE]
    assert winner["user"]["id"] == str(rows[0].id)


async def test_as_many_concurrent_logins_as_attempts_make_one_user(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    answers = await concurrent_logins(client_for, twilio, count=5)

    await assert_one_new_user(answers, db_engine)
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400, 400]


async def test_twenty_concurrent_logins_make_one_user(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    answers = await concurrent_logins(client_for, twilio, count=CONCURRENT)

    await assert_one_new_user(answers, db_engine)


@pytest.mark.parametrize("one_statement", [True, False], ids=["one-statement", "in-steps"])
async def test_concurrent_first_logins_make_one_user(
    db_engine: AsyncEngine, on_postgres: bool, one_statement: bool
) -> None:
    if one_statement and not on_postgres:
        pytest.skip("the one-statement login is PostgreSQL's (TEST_DATABASE_URL)")
    phone = parse_phone(KG_PHONE)
    database = Database(db_engine)
    now = utcnow()
    ids = []
    async with db_engine.begin() as connection:
        for n in range(CONCURRENT):
            result = await connection.execute(
                insert(Verification).returning(Verification.id),
                {
                    "phone": phone.e164,
                    "market": "KG",
                    "channel": "sms",
                    "provider": "twilio",
                    "provider_sid": f"VE{n:032d}",
                    "status": "pending",
                    "failed_attempts": 1,
                    "created_at": now,
                    "expires_at": now + timedelta(minutes=10),
                    "updated_at": now,
                },
            )
            ids.append(result.scalar_one())

    async def one_login(verification_id: int) -> tuple[int, bool]:
        values = LoginValues(
            verification_id=verification_id,
            phone=phone.e164,
            name=phone.national_number,
            market="KG",
            session_id=uuid.uuid4().hex,
            token_hash=uuid.uuid4().hex * 2,
            refresh_expires_at=now + timedelta(days=1),
            phone_masked=phone.masked,
            client_ip=None,
            now=now,
        )
        repository = LoginRepository(database.unit_of_work(), one_statement=one_statement)
        stored = await repository.store(values)
        assert stored is not None
        return stored.user.id, stored.created

    results = await asyncio.gather(*(one_login(i) for i in ids))

    assert sum(created for _, created in results) == 1
    rows = await users(db_engine)
    assert len(rows) == 1
    assert {user_id for user_id, _ in results} == {rows[0].id}
    assert (rows[0].phone, rows[0].name, rows[0].market) == (KG_PHONE, "555123456", "KG")
