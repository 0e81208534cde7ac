"""CAPTCHA_MODE=risk: a send needs a challenge once its client has used its free sends,
when its market has used more than half of its SMS budget, or for a risky number type;
and the limits still apply on top of a passed challenge."""

from __future__ import annotations

from typing import Any

import pytest
import respx

from app.core.config import DEFAULT_MARKETS, MarketSettings
from app.main import Clocks
from tests.challenge.support import FAILED, REQUIRED, TOKEN, TURNSTILE_URL, captcha, passed
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import AS_PROXY, SEND, US_PHONE, kg_budget, new_phone, retry_after, too_many
from tests.ops.conftest import parse_metrics, sample
from tests.twilio_fixtures import mock_start

RISK = captcha()  # risk is the default mode


def from_ip(ip: str) -> dict[str, dict[str, str]]:
    """Request arguments that make the client `ip` (the app trusts the test client)."""
    return {"headers": {"X-Forwarded-For": ip}}


async def test_a_client_sends_its_free_sends_then_needs_a_challenge(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())
    settings: dict[str, Any] = {**RISK, **AS_PROXY, "captcha_free_sends_per_ip": "2/hour"}

    async with client_for(clocks=Clocks(wall=clock), **settings) as client:
        free = [
            await client.post(SEND, json={"phone": new_phone()}, **from_ip("203.0.113.7"))
            for _ in range(2)
        ]
        third = await client.post(SEND, json={"phone": new_phone()}, **from_ip("203.0.113.7"))
        other_client = await client.post(
            SEND, json={"phone": new_phone()}, **from_ip("198.51.100.9")
        )
        with_token = await client.post(
            SEND, json={"phone": new_phone(), "captcha_token": TOKEN}, **from_ip("203.0.113.7")
        )
        clock.advance(3601)
        an_hour_later = await client.post(
            SEND, json={"phone": new_phone()}, **from_ip("203.0.113.7")
        )
        metrics = parse_metrics((await client.get("/metrics")).text)

    assert [answer.status_code for answer in free] == [200, 200]
    assert (third.status_code, third.json()) == (400, REQUIRED)
    assert other_client.status_code == 200, other_client.text
    assert with_token.status_code == 200, with_token.text
    assert an_hour_later.status_code == 200, an_hour_later.text
    assert start.call_count == 5
    assert siteverify.call_count == 1
    assert siteverify.calls.last.request.content.decode().count("remoteip=203.0.113.7") == 1
    assert (
        sample(metrics, "phone_auth_challenges_total", outcome="required", reason="free_sends_used")
        == 2.0
    )


async def test_a_market_past_half_its_budget_needs_a_challenge_for_every_send(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=passed())
    settings: dict[str, Any] = {
        **RISK,
        **AS_PROXY,
        "captcha_free_sends_per_ip": "100/hour",
        "markets": kg_budget("4/hour"),
    }

    async with client_for(**settings) as client:
        # Half of the budget used: not more than half yet.
        first_two = [
            await client.post(SEND, json={"phone": new_phone()}, **from_ip(f"203.0.113.{n}"))
            for n in (1, 2)
        ]
        third = await client.post(SEND, json={"phone": new_phone()}, **from_ip("203.0.113.3"))
        fourth = await client.post(SEND, json={"phone": new_phone()}, **from_ip("203.0.113.4"))
        fourth_with_token = await client.post(
            SEND, json={"phone": new_phone(), "captcha_token": TOKEN}, **from_ip("203.0.113.4")
        )
        other_market = await client.post(SEND, json={"phone": US_PHONE}, **from_ip("203.0.113.5"))

    assert [answer.status_code for answer in first_two] == [200, 200]
    assert third.status_code == 200, third.text
    assert (fourth.status_code, fourth.json()) == (400, REQUIRED)
    assert fourth_with_token.status_code == 200, fourth_with_token.text
    assert other_market.status_code == 200, other_market.text
    assert start.call_count == 5


GB_MARKETS = {
    **DEFAULT_MARKETS,
    "GB": MarketSettings(region="GB", language="en", sms_budget="100/hour"),
}


@pytest.mark.parametrize(
    ("phone", "kind"),
    [
        pytest.param("+15002345678", "personal number", id="us-personal"),
        pytest.param("+447012345678", "personal number", id="gb-personal"),
        pytest.param("+445612345678", "VoIP", id="gb-voip"),
    ],
)
async def test_a_risky_number_type_needs_a_challenge_on_its_first_send(
    client_for: ClientFactory, twilio: respx.MockRouter, phone: str, kind: str
) -> None:
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**RISK, markets=GB_MARKETS) as client:
        without = await client.post(SEND, json={"phone": phone})
        with_token = await client.post(SEND, json={"phone": phone, "captcha_token": TOKEN})
        metrics = parse_metrics((await client.get("/metrics")).text)

    assert (without.status_code, without.json()) == (400, REQUIRED), kind
    assert with_token.status_code == 200, with_token.text
    assert start.call_count == 1
    assert (
        sample(metrics, "phone_auth_challenges_total", outcome="passed", reason="number_type")
        == 1.0
    )


