"""In-process windows at their edges, on a clock that stands still: a hit exactly a
window old, the instant a slot frees, and emptied windows of several hits."""

from __future__ import annotations

from limits import parse

from app.services.limits.local import LocalMovingWindow
from tests.conftest import FakeClock


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
