"""The bench's shape floor does a login's work, so that its ratio to the floor means something."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx
from jose import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.user import User
from app.models.verification import Verification
from bench.shape_app import SECRET, ShapeConfig, create_app
from tests.conftest import running
from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CHECK_PATH,
    START_PATH,
    TWILIO_BASE_URL,
    basic_auth,
    checked,
    form,
    started,
)

PHONE = "+996555123456"
SID = "VE" + "c" * 32
API = "/api/v1/auth"


def _config(database_url: str, with_db: bool = True) -> ShapeConfig:
    # httpx's own transport, which respx mocks; the bench runs the aiohttp one.
    return ShapeConfig(
        twilio_url=TWILIO_BASE_URL,
        database_url=database_url,
        with_db=with_db,
        client="httpx-native",
    )


@pytest.fixture
def twilio() -> Iterator[respx.MockRouter]:
    """Twilio's start and check, mocked; any other call fails the test."""
    with respx.mock(base_url=TWILIO_BASE_URL, assert_all_called=False) as router:
        router.post(START_PATH, name="start").mock(return_value=started(PHONE, sid=SID))
        check = checked("approved", PHONE, sid=SID)
        router.post(CHECK_PATH, name="check").mock(return_value=check)
        yield router


async def test_a_login_calls_twilio_and_stores_the_verification_and_the_user(
    migrated: str, db_engine: AsyncEngine, twilio: respx.MockRouter
) -> None:
    async with running(create_app(_config(migrated))) as client:
        sent = await client.post(f"{API}/send-verification", json={"phone": PHONE})
        async with db_engine.connect() as connection:
            pending = (await connection.execute(select(Verification))).one()
        verified = await client.post(
            f"{API}/verify-code", json={"phone": PHONE, "verification_code": "123456"}
        )

    assert sent.status_code == 200
    assert sent.json() == {"success": True, "phone": PHONE, "channel": "sms"}
    start = twilio["start"].calls.last.request
    assert form(start) == {"To": PHONE, "Channel": "sms"}
    assert basic_auth(start) == (ACCOUNT_SID, AUTH_TOKEN)
    assert (pending.phone, pending.provider_sid, pending.status) == (PHONE, SID, "pending")

    assert verified.status_code == 200
    assert form(twilio["check"].calls.last.request) == {"To": PHONE, "Code": "123456"}
    async with db_engine.connect() as connection:
        user = (await connection.execute(select(User))).one()
    assert user.phone == PHONE
    body = verified.json()
    assert body["user_id"] == user.id
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(user.id)


async def test_a_refused_code_gets_no_token(
    migrated: str, db_engine: AsyncEngine, twilio: respx.MockRouter
) -> None:
    twilio["check"].mock(return_value=checked("pending", PHONE, sid=SID))
    async with running(create_app(_config(migrated))) as client:
        await client.post(f"{API}/send-verification", json={"phone": PHONE})
        answer = await client.post(
            f"{API}/verify-code", json={"phone": PHONE, "verification_code": "000000"}
        )

    assert answer.status_code == 400
    async with db_engine.connect() as connection:
        assert (await connection.execute(select(User))).first() is None


async def test_without_the_database_only_twilio_is_called(
    migrated: str, db_engine: AsyncEngine, twilio: respx.MockRouter
) -> None:
    async with running(create_app(_config(migrated, with_db=False))) as client:
        sent = await client.post(f"{API}/send-verification", json={"phone": PHONE})
        verified = await client.post(
            f"{API}/verify-code", json={"phone": PHONE, "verification_code": "123456"}
        )

    assert (sent.status_code, verified.status_code) == (200, 200)
    assert twilio["start"].call_count == twilio["check"].call_count == 1
    async with db_engine.connect() as connection:
        assert (await connection.execute(select(Verification))).first() is None
