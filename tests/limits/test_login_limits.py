"""`LoginLimits` decisions read by the login: test numbers' windows, the wait of a
client whose windows are all used up, and a client's window at a number."""

from __future__ import annotations

import pytest

from app.core.config import Settings
from app.core.markets import Market, Markets
from app.core.phone import parse_phone
from app.services.limits.service import RateLimited
from tests.conftest import FakeClock
from tests.helpers import new_phone
from tests.limits.conftest import LimitsFactory

CLIENT = "203.0.113.7"


def _market(phone: str) -> Market:
    return Markets(Settings(_env_file=None)).of(parse_phone(phone))  # type: ignore[call-arg]


async def _refusal(take: object) -> int:
    """The Retry-After of a refusal."""
    with pytest.raises(RateLimited) as refused:
        await take  # type: ignore[misc]
    return refused.value.retry_after


async def test_a_test_number_skips_the_cooldown_but_keeps_the_numbers_hourly_window(
    make_limits: LimitsFactory, clock: FakeClock
) -> None:
    limits = make_limits(rate_limit_send_per_phone="1/minute;3/hour")
    phone = parse_phone(new_phone())
    market = _market(phone.e164)

    for _ in range(3):
        await limits.take_send(phone, market, CLIENT, test_number=True)
    clock.advance(10)
    wait = await _refusal(limits.take_send(phone, market, CLIENT, test_number=True))

    # The first of the three leaves the hour 3600 s after it was sent, 10 s ago.
    assert wait == 3591


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
