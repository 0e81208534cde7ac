"""Limits on sending codes: per phone, per client IP, per market budget; Retry-After."""

from __future__ import annotations

import asyncio
import logging

import respx

from app.main import Clocks
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    AS_PROXY,
    SEND,
    Records,
    from_ip,
    kg_budget,
    race_for_the_last_budget,
    retry_after,
    too_many,
)
from tests.twilio_fixtures import form, mock_start

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


async def test_the_cooldown_ends_as_retry_after_says(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock
) -> None:
    start = mock_start(twilio)
    async with client_for(clocks=Clocks(wall=clock)) as client:
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        clock.advance(30.5)
        refused = await client.post(SEND, json={"phone": KG})
        clock.advance(int(refused.headers["Retry-After"]))
        again = await client.post(SEND, json={"phone": KG})

    assert refused.status_code == 429
    assert refused.json() == too_many(30)
    assert again.status_code == 200, again.text
    assert start.call_count == 2


async def test_waiting_exactly_retry_after_is_enough_and_a_second_less_is_not(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock
) -> None:
    """A hit exactly a window old still counts, so the wait of a 1/minute cooldown that
    began this very instant is 61 whole seconds."""
    mock_start(twilio)
    async with client_for(clocks=Clocks(wall=clock)) as client:
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        refused = await client.post(SEND, json={"phone": KG})
        wait = int(refused.headers["Retry-After"])
        clock.advance(wait - 1)
        early = await client.post(SEND, json={"phone": KG})
        clock.advance(1)
        again = await client.post(SEND, json={"phone": KG})

    assert wait == 61
    assert refused.json()["retry_after"] == 61
    assert early.status_code == 429
    assert early.headers["Retry-After"] == "1"
    assert again.status_code == 200, (again.text, again.headers.get("Retry-After"))


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
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock
) -> None:
    """A number refused for the budget was not sent to: once the budget allows, it may be."""
    start = mock_start(twilio)
    settings = {"markets": kg_budget("1/second"), "rate_limit_send_per_phone": "1/hour"}
    async with client_for(clocks=Clocks(wall=clock), **settings) as c:
        first = await c.post(SEND, json={"phone": KG})
        refused = await c.post(SEND, json={"phone": KG_2})
        clock.advance(0.9)
        still_refused = await c.post(SEND, json={"phone": KG_2})
        clock.advance(0.2)
        later = await c.post(SEND, json={"phone": KG_2})

    assert first.status_code == 200
    assert refused.status_code == 503
    # The window frees its slot when the first send is a whole second old, and a hit
    # exactly that old still counts: 2 whole seconds at this instant, 1 a moment later.
    assert refused.headers["Retry-After"] == "2"
    assert refused.json() == SERVICE_UNAVAILABLE
    assert still_refused.status_code == 503
    assert still_refused.headers["Retry-After"] == "1"
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
