"""Limits on sending codes: per phone, per client IP, per market budget; Retry-After."""

from __future__ import annotations

import asyncio
import logging

import respx

from tests.abuse.helpers import (
    AS_PROXY,
    SEND,
    Records,
    from_ip,
    kg_budget,
    mock_start,
    race_for_the_last_budget,
    retry_after,
    too_many,
)
from tests.conftest import ClientFactory
from tests.twilio_fixtures import form

KG = "+996555123456"
KG_2 = "+996555123457"
KG_3 = "+996700123456"
US = "+12125551234"

SERVICE_UNAVAILABLE = {
    "success": False,
    "detail": "SMS verification is temporarily unavailable. Please contact support.",
}


async def test_default_cooldown_refuses_a_second_send_within_a_minute(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for() as client:
        first = await client.post(SEND, json={"phone": KG})
        second = await client.post(SEND, json={"phone": KG})

    assert first.status_code == 200, first.text
    assert second.status_code == 429
    wait = retry_after(second, 60)
    assert wait >= 55  # the one send was just now
    assert second.json() == too_many(wait)
    assert start.call_count == 1


async def test_cooldown_is_per_phone(client_for: ClientFactory, twilio: respx.MockRouter) -> None:
    start = mock_start(twilio)
    async with client_for() as client:
        answers = [await client.post(SEND, json={"phone": phone}) for phone in (KG, KG_2, US)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [form(call.request)["To"] for call in start.calls] == [KG, KG_2, US]


async def test_per_phone_hourly_limit(client_for: ClientFactory, twilio: respx.MockRouter) -> None:
    start = mock_start(twilio)
    async with client_for(rate_limit_send_per_phone="3/hour") as client:
        answers = [await client.post(SEND, json={"phone": KG}) for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    wait = retry_after(answers[-1], 3600)
    assert wait > 3500
    assert answers[-1].json() == too_many(wait)
    assert start.call_count == 3


async def test_per_phone_daily_limit(client_for: ClientFactory, twilio: respx.MockRouter) -> None:
    start = mock_start(twilio)
    async with client_for(rate_limit_send_per_phone="100/minute;2/day") as client:
        answers = [await client.post(SEND, json={"phone": KG}) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    wait = retry_after(answers[-1], 86400)
    assert wait > 86000
    assert answers[-1].json() == too_many(wait)
    assert start.call_count == 2


async def test_retry_after_is_the_longest_wait_of_the_used_up_windows(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """Both windows are used up: waiting out the minute alone would not help."""
    mock_start(twilio)
    async with client_for(rate_limit_send_per_phone="2/minute;2/hour") as client:
        answers = [await client.post(SEND, json={"phone": KG}) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    wait = retry_after(answers[-1], 3600)
    assert wait > 60
    assert answers[-1].json()["retry_after"] == wait


async def test_per_ip_limit_counts_sends_to_every_number(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(rate_limit_send_per_ip="2/hour") as client:
        answers = [await client.post(SEND, json={"phone": phone}) for phone in (KG, KG_2, KG_3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    wait = retry_after(answers[-1], 3600)
    assert wait > 3500
    assert answers[-1].json() == too_many(wait)
    assert [form(call.request)["To"] for call in start.calls] == [KG, KG_2]


async def test_a_refused_send_does_not_use_up_the_numbers_limit(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """Refused by the per-IP limit: the number was not sent to, so another client may."""
    start = mock_start(twilio)
    async with client_for(rate_limit_send_per_ip="1/hour", **AS_PROXY) as client:
        first = await client.post(SEND, json={"phone": KG}, headers=from_ip("203.0.113.1"))
        refused = await client.post(SEND, json={"phone": KG_2}, headers=from_ip("203.0.113.1"))
        other_client = await client.post(SEND, json={"phone": KG_2}, headers=from_ip("203.0.113.2"))

    assert first.status_code == 200
    assert refused.status_code == 429
    assert other_client.status_code == 200, other_client.text
    assert [form(call.request)["To"] for call in start.calls] == [KG, KG_2]
    assert form(start.calls.last.request)["DeviceIp"] == "203.0.113.2"


async def test_per_ip_limit_is_per_client(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(rate_limit_send_per_ip="1/hour", **AS_PROXY) as client:
        a = await client.post(SEND, json={"phone": KG}, headers=from_ip("203.0.113.1"))
        b = await client.post(SEND, json={"phone": KG_2}, headers=from_ip("203.0.113.2"))
        a_again = await client.post(SEND, json={"phone": KG_3}, headers=from_ip("203.0.113.1"))

    assert [a.status_code, b.status_code, a_again.status_code] == [200, 200, 429]
    assert start.call_count == 2


async def test_cooldown_refusal_does_not_count_against_the_budget(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(markets=kg_budget("2/hour")) as client:
        first = await client.post(SEND, json={"phone": KG})
        cooldown = await client.post(SEND, json={"phone": KG})
        other = await client.post(SEND, json={"phone": KG_2})

    assert [first.status_code, cooldown.status_code, other.status_code] == [200, 429, 200]
    assert start.call_count == 2


async def test_market_budget_used_up_answers_503_and_logs_an_error(
    client_for: ClientFactory, twilio: respx.MockRouter, app_logs: Records
) -> None:
    start = mock_start(twilio)
    async with client_for(markets=kg_budget("2/hour")) as client:
        answers = [await client.post(SEND, json={"phone": phone}) for phone in (KG, KG_2, KG_3)]
        us = await client.post(SEND, json={"phone": US})

    assert [a.status_code for a in answers] == [200, 200, 503]
    refused = answers[-1]
    wait = retry_after(refused, 3600)
    assert wait > 3500
    assert refused.json() == SERVICE_UNAVAILABLE
    assert [form(call.request)["To"] for call in start.calls] == [KG, KG_2, US]
    # The budget is per market: the US still gets codes.
    assert us.status_code == 200
    errors = app_logs.at(logging.ERROR)
    assert any("budget" in message and "KG" in message for message in errors), errors
    assert all(KG_3 not in message for message in errors)  # phones are masked


async def test_budget_refusal_does_not_use_up_the_numbers_limit(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """A number refused for the budget was not sent to: once the budget allows, it may be."""
    start = mock_start(twilio)
    async with client_for(markets=kg_budget("1/second"), rate_limit_send_per_phone="1/hour") as c:
        first = await c.post(SEND, json={"phone": KG})
        refused = await c.post(SEND, json={"phone": KG_2})
        await asyncio.sleep(1.1)
        later = await c.post(SEND, json={"phone": KG_2})

    assert first.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert later.status_code == 200, later.text
    assert [form(call.request)["To"] for call in start.calls] == [KG, KG_2]


async def test_limits_disabled(client_for: ClientFactory, twilio: respx.MockRouter) -> None:
    start = mock_start(twilio)
    async with client_for(rate_limit_enabled=False, rate_limit_send_per_ip="1/hour") as client:
        answers = [await client.post(SEND, json={"phone": KG}) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert start.call_count == 3


async def test_fifty_concurrent_sends_make_one_twilio_call(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(rate_limit_send_per_ip="1000/hour") as client:
        answers = await asyncio.gather(*(client.post(SEND, json={"phone": KG}) for _ in range(50)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [429] * 49
    assert start.call_count == 1
    for answer in answers:
        if answer.status_code == 429:
            wait = retry_after(answer, 60)
            assert answer.json() == too_many(wait)


async def test_numbers_refused_for_the_budget_in_a_race_keep_their_sends(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(markets=kg_budget("1/hour")) as client:
        again = await race_for_the_last_budget(client)

    assert [a.status_code for a in again] == [503] * 9
    assert start.call_count == 1
