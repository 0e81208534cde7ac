"""Vonage has no attempts API the sync reads: a code sent through Vonage records its
attempt when it is sent (channel, no status, no price), and its check records whether
it was used. A Twilio login writes no attempt (the sync brings Twilio's)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import respx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.delivery_attempt import DeliveryAttempt
from app.models.user import User
from tests.conftest import ClientFactory
from tests.helpers import SEND, VERIFY, bearer, verifications
from tests.twilio_fixtures import StatefulTwilio
from tests.vonage_fixtures import VONAGE, VONAGE_BASE_URL, StatefulVonage, markets

CODE = "480913"
WRONG = "000000"
KG_NUMBERS = iter(range(100_000, 999_999))
# KG through Vonage, US through Twilio.
ROUTED: dict[str, Any] = {
    **VONAGE,
    "markets": markets(["vonage"], ["twilio"]),
    "rate_limit_enabled": False,
}


def kg_phone() -> str:
    return f"+996555{next(KG_NUMBERS):06d}"


@pytest.fixture
def vonage_api(twilio: respx.MockRouter) -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=VONAGE_BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
def fake_vonage(vonage_api: respx.MockRouter) -> StatefulVonage:
    return StatefulVonage(vonage_api, CODE, max_attempts=2)


@pytest.fixture
def fake_twilio(twilio: respx.MockRouter) -> StatefulTwilio:
    return StatefulTwilio(twilio, CODE)


async def attempts(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(DeliveryAttempt.__table__))).all())


async def test_a_vonage_send_records_its_attempt_and_the_login_its_conversion(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        assert (await client.post(SEND, json={"phone": phone})).status_code == 200
        (sent,) = await attempts(db_engine)
        (row,) = await verifications(db_engine)
        login = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})
        assert login.status_code == 200
        (used,) = await attempts(db_engine)

    assert (sent.provider, sent.attempt_sid, sent.verification_sid) == (
        "vonage",
        row.provider_sid,
        row.provider_sid,
    )
    assert (sent.verification_id, sent.market, sent.channel) == (row.id, "KG", "sms")
    assert (sent.delivery_status, sent.converted, sent.price_micros) == (None, None, None)
    assert (used.converted, used.delivery_status, used.price_micros) == (True, "delivered", None)
    assert used.provider_updated_at is not None


async def test_the_admin_view_shows_a_vonage_codes_conversion(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        await client.post(SEND, json={"phone": phone})
        body = (await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})).json()
        async with db_engine.begin() as connection:
            await connection.execute(
                update(User).where(User.id == int(body["user"]["id"])).values(roles=["admin"])
            )
        view = await client.get(
            "/api/v1/admin/verifications",
            params={"phone": phone},
            headers=bearer(body["access_token"]),
        )

    (item,) = view.json()["items"]
    assert (item["provider"], item["converted"], item["delivery_status"]) == (
        "vonage",
        True,
        "delivered",
    )
    assert (item["price"], item["price_currency"]) == (None, None)
    assert [a["channel"] for a in item["attempts"]] == ["sms"]


async def test_a_vonage_code_locked_by_wrong_codes_is_recorded_unconverted(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        await client.post(SEND, json={"phone": phone})
        for _ in range(2):
            await client.post(VERIFY, json={"phone": phone, "verification_code": WRONG})

    (attempt,) = await attempts(db_engine)
    assert attempt.converted is False
    assert attempt.delivery_status is None


async def test_a_wrong_code_leaves_the_conversion_unknown(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        await client.post(SEND, json={"phone": phone})
        await client.post(VERIFY, json={"phone": phone, "verification_code": WRONG})

    (attempt,) = await attempts(db_engine)
    assert attempt.converted is None


async def test_each_vonage_send_is_its_own_attempt(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        await client.post(SEND, json={"phone": phone})
        await client.post(SEND, json={"phone": phone})

    found = await attempts(db_engine)
    rows = await verifications(db_engine)
    assert sorted(a.attempt_sid for a in found) == sorted(r.provider_sid for r in rows)
    assert len(found) == 2


async def test_a_twilio_login_writes_no_attempt(
    client_for: ClientFactory,
    fake_twilio: StatefulTwilio,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
) -> None:
    phone = "+12025550143"
    async with client_for(**ROUTED) as client:
        await client.post(SEND, json={"phone": phone})
        login = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})

    assert login.status_code == 200
    assert await attempts(db_engine) == []
