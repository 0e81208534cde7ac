"""POST /api/v1/auth/verify-code: the token answer, wrong/expired/unknown codes, lockout."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
import respx
from jose import jwt
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.base import utcnow
from app.models.verification import Verification
from tests.conftest import JWT_SECRET, ClientFactory
from tests.helpers import (
    CODE,
    DISABLED,
    INVALID_CODE,
    KG_PHONE,
    LOCKED,
    ME,
    OLD_LIFETIME,
    SEND,
    US_PHONE,
    VERIFY,
    bearer,
    disable_user,
    login,
    user_id,
    users,
    verifications,
)
from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CHECK_PATH,
    basic_auth,
    form,
    mock_check,
    mock_start,
)


@pytest.mark.parametrize(
    ("phone", "market", "name"),
    [(KG_PHONE, "KG", "555123456"), (US_PHONE, "US", "2025550143")],
    ids=["KG", "US"],
)
async def test_first_login_answers_the_contract(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    phone: str,
    market: str,
    name: str,
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "approved")

    async with client_for(**OLD_LIFETIME) as client:
        sent = await client.post(SEND, json={"phone": phone})
        response = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})

    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["access_token"], str)
    assert isinstance(body["refresh_token"], str)
    uid = await user_id(db_engine, phone)
    assert body == {
        "access_token": body["access_token"],
        "token_type": "bearer",
        "expires_in": 2592000,
        "refresh_token": body["refresh_token"],
        "refresh_expires_in": 2592000,
        "user": {
            "id": str(uid),
            "name": name,
            "phone": phone,
            "full_name": "",
            "is_active": True,
            "is_verified": True,
        },
        "market": market,
        "is_new_user": True,
    }
    # Twilio checked the code against the verification the send started.
    [row] = await verifications(db_engine)
    request = check.calls.last.request
    assert request.url.path == CHECK_PATH
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert form(request) == {"VerificationSid": row.provider_sid, "Code": CODE}
    assert sent.status_code == 200
    assert row.status == "approved"
    # The token says who this is, for whom, and for how long.
    claims = jwt.decode(
        body["access_token"],
        JWT_SECRET,
        algorithms=["HS256"],
        audience="phone-auth",
        issuer="phone-auth",
    )
    assert claims["sub"] == str(uid)
    assert claims["phone"] == phone
    assert claims["market"] == market
    assert claims["exp"] - claims["iat"] == 2592000
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["jti"]


async def test_default_access_lifetime_is_fifteen_minutes(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    mock_check(twilio, "approved")

    body = await login(client, KG_PHONE)

    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 2592000


async def test_code_is_accepted_as_alias(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "approved")
    await client.post(SEND, json={"phone": KG_PHONE})

    response = await client.post(VERIFY, json={"phone": "+996 555 123 456", "code": CODE})

    assert response.status_code == 200, response.text
    assert response.json()["user"]["phone"] == KG_PHONE
    assert form(check.calls.last.request)["Code"] == CODE


async def test_second_login_is_not_a_new_user(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    mock_check(twilio, "approved")

    async with client_for(rate_limit_enabled=False) as client:
        first = await login(client, KG_PHONE)
        second = await login(client, "+996 (555) 12-34-56")

    assert first["is_new_user"] is True
    assert second["is_new_user"] is False
    assert second["user"] == first["user"]
    assert second["access_token"] != first["access_token"]
    assert len(await users(db_engine)) == 1


async def test_wrong_code_is_400(
    client: httpx.AsyncClient, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "pending")
    await client.post(SEND, json={"phone": KG_PHONE})

    response = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": "000000"})

    assert response.status_code == 400
    assert response.json() == INVALID_CODE
    assert check.call_count == 1
    assert await users(db_engine) == []
    [row] = await verifications(db_engine)
    assert (row.status, row.failed_attempts) == ("pending", 1)


async def test_wrong_code_then_right_code_logs_in(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "pending")
    await client.post(SEND, json={"phone": KG_PHONE})
    wrong = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": "000000"})
    mock_check(twilio, "approved")  # the same route, now approving

    right = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    assert wrong.status_code == 400
    assert right.status_code == 200, right.text
    assert [form(call.request)["Code"] for call in check.calls] == ["000000", CODE]


async def test_without_a_verification_is_400_without_twilio(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    check = mock_check(twilio, "approved")

    response = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    assert response.status_code == 400
    assert response.json() == INVALID_CODE
    assert check.call_count == 0


async def test_code_of_another_number_is_400_without_twilio(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "approved")
    await client.post(SEND, json={"phone": KG_PHONE})

    response = await client.post(VERIFY, json={"phone": US_PHONE, "verification_code": CODE})

    assert response.status_code == 400
    assert response.json() == INVALID_CODE
    assert check.call_count == 0


async def test_expired_verification_is_400_without_twilio(
    client: httpx.AsyncClient, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "approved")
    await client.post(SEND, json={"phone": KG_PHONE})
    async with db_engine.begin() as connection:
        await connection.execute(
            update(Verification).values(expires_at=utcnow() - timedelta(seconds=1))
        )

    response = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    assert response.status_code == 400
    assert response.json() == INVALID_CODE
    assert check.call_count == 0
    assert await users(db_engine) == []


async def test_a_code_works_once(client: httpx.AsyncClient, twilio: respx.MockRouter) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "approved")
    await client.post(SEND, json={"phone": KG_PHONE})
    first = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    again = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json() == INVALID_CODE
    assert check.call_count == 1


async def test_check_uses_the_newest_verification(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "approved")

    async with client_for(rate_limit_enabled=False) as client:
        await client.post(SEND, json={"phone": KG_PHONE})
        await client.post(SEND, json={"phone": KG_PHONE})
        response = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    assert response.status_code == 200, response.text
    older, newer = await verifications(db_engine)
    assert older.provider_sid != newer.provider_sid
    assert form(check.calls.last.request)["VerificationSid"] == newer.provider_sid
    assert (older.status, newer.status) == ("expired", "approved")


async def test_five_wrong_codes_lock_the_verification(
    client: httpx.AsyncClient, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    wrong = mock_check(twilio, "pending")
    await client.post(SEND, json={"phone": KG_PHONE})

    answers = [
        await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": f"00000{n}"})
        for n in range(5)
    ]
    assert [(a.status_code, a.json()) for a in answers] == [(400, INVALID_CODE)] * 5
    assert wrong.call_count == 5
    # Even the right code no longer reaches Twilio.
    mock_check(twilio, "approved")
    sixth = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    assert sixth.status_code == 429
    assert sixth.headers["Retry-After"] == "60"
    assert sixth.json() == LOCKED
    assert wrong.call_count == 5
    [row] = await verifications(db_engine)
    assert (row.status, row.failed_attempts) == ("locked", 5)


async def test_disabled_user_gets_403_and_no_token(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    mock_check(twilio, "approved")

    async with client_for(rate_limit_enabled=False) as client:
        before = await login(client, KG_PHONE)
        await disable_user(db_engine, KG_PHONE)
        me = await client.get(ME, headers=bearer(before["access_token"]))
        await client.post(SEND, json={"phone": KG_PHONE})
        again = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    assert me.status_code == 403
    assert me.json() == DISABLED
    assert again.status_code == 403
    assert again.json() == DISABLED
    assert "access_token" not in again.text
    [user] = await users(db_engine)
    assert user.is_active is False
