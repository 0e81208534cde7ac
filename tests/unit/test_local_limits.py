"""In-process moving windows answer exactly as `limits`' memory storage does."""

from __future__ import annotations

import random
import time

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from app.services.limits.local import LocalMovingWindow


class Clock:
    """time.time() under the test's control."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "time", fake)
    return fake


async def test_a_window_refuses_when_full_and_frees_its_oldest_slot_first(clock: Clock) -> None:
    limiter = LocalMovingWindow()
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

    clock.now += 60.5
    assert await limiter.test(item, "send", "+996555123456")
    assert await limiter.hit(item, "send", "+996555123456")


async def test_emptied_windows_are_forgotten(clock: Clock) -> None:
    limiter = LocalMovingWindow()
    item = parse("1/second")
    for n in range(1000):
        await limiter.hit(item, "send", str(n))
    assert len(limiter) == 1000

    clock.now += 5
    for _ in range(300):
        await limiter.hit(item, "send", "busy")

    assert len(limiter) == 1


@pytest.mark.parametrize("seed", range(5))
async def test_same_answers_as_the_limits_library(clock: Clock, seed: int) -> None:
    rng = random.Random(seed)
    ours, theirs = LocalMovingWindow(), MovingWindowRateLimiter(MemoryStorage())
    items = [parse("2/second"), parse("3/10 seconds"), parse("5/minute")]
    for _ in range(400):
        clock.now += rng.choice([0.0, 0.1, 0.5, 1.0, 3.0, 11.0])
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
            assert (mine.reset_time, mine.remaining) == pytest.approx(
                (reference.reset_time, reference.remaining)
            )
