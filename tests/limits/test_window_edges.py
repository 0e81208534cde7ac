"""In-process windows at their edges, on a clock that stands still: a hit exactly a
window old, the instant a slot frees, and emptied windows of several hits."""

from __future__ import annotations

import pytest
from limits import parse

from app.services.limits.local import LocalMovingWindow
from app.services.limits.steps import Step, parse_limits
from app.services.limits.windows import RateLimiter
from tests.conftest import FakeClock
from tests.limits.conftest import TickingClock


async def test_a_single_hit_exactly_a_window_old_still_counts(clock: FakeClock) -> None:
    limiter = LocalMovingWindow(clock)
    item = parse("1/minute")
    hit_at = clock.now
    assert await limiter.hit(item, "k")

    clock.advance(60)
    assert not await limiter.test(item, "k")
    assert not await limiter.hit(item, "k")
    assert await limiter.get_window_stats(item, "k") == (hit_at + 60, 0)

    clock.advance(0.001)
    assert await limiter.test(item, "k")
    assert await limiter.hit(item, "k")


async def test_several_hits_leave_the_window_one_by_one_at_their_exact_age(
    clock: FakeClock,
) -> None:
    limiter = LocalMovingWindow(clock)
    item = parse("2/minute")
    first = clock.now
    assert await limiter.hit(item, "k")
    clock.advance(10)
    assert await limiter.hit(item, "k")

    clock.advance(50)  # the first hit is exactly a window old: both still count
    assert not await limiter.hit(item, "k")
    assert await limiter.get_window_stats(item, "k") == (first + 60, 0)

    clock.advance(0.5)  # the first has left; the second frees its slot at its own age
    assert await limiter.get_window_stats(item, "k") == (first + 70, 1)
    assert await limiter.hit(item, "k")
    assert not await limiter.test(item, "k")


async def test_a_slot_frees_a_window_after_the_oldest_hit_not_after_now(
    clock: FakeClock,
) -> None:
    limiter = LocalMovingWindow(clock)
    item = parse("3/minute")
    first = clock.now
    await limiter.hit(item, "k")
    clock.advance(20)
    await limiter.hit(item, "k")
    clock.advance(20)

    assert await limiter.get_window_stats(item, "k") == (first + 60, 1)
    # An empty window frees its first slot a whole window from now.
    assert await limiter.get_window_stats(item, "other") == (clock.now + 60, 3)


async def test_emptied_windows_of_several_hits_are_forgotten(clock: FakeClock) -> None:
    limiter = LocalMovingWindow(clock)
    item = parse("2/second")
    for key in ("a", "b"):
        await limiter.hit(item, key)
        await limiter.hit(item, key)
    assert len(limiter) == 2

    clock.advance(5)
    assert await limiter.test(item, "a")  # counting empties "a"'s window of two hits
    await limiter.hit(item, "c")

    assert len(limiter) == 1
    assert (await limiter.get_window_stats(item, "c")).remaining == 1


class _Evictions:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_a_key_whose_hit_is_exactly_a_window_old_is_evicted_not_dropped() -> None:
    """Its hit still counts at that instant: making room for a new key evicts it, and
    the eviction is counted."""
    clock = FakeClock(1000.0)  # whole numbers: `now - expiry` is the hit's time exactly
    evictions = _Evictions()
    limiter = LocalMovingWindow(clock, max_keys=1, on_evict=evictions)
    await limiter.hit(parse("1/10second"), "edge")
    clock.advance(10)

    await limiter.hit(parse("5/hour"), "new")

    assert (len(limiter), evictions.count) == (1, 1)


async def test_dropping_an_emptied_window_keeps_the_count_of_keys(clock: FakeClock) -> None:
    evictions = _Evictions()
    limiter = LocalMovingWindow(clock, max_keys=3, on_evict=evictions)
    second, day = parse("1/second"), parse("10/day")
    await limiter.hit(second, "brief")
    await limiter.hit(day, "old")
    await limiter.hit(day, "older")
    clock.advance(5)  # "brief" has left its window

    await limiter.hit(day, "new")  # takes the place of "brief"
    assert (len(limiter), evictions.count) == (3, 0)
    await limiter.hit(day, "newer")  # the bound is reached: "old" is evicted
    assert (len(limiter), evictions.count) == (3, 1)


async def test_a_limit_whose_windows_are_all_gone_is_passed_over_when_evicting(
    clock: FakeClock,
) -> None:
    evictions = _Evictions()
    limiter = LocalMovingWindow(clock, max_keys=2, on_evict=evictions)
    second, day = parse("1/second"), parse("10/day")
    await limiter.hit(second, "brief")
    await limiter.hit(day, "old")
    clock.advance(5)
    await limiter.hit(day, "new")  # "brief" dropped: the 1/second limit holds no key

    await limiter.hit(day, "newer")  # the least recent key of the day's goes

    assert (len(limiter), evictions.count) == (2, 1)
    assert await limiter.test(day, "old")
    assert (await limiter.get_window_stats(day, "new")).remaining == 9


async def test_emptied_windows_swept_by_a_hit_leave_the_count_of_keys_right(
    clock: FakeClock,
) -> None:
    limiter = LocalMovingWindow(clock)
    second = parse("1/second")
    await limiter.hit(second, "gone")
    clock.advance(0.5)
    await limiter.hit(second, "kept")
    clock.advance(0.6)

    await limiter.hit(second, "new")  # sweeps "gone" only: "kept" still counts

    assert len(limiter) == 2
    assert not await limiter.test(second, "kept")


@pytest.mark.redis
async def test_on_redis_a_wait_is_read_at_one_instant(redis_url: str, key_prefix: str) -> None:
    """The hit is exactly a window old when the wait is read: it still counts, so the
    slot frees a moment later (1 s), not a whole window later, although the clock has
    moved on by the time the seconds are counted."""
    clock = TickingClock(1000.0)
    limiter = RateLimiter(redis_url, key_prefix, clock=clock)
    [item] = parse_limits("1/minute")
    try:
        assert await limiter.run_in_order([Step(item, ("k",), True)]) is None  # at 1000
        clock.now = 1060.0
        wait = await limiter.retry_after(item, "k")
    finally:
        await limiter.aclose()

    assert wait == 1
