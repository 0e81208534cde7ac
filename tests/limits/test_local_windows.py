"""In-process moving windows answer exactly as `limits`' memory storage does."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage, memory
from limits.aio.strategies import MovingWindowRateLimiter

from app.services.limits.local import LocalMovingWindow
from tests.conftest import FakeClock


@pytest.fixture
def reference_reads(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """`limits`' memory storage, the reference, has no clock to inject: its module reads
    `clock` instead of `time.time` (only its module; the app's windows are given `clock`)."""
    monkeypatch.setattr(memory, "time", SimpleNamespace(time=clock))
    return clock


async def test_a_window_refuses_when_full_and_frees_its_oldest_slot_first(
    clock: FakeClock,
) -> None:
    limiter = LocalMovingWindow(clock)
    item = parse("3/minute")

    assert [await limiter.hit(item, "send", "+996555123456") for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert await limiter.hit(item, "send", "+15005550006")  # another key is untouched
    assert not await limiter.test(item, "send", "+996555123456")
    stats = await limiter.get_window_stats(item, "send", "+996555123456")
    assert (stats.reset_time, stats.remaining) == (clock.now + 60, 0)

    clock.advance(60.5)
    assert await limiter.test(item, "send", "+996555123456")
    assert await limiter.hit(item, "send", "+996555123456")


async def test_emptied_windows_are_forgotten(clock: FakeClock) -> None:
    limiter = LocalMovingWindow(clock)
    item = parse("1/second")
    for n in range(1000):
        await limiter.hit(item, "send", str(n))
    assert len(limiter) == 1000

    clock.advance(5)
    for _ in range(300):
        await limiter.hit(item, "send", "busy")

    assert len(limiter) == 1


@pytest.mark.parametrize("seed", range(5))
async def test_same_answers_as_the_limits_library(reference_reads: FakeClock, seed: int) -> None:
    clock = reference_reads
    rng = random.Random(seed)
    ours, theirs = LocalMovingWindow(clock), MovingWindowRateLimiter(MemoryStorage())
    items = [parse("2/second"), parse("3/10 seconds"), parse("5/minute")]
    for _ in range(400):
        clock.advance(rng.choice([0.0, 0.1, 0.5, 1.0, 3.0, 11.0]))
        item, key = rng.choice(items), rng.choice(["a", "b", "c"])
        action = rng.choice(["hit", "hit", "test", "stats"])
        if action == "hit":
            assert await ours.hit(item, key) == await theirs.hit(item, key)
        elif action == "test":
            assert await ours.test(item, key) == await theirs.test(item, key)
        else:
            mine, reference = (
                await ours.get_window_stats(item, key),
                await theirs.get_window_stats(item, key),
            )
            if reference.remaining == item.amount:
                # An empty window frees its first slot a whole window from now; `limits`
                # answers from the start of the last window it saw, long past.
                assert mine == (clock.now + item.get_expiry(), item.amount)
            else:
                # Within a millisecond (hits at one instant are a few ulps apart here,
                # to keep their order), far below the 0.1 s the clock moves by.
                assert mine.remaining == reference.remaining
                assert mine.reset_time == pytest.approx(reference.reset_time, rel=0, abs=1e-3)


class Evictions:
    """Counts the evictions a limiter reports."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_keys_are_bounded_by_evicting_the_least_recently_hit(clock: FakeClock) -> None:
    evictions = Evictions()
    limiter = LocalMovingWindow(clock, max_keys=3, on_evict=evictions)
    send, check = parse("1/minute"), parse("5/hour")
    await limiter.hit(send, "a")
    clock.advance(1)
    await limiter.hit(check, "b")
    clock.advance(1)
    await limiter.hit(send, "c")
    clock.advance(1)
    # A refused hit counts nothing and keeps its place: "a" stays the least recent.
    assert not await limiter.hit(send, "a")
    await limiter.hit(check, "b")  # "b" is now the most recently hit

    await limiter.hit(check, "d")  # a fourth key: "a" goes, from the other table
    assert (len(limiter), evictions.count) == (3, 1)
    assert await limiter.test(send, "a")  # forgotten: its cooldown starts afresh
    assert not await limiter.test(send, "c")

    await limiter.hit(send, "e")  # then "c", the least recent of what is left
    assert (len(limiter), evictions.count) == (3, 2)
    assert await limiter.test(send, "c")
    assert (await limiter.get_window_stats(check, "b")).remaining == 3
    assert (await limiter.get_window_stats(check, "d")).remaining == 4


async def test_emptied_windows_make_room_before_a_live_key_is_evicted(clock: FakeClock) -> None:
    evictions = Evictions()
    limiter = LocalMovingWindow(clock, max_keys=2, on_evict=evictions)
    day, second = parse("10/day"), parse("1/second")
    await limiter.hit(day, "old")  # the oldest hit, and still in its window
    clock.advance(1)
    await limiter.hit(second, "brief")
    clock.advance(5)  # "brief" has left its window; "old" has not

    await limiter.hit(day, "new")

    assert (len(limiter), evictions.count) == (2, 0)
    assert (await limiter.get_window_stats(day, "old")).remaining == 9
