"""Limits on checking codes, and brute force of a code from many addresses."""

from __future__ import annotations

import httpx
import respx

from tests.conftest import ClientFactory
from tests.helpers import (
    AS_PROXY,
    INVALID_CODE,
    LOCKED,
    SEND,
    VERIFY,
    from_ip,
    retry_after,
    too_many,
)
from tests.twilio_fixtures import form, mock_check, mock_start

KG = "+996555123456"
KG_2 = "+996555123457"


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


async def test_verify_per_phone_limit_holds_across_addresses(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    check = mock_check(twilio, "pending")
    async with client_for(rate_limit_verify_per_phone="2/hour", **AS_PROXY) as client:
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        answers = [await wrong_code(client, KG, f"198.51.100.{n}") for n in range(1, 4)]
        other_phone = await wrong_code(client, KG_2, "198.51.100.9")

    assert [a.status_code for a in answers] == [400, 400, 429]
    wait = retry_after(answers[-1], 3600)
    assert answers[-1].json() == too_many(wait, send=False)
    assert check.call_count == 2
    # KG_2 has no verification: a plain 400, not refused by KG's limit.
    assert other_phone.status_code == 400
    assert other_phone.json() == INVALID_CODE


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
