"""Test numbers: fixed codes, no Twilio, no budget, no resend cooldown; the attempt lockout,
the number's other send windows and the per-IP limits hold."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import DEFAULT_MARKETS, MarketSettings
from app.main import Clocks
from app.models.user import User
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    AS_PROXY,
    INVALID_CODE,
    LOCKED,
    SEND,
    VERIFY,
    Records,
    from_ip,
    retry_after,
    too_many,
    verifications,
)
from tests.twilio_fixtures import form, mock_check, mock_start

TEST_NUMBERS = "+12025550100=123456,+996700000001=111111"
US_TEST = "+12025550100"
KG_TEST = "+996700000001"
KG = "+996555123456"
WITH_TEST_NUMBERS: dict[str, Any] = {"test_phone_numbers": TEST_NUMBERS}


def today() -> datetime:
    return datetime.now(UTC)


async def test_send_to_a_test_number_answers_like_a_real_send_without_twilio(
    client_for: ClientFactory, twilio: respx.MockRouter, app_logs: Records
) -> None:
    start = mock_start(twilio)
    async with client_for(**WITH_TEST_NUMBERS) as client:
        test_send = await client.post(SEND, json={"phone": "+1 (202) 555-0100"})
        real_send = await client.post(SEND, json={"phone": "+1 212 555 1234"})

    assert test_send.status_code == 200, test_send.text
    assert test_send.json() == {
        "success": True,
        "message": "Verification code sent to +12025550100",
        "phone": US_TEST,
        "market": "US",
        "language": "en",
        "expires_in_minutes": 10,
        "channel": "sms",
    }
    assert real_send.status_code == 200
    assert set(test_send.json()) == set(real_send.json())
    assert test_send.headers["content-type"] == real_send.headers["content-type"]
    assert [form(call.request)["To"] for call in start.calls] == ["+12125551234"]
    infos = app_logs.at(logging.INFO)
    assert any("Test number" in message for message in infos), infos
    assert all(
        "123456" not in message for record in app_logs.records for message in [record.getMessage()]
    )


async def test_test_number_logs_in_with_its_fixed_code(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    start = mock_start(twilio)
    check = mock_check(twilio, "approved")
    async with client_for(**WITH_TEST_NUMBERS) as client:
        assert (await client.post(SEND, json={"phone": KG_TEST})).status_code == 200
        wrong = await client.post(VERIFY, json={"phone": KG_TEST, "verification_code": "123456"})
        right = await client.post(VERIFY, json={"phone": KG_TEST, "verification_code": "111111"})
        token = right.json().get("access_token")
        me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})

    assert wrong.status_code == 400
    assert wrong.json() == {"detail": "Invalid or expired verification code"}
    assert right.status_code == 200, right.text
    body = right.json()
    assert body["token_type"] == "bearer"
    assert body["is_new_user"] is True
    assert body["market"] == "KG"
    assert body["user"]["phone"] == KG_TEST
    assert me.status_code == 200
    assert me.json()["phone"] == KG_TEST
    assert start.call_count == 0
    assert check.call_count == 0
    async with db_engine.connect() as connection:
        phones = (await connection.execute(select(User.phone))).scalars().all()
    assert phones == [KG_TEST]


async def test_test_number_skips_only_the_resend_cooldown(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(**WITH_TEST_NUMBERS) as client:
        # Re-sent at once, up to the number's hourly limit (5/hour of the default).
        answers = [await client.post(SEND, json={"phone": US_TEST}) for _ in range(6)]
        # Each send is a new code; the last one logs in.
        ok = await client.post(VERIFY, json={"phone": US_TEST, "verification_code": "123456"})

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].json() == too_many(retry_after(answers[-1], 3601))
    assert ok.status_code == 200, ok.text
    assert start.call_count == 0


async def _guess_until_refused(
    client: httpx.AsyncClient, addresses: Iterator[str]
) -> tuple[int, int, httpx.Response]:
    """Send codes to the US test number and guess each until it locks, from `addresses` in
    turn, until a send is refused: the codes sent, the checks answered, the refusal."""
    sends = checks = 0
    for _ in range(50):
        sent = await client.post(SEND, json={"phone": US_TEST}, headers=from_ip(next(addresses)))
        if sent.status_code != 200:
            return sends, checks, sent
        sends += 1
        for guess in ["000000"] * 5 + ["123456"]:
            answer = await client.post(
                VERIFY,
                json={"phone": US_TEST, "verification_code": guess},
                headers=from_ip(next(addresses)),
            )
            if answer.status_code == 429:
                # Locked: not even the fixed code gets in now.
                assert answer.json() == LOCKED
                break
            assert answer.status_code == 400, answer.text
            checks += 1
    raise AssertionError(f"{sends} codes sent to a test number and no send refused")


async def test_checks_at_a_test_number_are_bounded_from_any_number_of_addresses(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock
) -> None:
    start = mock_start(twilio)
    check = mock_check(twilio)
    addresses = itertools.cycle(["203.0.113.1", "203.0.113.2", "203.0.113.3"])
    async with client_for(clocks=Clocks(wall=clock), **AS_PROXY, **WITH_TEST_NUMBERS) as client:
        first_hour = await _guess_until_refused(client, addresses)
        clock.advance(int(first_hour[2].headers["Retry-After"]))
        second_hour = await _guess_until_refused(client, addresses)

    # The default limits: 5 codes an hour and 10 a day, 5 checks each.
    assert first_hour[:2] == (5, 25)
    assert first_hour[2].status_code == 429
    assert first_hour[2].json() == too_many(retry_after(first_hour[2], 3601))
    assert second_hour[:2] == (5, 25)
    # Now the day's window is full: the next code is hours away.
    assert second_hour[2].status_code == 429
    assert retry_after(second_hour[2], 86401) > 3600 * 20
    assert start.call_count == 0
    assert check.call_count == 0


async def test_test_number_counts_against_the_per_ip_limit(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(rate_limit_send_per_ip="2/hour", **WITH_TEST_NUMBERS) as client:
        answers = [await client.post(SEND, json={"phone": US_TEST}) for _ in range(2)]
        # The client's limit is spent on test numbers: a real number is refused too.
        test_again = await client.post(SEND, json={"phone": KG_TEST})
        real = await client.post(SEND, json={"phone": KG})

    assert [a.status_code for a in answers] == [200, 200]
    assert test_again.status_code == 429
    assert test_again.json() == too_many(retry_after(test_again, 3600))
    assert real.status_code == 429
    assert start.call_count == 0


async def test_test_number_checks_count_against_the_verify_per_ip_limit(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    async with client_for(rate_limit_verify_per_ip="2/hour", **WITH_TEST_NUMBERS) as client:
        assert (await client.post(SEND, json={"phone": US_TEST})).status_code == 200
        answers = [
            await client.post(VERIFY, json={"phone": US_TEST, "verification_code": "000000"})
            for _ in range(3)
        ]

    assert [a.status_code for a in answers] == [400, 400, 429]
    assert answers[-1].json() == too_many(retry_after(answers[-1], 3600), send=False)


async def test_test_number_does_not_use_the_sms_budget(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    kg = DEFAULT_MARKETS["KG"]
    markets = {
        "KG": MarketSettings(
            region=kg.region, language=kg.language, channels=list(kg.channels), sms_budget="1/hour"
        ),
        "US": DEFAULT_MARKETS["US"],
    }
    start = mock_start(twilio)
    async with client_for(markets=markets, **WITH_TEST_NUMBERS) as client:
        tests = [await client.post(SEND, json={"phone": KG_TEST}) for _ in range(3)]
        real = await client.post(SEND, json={"phone": KG})
        over = await client.post(SEND, json={"phone": "+996555123457"})

    assert [a.status_code for a in tests] == [200, 200, 200]
    assert real.status_code == 200, real.text
    assert over.status_code == 503
    assert start.call_count == 1


async def test_test_number_is_still_one_on_its_last_valid_day(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    valid_until = today().date().isoformat()
    async with client_for(test_phone_numbers_valid_until=valid_until, **WITH_TEST_NUMBERS) as c:
        sent = await c.post(SEND, json={"phone": KG_TEST})
        ok = await c.post(VERIFY, json={"phone": KG_TEST, "verification_code": "111111"})

    assert sent.status_code == 200
    assert ok.status_code == 200, ok.text
    assert start.call_count == 0


async def test_after_its_expiry_date_a_test_number_is_an_ordinary_number(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    check = mock_check(twilio, "pending")
    yesterday = (today() - timedelta(days=1)).date().isoformat()
    async with client_for(test_phone_numbers_valid_until=yesterday, **WITH_TEST_NUMBERS) as c:
        sent = await c.post(SEND, json={"phone": KG_TEST})
        again = await c.post(SEND, json={"phone": KG_TEST})
        fixed = await c.post(VERIFY, json={"phone": KG_TEST, "verification_code": "111111"})

    assert sent.status_code == 200
    assert sent.json()["phone"] == KG_TEST
    assert start.call_count == 1
    assert form(start.calls.last.request)["To"] == KG_TEST
    # Ordinary again: the cooldown applies, and the fixed code is Twilio's to judge.
    assert again.status_code == 429
    assert check.call_count == 1
    assert form(check.calls.last.request)["Code"] == "111111"
    assert fixed.status_code == 400


async def test_a_code_sent_while_the_number_was_a_test_number_expires_with_it(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    """Nobody but the test numbers knew the code: once the number is an ordinary one
    again, its code is refused and expired, and Twilio is not asked about it."""
    check = mock_check(twilio, "approved")
    async with client_for(**WITH_TEST_NUMBERS, rate_limit_enabled=False) as client:
        assert (await client.post(SEND, json={"phone": KG_TEST})).status_code == 200
    async with client_for(rate_limit_enabled=False) as client:
        refused = await client.post(VERIFY, json={"phone": KG_TEST, "verification_code": "111111"})

    assert (refused.status_code, refused.json()) == (400, INVALID_CODE)
    assert check.call_count == 0
    [row] = await verifications(db_engine)
    assert (row.provider, row.status) == ("test", "expired")


async def test_a_code_twilio_sent_before_the_number_became_a_test_number_expires(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    """The fixed code is not that code: only Twilio knew it, and the test numbers do not
    ask Twilio."""
    mock_start(twilio)
    check = mock_check(twilio, "approved")
    async with client_for(rate_limit_enabled=False) as client:
        assert (await client.post(SEND, json={"phone": KG_TEST})).status_code == 200
    async with client_for(**WITH_TEST_NUMBERS, rate_limit_enabled=False) as client:
        refused = await client.post(VERIFY, json={"phone": KG_TEST, "verification_code": "111111"})

    assert (refused.status_code, refused.json()) == (400, INVALID_CODE)
    assert check.call_count == 0
    [row] = await verifications(db_engine)
    assert (row.provider, row.status) == ("twilio", "expired")
