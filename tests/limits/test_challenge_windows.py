"""What the challenge reads from the limits: a client's free sends
(CAPTCHA_FREE_SENDS_PER_IP) and the share of a market's SMS budget used, in memory and
on Redis."""

from __future__ import annotations

import pytest

from app.core.config import Settings
from app.core.markets import Market, Markets
from app.core.metrics import Metrics
from app.core.phone import parse_phone
from app.services.limits.service import LoginLimits
from app.services.limits.windows import RateLimiter
from tests.conftest import FakeClock
from tests.helpers import kg_budget, new_phone
from tests.limits.conftest import LimitsFactory

CLIENT = "203.0.113.7"


def kg(settings: Settings) -> Market:
    return Markets(settings).of(parse_phone(new_phone()))


async def test_a_client_has_its_free_sends_then_none_until_the_window_moves(
    make_limits: LimitsFactory, clock: FakeClock
) -> None:
    limits = make_limits(captcha_free_sends_per_ip="3/hour")

    first = [await limits.take_free_send("203.0.113.7") for _ in range(3)]
    used_up = [await limits.take_free_send("203.0.113.7") for _ in range(3)]
    other = await limits.take_free_send("198.51.100.1")
    clock.advance(3601)
    later = await limits.take_free_send("203.0.113.7")

    assert first == [True, True, True]
    assert used_up == [False, False, False]
    assert other is True
    assert later is True


async def test_an_ipv6_client_has_the_free_sends_of_its_64(make_limits: LimitsFactory) -> None:
    limits = make_limits(captcha_free_sends_per_ip="1/hour")

    assert await limits.take_free_send("2001:db8:1:2::a") is True
    assert await limits.take_free_send("2001:db8:1:2::b") is False
    assert await limits.take_free_send("2001:db8:1:3::a") is True


async def test_a_refused_free_send_takes_from_no_window(
    make_limits: LimitsFactory, clock: FakeClock
) -> None:
    """With several windows, one that is used up takes nothing from the others."""
    limits = make_limits(captcha_free_sends_per_ip="2/minute;3/hour")

    taken = [await limits.take_free_send("203.0.113.7") for _ in range(3)]
    clock.advance(61)
    after_a_minute = [await limits.take_free_send("203.0.113.7") for _ in range(2)]

    assert taken == [True, True, False]
    # The refused third left room for one in the hour.
    assert after_a_minute == [True, False]


async def test_free_sends_count_with_the_other_limits_off(make_limits: LimitsFactory) -> None:
    limits = make_limits(captcha_free_sends_per_ip="1/hour", rate_limit_enabled=False)

    assert [await limits.take_free_send(None) for _ in range(2)] == [True, False]


async def test_the_budget_used_is_the_share_of_its_fullest_window(
    make_limits: LimitsFactory, clock: FakeClock
) -> None:
    settings = Settings(_env_file=None, markets=kg_budget("4/hour;10/day"))  # type: ignore[call-arg]
    limits = make_limits(markets=kg_budget("4/hour;10/day"))
    market = kg(settings)

    shares = [await limits.sms_budget_used(market)]
    for _ in range(3):
        await limits.take_send(parse_phone(new_phone()), market, None, test_number=False)
        shares.append(await limits.sms_budget_used(market))
    clock.advance(3601)
    shares.append(await limits.sms_budget_used(market))

    assert shares == [0.0, 0.25, 0.5, 0.75, 0.3]


async def test_reading_the_budget_takes_nothing_from_it(make_limits: LimitsFactory) -> None:
    settings = Settings(_env_file=None, markets=kg_budget("1/hour"))  # type: ignore[call-arg]
    limits = make_limits(markets=kg_budget("1/hour"))
    market = kg(settings)

    for _ in range(5):
        assert await limits.sms_budget_used(market) == 0.0
    await limits.take_send(parse_phone(new_phone()), market, None, test_number=False)

    assert await limits.sms_budget_used(market) == 1.0


async def test_a_free_send_refused_by_the_longer_window_takes_nothing_from_the_shorter(
    make_limits: LimitsFactory, clock: FakeClock
) -> None:
    limits = make_limits(captcha_free_sends_per_ip="2/10second;3/15second")

    at = [await limits.take_free_send(CLIENT) for _ in range(2)]  # at 0 s
    clock.advance(11)
    at.append(await limits.take_free_send(CLIENT))  # the third of the 15 s, at 11 s
    clock.advance(3)
    at.append(await limits.take_free_send(CLIENT))  # at 14 s: the 15 s refuses
    clock.advance(2.5)
    # At 16.5 s the two sends of 0 s have left the 15 s; the 10 s holds only the send
    # of 11 s, the refused one took nothing from it.
    at.append(await limits.take_free_send(CLIENT))

    assert at == [True, True, True, False, True]


@pytest.mark.redis
async def test_every_replica_reads_the_budget_used_from_redis(
    redis_url: str, key_prefix: str, clock: FakeClock
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        rate_limit_storage_url=redis_url,
        rate_limit_key_prefix=key_prefix,
        markets=kg_budget("4/hour"),
    )
    replicas = [
        LoginLimits(settings, RateLimiter(redis_url, key_prefix, clock=clock), Metrics())
        for _ in range(2)
    ]
    market = kg(settings)
    try:
        shares = [await replicas[1].sms_budget_used(market)]
        for _ in range(2):
            await replicas[0].take_send(parse_phone(new_phone()), market, None, test_number=False)
            shares.append(await replicas[1].sms_budget_used(market))
    finally:
        for replica in replicas:
            await replica.aclose()

    assert shares == [0.0, 0.25, 0.5]
