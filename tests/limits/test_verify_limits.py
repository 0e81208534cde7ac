"""Limits on checking codes, brute force of a code from many addresses, and lockout of a
number's owner by others' guesses."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import Clocks
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    AS_PROXY,
    CODE,
    INVALID_CODE,
    LOCKED,
    SEND,
    VERIFY,
    from_ip,
    retry_after,
    too_many,
    verifications,
)
from tests.twilio_fixtures import form, mock_check, mock_check_accepting, mock_start

KG = "+996555123456"
KG_2 = "+996555123457"
OWNER = "192.0.2.10"
ATTACKER = "198.51.100.66"


async def wrong_code(
    client: httpx.AsyncClient, phone: str, ip: str | None = None
) -> httpx.Response:
    return await client.post(
        VERIFY,
        json={"phone": phone, "verification_code": "000000"},
        headers=from_ip(ip) if ip else None,
    )


async def test_verify_per_ip_limit(client_for: ClientFactory, twilio: respx.MockRouter) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "pending")
    async with client_for(rate_limit_verify_per_ip="2/hour") as client:
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        answers = [await wrong_code(client, KG) for _ in range(2)]
        # Another number from the same client: still this client's limit.
        refused = await wrong_code(client, KG_2)

    assert [a.status_code for a in answers] == [400, 400]
    assert refused.status_code == 429
    wait = retry_after(refused, 3600)
    assert wait > 3500
    assert refused.json() == too_many(wait, send=False)
    assert "success" not in refused.json()
    assert check.call_count == 2


async def test_verify_per_ip_limit_is_per_client(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "pending")
    async with client_for(rate_limit_verify_per_ip="1/hour", **AS_PROXY) as client:
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        first = await wrong_code(client, KG, "203.0.113.1")
        again = await wrong_code(client, KG, "203.0.113.1")
        other = await wrong_code(client, KG, "203.0.113.2")

    assert [first.status_code, again.status_code, other.status_code] == [400, 429, 400]
    assert check.call_count == 2


async def test_verify_per_phone_limit_is_per_client_at_the_number(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "pending")
    async with client_for(rate_limit_verify_per_phone="2/hour", **AS_PROXY) as client:
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        mine = [await wrong_code(client, KG, "198.51.100.1") for _ in range(3)]
        # Another client's checks at the number are not this client's to use up.
        other_client = await wrong_code(client, KG, "198.51.100.2")
        other_phone = await wrong_code(client, KG_2, "198.51.100.1")

    assert [a.status_code for a in mine] == [400, 400, 429]
    wait = retry_after(mine[-1], 3600)
    assert mine[-1].json() == too_many(wait, send=False)
    assert other_client.status_code == 400
    assert other_client.json() == INVALID_CODE
    assert check.call_count == 3
    # The refused check spent none of the code's attempts.
    [row] = await verifications(db_engine)
    assert row.failed_attempts == 3
    # KG_2 has no verification: a plain 400, not refused by KG's limit.
    assert other_phone.status_code == 400
    assert other_phone.json() == INVALID_CODE


async def test_concurrent_checks_over_a_clients_limit_give_their_attempts_back(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    check = mock_check_accepting(twilio, CODE)
    async with client_for(rate_limit_verify_per_phone="1/hour", **AS_PROXY) as client:
        assert (await client.post(SEND, json={"phone": KG}, headers=from_ip(OWNER))).is_success
        answers = await asyncio.gather(*(wrong_code(client, KG, "198.51.100.1") for _ in range(5)))
        attempts = [row.failed_attempts for row in await verifications(db_engine)]
        owner = await client.post(
            VERIFY, json={"phone": KG, "verification_code": CODE}, headers=from_ip(OWNER)
        )

    assert sorted(a.status_code for a in answers) == [400] + [429] * 4
    assert attempts == [1]
    assert owner.status_code == 200, owner.text
    assert check.call_count == 2


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limit_storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings of the limits' storage: in process, or Redis (skipped without it)."""
    if request.param == "memory":
        return {}
    return {
        "rate_limit_storage_url": request.getfixturevalue("redis_url"),
        "rate_limit_key_prefix": request.getfixturevalue("key_prefix"),
    }