@pytest.mark.parametrize(
    "phone",
    [
        pytest.param(US_PHONE, id="us-fixed-line-or-mobile"),
        pytest.param("+996700123456", id="kg-mobile"),
        pytest.param("+447400123456", id="gb-mobile"),
    ],
)
async def test_mobiles_and_us_numbers_need_no_challenge_of_their_own(
    client_for: ClientFactory, twilio: respx.MockRouter, phone: str
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**RISK, markets=GB_MARKETS) as client:
        response = await client.post(SEND, json={"phone": phone})

    assert response.status_code == 200, response.text
    assert start.call_count == 1
    assert not siteverify.called


async def test_a_send_that_needs_a_challenge_for_its_number_takes_no_free_send(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**RISK, captcha_free_sends_per_ip="1/hour") as client:
        risky = await client.post(SEND, json={"phone": "+15002345678", "captcha_token": TOKEN})
        free = await client.post(SEND, json={"phone": new_phone()})

    assert risky.status_code == 200, risky.text
    assert free.status_code == 200, free.text


async def test_refused_challenges_use_up_no_number_or_budget(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """A bot without tokens cannot use up a number's sends or its market's budget."""
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=passed())
    phone = new_phone()

    async with client_for(**captcha(captcha_mode="always"), markets=kg_budget("3/hour")) as client:
        refused = [await client.post(SEND, json={"phone": phone}) for _ in range(10)]
        sent = await client.post(SEND, json={"phone": phone, "captcha_token": TOKEN})

    assert {answer.status_code for answer in refused} == {400}
    assert sent.status_code == 200, sent.text
    assert start.call_count == 1


async def test_the_limits_still_apply_after_a_passed_challenge(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())
    phone = new_phone()

    async with client_for(
        **captcha(captcha_mode="always"), rate_limit_send_per_ip="3/hour"
    ) as client:
        first = await client.post(SEND, json={"phone": phone, "captcha_token": TOKEN})
        # The number's resend cooldown (the client's window counts it too).
        again = await client.post(SEND, json={"phone": phone, "captcha_token": TOKEN})
        second = await client.post(SEND, json={"phone": new_phone(), "captcha_token": TOKEN})
        # The client's sends.
        third = await client.post(SEND, json={"phone": new_phone(), "captcha_token": TOKEN})

    assert first.status_code == 200, first.text
    assert again.status_code == 429
    assert again.json() == too_many(retry_after(again, 60))
    assert second.status_code == 200, second.text
    assert third.status_code == 429
    assert start.call_count == 2
    assert siteverify.call_count == 4


async def test_a_failed_challenge_is_answered_before_any_limit(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=passed(hostname="evil.example"))
    settings = captcha(captcha_mode="always", captcha_expected_hostnames="shop.example")

    async with client_for(**settings) as client:
        response = await client.post(SEND, json={"phone": new_phone(), "captcha_token": TOKEN})

    assert (response.status_code, response.json()) == (400, FAILED)


@pytest.mark.redis
async def test_replicas_share_a_clients_free_sends_and_the_budget_through_redis(
    client_for: ClientFactory, twilio: respx.MockRouter, redis_url: str, key_prefix: str
) -> None:
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=passed())
    shared: dict[str, Any] = {
        **RISK,
        **AS_PROXY,
        "rate_limit_storage_url": redis_url,
        "rate_limit_key_prefix": key_prefix,
        "captcha_free_sends_per_ip": "2/hour",
        "markets": kg_budget("5/hour"),
    }

    async with client_for(**shared) as one, client_for(**shared) as two:
        free = [
            await one.post(SEND, json={"phone": new_phone()}, **from_ip("203.0.113.7")),
            await two.post(SEND, json={"phone": new_phone()}, **from_ip("203.0.113.7")),
        ]
        used_up = await one.post(SEND, json={"phone": new_phone()}, **from_ip("203.0.113.7"))
        # Two of five sent; a third from another client takes the budget past half.
        third = await two.post(SEND, json={"phone": new_phone()}, **from_ip("198.51.100.1"))
        over_half = await one.post(SEND, json={"phone": new_phone()}, **from_ip("198.51.100.2"))

    assert [answer.status_code for answer in free] == [200, 200]
    assert (used_up.status_code, used_up.json()) == (400, REQUIRED)
    assert third.status_code == 200, third.text
    assert (over_half.status_code, over_half.json()) == (400, REQUIRED)
    assert start.call_count == 3
