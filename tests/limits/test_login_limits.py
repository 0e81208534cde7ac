"""`LoginLimits` decisions read by the login: test numbers' windows, the wait of a
client whose windows are all used up, and a client's window at a number."""

from __future__ import annotations

import logging

import pytest

from app.core.config import Settings
from app.core.markets import Market, Markets
from app.core.metrics import Metrics
from app.core.phone import parse_phone
from app.services.limits.service import LoginLimits, RateLimited, SmsBudgetExhausted
from app.services.limits.windows import RateLimiter
from tests.conftest import FakeClock
from tests.helpers import kg_budget, new_phone
from tests.limits.conftest import LimitsFactory, TickingClock

CLIENT = "203.0.113.7"
LOGGER = "app.services.limits.service"
REFUSALS = "phone_auth_rate_limit_refusals_total"


def _market(phone: str) -> Market:
    return Markets(Settings(_env_file=None)).of(parse_phone(phone))  # type: ignore[call-arg]


async def _refusal(take: object) -> int:
    """The Retry-After of a refusal."""
    with pytest.raises(RateLimited) as refused:
        await take  # type: ignore[misc]
    return refused.value.retry_after


async def test_a_test_number_skips_the_cooldown_but_keeps_the_numbers_hourly_window(
    make_limits: LimitsFactory, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    limits = make_limits(metrics, rate_limit_send_per_phone="1/minute;3/hour")
    phone = parse_phone(new_phone())
    market = _market(phone.e164)

    for _ in range(3):
        await limits.take_send(phone, market, CLIENT, test_number=True)
    clock.advance(10)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        wait = await _refusal(limits.take_send(phone, market, CLIENT, test_number=True))

    # The first of the three leaves the hour 3600 s after it was sent, 10 s ago.
    assert wait == 3591
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
        f"Rate limit send_per_phone refused {phone.masked} for 3591s"
    ]
    assert metrics.registry.get_sample_value(REFUSALS, {"limit": "send_per_phone"}) == 1


async def test_a_test_number_keeps_a_single_window_of_one_send(
    make_limits: LimitsFactory,
) -> None:
    """Only a cooldown followed by a longer window is skipped: a lone window is the
    number's only bound."""
    limits = make_limits(rate_limit_send_per_phone="1/hour")
    phone = parse_phone(new_phone())
    market = _market(phone.e164)

    await limits.take_send(phone, market, CLIENT, test_number=True)
    assert await _refusal(limits.take_send(phone, market, CLIENT, test_number=True)) == 3601


async def test_a_used_up_budget_is_logged_as_an_error_with_its_market_and_wait(
    make_limits: LimitsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    limits = make_limits(metrics, markets=kg_budget("1/hour"))
    phones = [parse_phone(new_phone()) for _ in range(2)]
    market = Markets(Settings(_env_file=None, markets=kg_budget("1/hour"))).of(phones[0])  # type: ignore[call-arg]

    await limits.take_send(phones[0], market, CLIENT, test_number=False)
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(SmsBudgetExhausted):
        await limits.take_send(phones[1], market, "198.51.100.1", test_number=False)

    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER] == [
        (
            logging.ERROR,
            "SMS budget of market KG used up (sms_budget): refusing sends for 3601s; "
            "an attack or a bug, not a busy user",
        )
    ]
    assert metrics.registry.get_sample_value(REFUSALS, {"limit": "sms_budget"}) == 1


async def test_a_test_number_counts_against_its_clients_window(
    make_limits: LimitsFactory,
) -> None:
    limits = make_limits(rate_limit_send_per_ip="2/hour")
    phones = [parse_phone(new_phone()) for _ in range(3)]

    for phone in phones[:2]:
        await limits.take_send(phone, _market(phone.e164), CLIENT, test_number=True)
    wait = await _refusal(
        limits.take_send(phones[2], _market(phones[2].e164), CLIENT, test_number=True)
    )

    assert wait == 3601


async def test_a_client_with_every_window_used_up_waits_for_the_longest(
    make_limits: LimitsFactory,
) -> None:
    """The minute is used up first, but waiting it out alone would not help."""
    limits = make_limits(rate_limit_send_per_ip="2/minute;2/hour")
    phones = [parse_phone(new_phone()) for _ in range(3)]

    for phone in phones[:2]:
        await limits.take_send(phone, _market(phone.e164), CLIENT, test_number=False)
    wait = await _refusal(
        limits.take_send(phones[2], _market(phones[2].e164), CLIENT, test_number=False)
    )

    assert wait == 3601


async def test_a_client_at_its_limit_at_a_number_is_refused_before_its_check(
    make_limits: LimitsFactory, clock: FakeClock
) -> None:
    """The client's window at the number, taken by checks of a pending code, refuses the
    next check up front (before an attempt is spent on it), for that client only."""
    limits = make_limits(rate_limit_verify_per_phone="2/hour")
    phone = parse_phone(new_phone())
    market = _market(phone.e164)

    for _ in range(2):
        await limits.take_verify(phone, market, CLIENT)
        await limits.take_code_check(phone, market, CLIENT)
    clock.advance(100)
    wait = await _refusal(limits.take_verify(phone, market, CLIENT))
    await limits.take_verify(phone, market, "198.51.100.1")

    assert wait == 3501


async def test_a_window_that_frees_a_slot_while_refusing_still_answers_its_wait() -> None:
    """The refusal reads the window a moment before its oldest check leaves it, the wait
    a moment after: the wait is then that of the window as it now stands (its other
    check leaves it in 30 s), not an error and not a whole window."""
    settings = Settings(_env_file=None, rate_limit_verify_per_phone="2/minute")  # type: ignore[call-arg]
    clock = TickingClock(1000.0)
    limits = LoginLimits(settings, RateLimiter("memory://", clock=clock), Metrics())
    phone = parse_phone(new_phone())
    market = _market(phone.e164)

    await limits.take_code_check(phone, market, CLIENT)  # at 1000
    clock.now = 1030.0
    await limits.take_code_check(phone, market, CLIENT)  # at 1030
    clock.now = 1060.0 - 0.0005  # refused at 1059.9995; the wait read from 1060.0005 on
    wait = await _refusal(limits.take_code_check(phone, market, CLIENT))

    assert wait == 30


async def test_a_test_number_skips_the_shortest_window_however_the_limits_are_written(
    make_limits: LimitsFactory,
) -> None:
    """The cooldown is the shortest window even when written last, in the same unit."""
    limits = make_limits(rate_limit_send_per_phone="3/10minute;1/2minute")
    phone = parse_phone(new_phone())
    market = _market(phone.e164)

    for _ in range(3):
        await limits.take_send(phone, market, CLIENT, test_number=True)
    assert await _refusal(limits.take_send(phone, market, CLIENT, test_number=True)) == 601