async def test_guesses_at_a_number_without_a_code_do_not_lock_its_owner_out(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    clock: FakeClock,
    limit_storage: dict[str, Any],
) -> None:
    mock_start(twilio)
    check = mock_check_accepting(twilio, CODE)
    settings = {**AS_PROXY, **limit_storage}
    async with client_for(clocks=Clocks(wall=clock), **settings) as client:
        # More than the per-number limit, from one client and from many.
        guesses = [await wrong_code(client, KG, ATTACKER) for _ in range(20)]
        guesses += [await wrong_code(client, KG, f"203.0.113.{n}") for n in range(1, 11)]
        sent = await client.post(SEND, json={"phone": KG}, headers=from_ip(OWNER))
        ok = await client.post(
            VERIFY, json={"phone": KG, "verification_code": CODE}, headers=from_ip(OWNER)
        )

    assert [g.status_code for g in guesses] == [400] * 30
    assert all(g.json() == INVALID_CODE for g in guesses)
    assert sent.status_code == 200, sent.text
    assert ok.status_code == 200, ok.text
    assert ok.json()["user"]["phone"] == KG
    # No code was pending: Twilio heard of none of the guesses.
    assert check.call_count == 1


async def test_wrong_guesses_at_a_pending_code_lock_only_that_code(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    clock: FakeClock,
    limit_storage: dict[str, Any],
) -> None:
    start = mock_start(twilio)
    check = mock_check_accepting(twilio, CODE)
    settings = {**AS_PROXY, **limit_storage}
    async with client_for(clocks=Clocks(wall=clock), **settings) as client:
        assert (await client.post(SEND, json={"phone": KG}, headers=from_ip(OWNER))).is_success
        guesses = [await wrong_code(client, KG, f"203.0.113.{n}") for n in range(1, 21)]
        guesses += [await wrong_code(client, KG, ATTACKER) for _ in range(20)]
        # The locked code is gone, even for its owner, and the resend cooldown holds.
        locked = await client.post(
            VERIFY, json={"phone": KG, "verification_code": CODE}, headers=from_ip(OWNER)
        )
        too_soon = await client.post(SEND, json={"phone": KG}, headers=from_ip(OWNER))
        clock.advance(retry_after(too_soon, 61))
        resent = await client.post(SEND, json={"phone": KG}, headers=from_ip(OWNER))
        ok = await client.post(
            VERIFY, json={"phone": KG, "verification_code": CODE}, headers=from_ip(OWNER)
        )

    assert [g.status_code for g in guesses] == [400] * 5 + [429] * 35
    assert all(g.json() == INVALID_CODE for g in guesses[:5])
    assert all(g.json() == LOCKED for g in guesses[5:])
    assert locked.status_code == 429
    assert locked.json() == LOCKED
    assert too_soon.status_code == 429
    assert resent.status_code == 200, resent.text
    assert ok.status_code == 200, ok.text
    assert start.call_count == 2
    # Five wrong guesses and the owner's code reached Twilio; the locked ones did not.
    assert [form(call.request)["Code"] for call in check.calls] == ["000000"] * 5 + [CODE]


async def test_wrong_codes_from_many_addresses_lock_the_verification_after_five(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    check = mock_check(twilio, "pending")
    async with client_for(**AS_PROXY) as client:
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        sid = start.calls.last.response.json()["sid"]
        answers = [await wrong_code(client, KG, f"203.0.113.{n}") for n in range(1, 6)]
        sixth = await wrong_code(client, KG, "203.0.113.6")
        check.mock(side_effect=None, return_value=httpx.Response(500))
        right = await client.post(
            VERIFY,
            json={"phone": KG, "verification_code": "123456"},
            headers=from_ip("203.0.113.7"),
        )

    assert [a.status_code for a in answers] == [400] * 5
    assert all(a.json() == INVALID_CODE for a in answers)
    assert sixth.status_code == 429
    assert sixth.headers["Retry-After"] == "60"
    assert sixth.json() == LOCKED
    # Even the right code is refused now, and Twilio hears of none of it.
    assert right.status_code == 429
    assert right.json() == LOCKED
    assert check.call_count == 5
    assert {form(call.request)["VerificationSid"] for call in check.calls} == {sid}


async def test_a_new_code_after_the_lock_can_be_used(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "pending")
    async with client_for(rate_limit_send_per_phone="5/hour", **AS_PROXY) as client:
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        for n in range(1, 7):
            await wrong_code(client, KG, f"203.0.113.{n}")
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        check.mock(side_effect=None)
        mock_check(twilio, "approved")
        ok = await client.post(VERIFY, json={"phone": KG, "verification_code": "123456"})

    assert ok.status_code == 200, ok.text
    assert ok.json()["user"]["phone"] == KG
