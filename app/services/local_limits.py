"""In-process moving windows: the limits of one process, without Redis.

The same answers as `limits`' MovingWindowRateLimiter over its MemoryStorage,
at a fraction of the cost: that storage keeps every window as a list it
inserts into at the front, and its expiry task walks every key it has seen
through a worker thread on each pass, which grows with every number that
ever asked for a code. Here a window is a short list appended to (a number's
windows hold a handful of hits: a deque's fixed block would be most of the
memory), and keys whose windows have emptied are dropped as a side effect of
hits, oldest activity first.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import OrderedDict
from typing import NamedTuple

from limits import RateLimitItem


class WindowStats(NamedTuple):
    """When the window frees a slot (epoch seconds), and how many are left."""

    reset_time: float
    remaining: int


class _Window:
    __slots__ = ("expiry", "hits")

    def __init__(self, expiry: int) -> None:
        self.expiry = expiry
        self.hits: list[float] = []

    def trim(self, now: float) -> int:
        """Forget hits older than the window; return how many are left."""
        hits = self.hits
        if hits and hits[0] < now - self.expiry:
            del hits[: bisect_left(hits, now - self.expiry)]
        return len(hits)


class LocalMovingWindow:
    """Moving-window limits in this process's memory."""

    # Keys dropped per hit, at most, so that no request pays for a long sweep.
    SWEEP_PER_HIT = 4

    def __init__(self) -> None:
        # Least recently hit first: the front is what may have expired. Keyed by
        # the item's identity (items are parsed once, at start-up) and the
        # identifiers: `item.key_for` builds a string at several µs a call.
        self._windows: OrderedDict[tuple[object, ...], _Window] = OrderedDict()

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Take one from `item` for `identifiers`; False when it is used up."""
        now = time.time()
        key = (id(item), *identifiers)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(item.get_expiry())
        else:
            self._windows.move_to_end(key)
        allowed = window.trim(now) < item.amount
        if allowed:
            window.hits.append(now)
        self._sweep(now)
        return allowed

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Whether one more would be allowed, without taking it."""
        window = self._windows.get((id(item), *identifiers))
        return window is None or window.trim(time.time()) < item.amount

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """When the oldest hit in the window leaves it, and what remains."""
        now = time.time()
        window = self._windows.get((id(item), *identifiers))
        count = 0 if window is None else window.trim(now)
        if window is None or count == 0:
            return WindowStats(now + item.get_expiry(), item.amount)
        return WindowStats(window.hits[0] + window.expiry, item.amount - count)

    def __len__(self) -> int:
        return len(self._windows)

    def _sweep(self, now: float) -> None:
        windows = self._windows
        for _ in range(self.SWEEP_PER_HIT):
            if not windows:
                return
            key, window = next(iter(windows.items()))
            if window.hits and window.hits[-1] >= now - window.expiry:
                return
            del windows[key]
