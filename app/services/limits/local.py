"""In-process moving windows: the limits of one process, without Redis.

The same answers as `limits`' MovingWindowRateLimiter over its MemoryStorage,
at a fraction of the cost: that storage keeps every window as a list it
inserts into at the front, and its expiry task walks every key it has seen
through a worker thread on each pass, which grows with every number that
ever asked for a code. Here each limit has its own table of windows, least
recently hit first, and keys whose windows have emptied are dropped as a side
effect of hits, oldest activity first.

A process holds a day's windows of every number it has seen, so a window is
small: a key with one hit in it (the usual case) keeps a bare float, which
is neither a list nor anything the garbage collector has to walk; a second
hit turns it into a list.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import OrderedDict
from typing import NamedTuple

from limits import RateLimitItem

from app.services.limits.steps import Clock


class WindowStats(NamedTuple):
    """When the window frees a slot (epoch seconds), and how many are left."""

    reset_time: float
    remaining: int


Hits = float | list[float]  # one hit, or several in time order


class _Table:
    """The windows of one limit item, keyed by identifiers, least recently hit first."""

    __slots__ = ("amount", "expiry", "item", "windows")

    def __init__(self, item: RateLimitItem) -> None:
        self.item = item  # kept alive, so that its id() is not reused by another item
        self.amount = item.amount
        self.expiry = item.get_expiry()
        self.windows: OrderedDict[tuple[str, ...], Hits] = OrderedDict()

    def count(self, hits: Hits | None, since: float) -> int:
        """Hits at or after `since`; a list loses the older ones."""
        if hits is None:
            return 0
        if isinstance(hits, float):
            return 1 if hits >= since else 0
        if hits and hits[0] < since:
            del hits[: bisect_left(hits, since)]
        return len(hits)


class LocalMovingWindow:
    """Moving-window limits in this process's memory."""

    # Keys dropped per hit, at most, so that no request pays for a long sweep.
    SWEEP_PER_HIT = 4

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        # Keyed by the item's identity: items are parsed once, at start-up.
        self._tables: dict[int, _Table] = {}

    def _table(self, item: RateLimitItem) -> _Table:
        table = self._tables.get(id(item))
        if table is None:
            table = self._tables[id(item)] = _Table(item)
        return table

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Take one from `item` for `identifiers`; False when it is used up."""
        now = self._clock()
        table = self._table(item)
        windows = table.windows
        since = now - table.expiry
        hits = windows.get(identifiers)
        count = table.count(hits, since)
        allowed = count < table.amount
        if allowed:
            if count == 0:
                windows[identifiers] = now
            elif isinstance(hits, float):
                windows[identifiers] = [hits, now]
            elif hits is not None:
                hits.append(now)
        if hits is not None:
            windows.move_to_end(identifiers)
        self._sweep(table, since)
        return allowed

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Whether one more would be allowed, without taking it."""
        table = self._table(item)
        since = self._clock() - table.expiry
        return table.count(table.windows.get(identifiers), since) < table.amount

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        """When the oldest hit in the window leaves it, and what remains."""
        now = self._clock()
        table = self._table(item)
        hits = table.windows.get(identifiers)
        count = table.count(hits, now - table.expiry)
        if hits is None or count == 0:
            return WindowStats(now + table.expiry, table.amount)
        oldest = hits if isinstance(hits, float) else hits[0]
        return WindowStats(oldest + table.expiry, table.amount - count)

    def __len__(self) -> int:
        return sum(len(table.windows) for table in self._tables.values())

    def _sweep(self, table: _Table, since: float) -> None:
        windows = table.windows
        for _ in range(self.SWEEP_PER_HIT):
            if not windows:
                return
            key, hits = next(iter(windows.items()))
            newest = hits if isinstance(hits, float) else (hits[-1] if hits else None)
            if newest is not None and newest >= since:
                return
            del windows[key]
