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
is neither a container nor anything the garbage collector has to walk; a
second hit turns it into an array of doubles (8 bytes a hit).

The keys are bounded (`max_keys`): a new key beyond the bound first drops a
window that has emptied, else evicts the key whose latest counted hit is the
oldest of all tables (the least recently used), and says so to `on_evict`.
"""

from __future__ import annotations

import math
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple, TypeAlias

from limits import RateLimitItem

from app.services.limits.steps import Clock


class WindowStats(NamedTuple):
    """When the window frees a slot (epoch seconds), and how many are left."""

    reset_time: float
    remaining: int


Hits: TypeAlias = "float | array[float]"  # one hit, or several in time order


def _newest(hits: Hits) -> float:
    """The latest hit, or -inf for an emptied array."""
    if isinstance(hits, float):
        return hits
    return hits[-1] if hits else -math.inf


class _Table:
    """The windows of one limit item, keyed by identifiers, least recently hit first."""

    __slots__ = ("amount", "expiry", "item", "windows")

    def __init__(self, item: RateLimitItem) -> None:
        self.item = item  # kept alive, so that its id() is not reused by another item
        self.amount = item.amount
        self.expiry = item.get_expiry()
        self.windows: OrderedDict[tuple[str, ...], Hits] = OrderedDict()

    def count(self, hits: Hits | None, since: float) -> int:
        """Hits at or after `since`; an array loses the older ones."""
        if hits is None:
            return 0
        if isinstance(hits, float):
            return 1 if hits >= since else 0
        if hits and hits[0] < since:
            del hits[: bisect_left(hits, since)]
        return len(hits)


class LocalMovingWindow:
    """Moving-window limits in this process's memory, at most `max_keys` keys."""

    # Keys dropped per hit, at most, so that no request pays for a long sweep.
    SWEEP_PER_HIT = 4

    def __init__(
        self,
        clock: Clock = time.time,
        *,
        max_keys: int | None = None,
        on_evict: Callable[[], object] | None = None,
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys if max_keys is not None else math.inf
        self._on_evict = on_evict
        self._keys = 0
        self._last_hit = -math.inf
        # Keyed by the item's identity: items are parsed once, at start-up.
        self._tables: dict[int, _Table] = {}

    def _table(self, item: RateLimitItem) -> _Table:
        table = self._tables.get(id(item))
        if table is None:
            table = self._tables[id(item)] = _Table(item)
        return table

    def _hit_time(self) -> float:
        """Now, or a hair after the previous hit when the clock has not moved since:
        every hit has its own instant, so that one key is the least recently hit."""
        now = self._clock()
        if now <= self._last_hit:
            now = math.nextafter(self._last_hit, math.inf)
        self._last_hit = now
        return now

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Take one from `item` for `identifiers`; False when it is used up."""
        now = self._hit_time()
        table = self._table(item)
        windows = table.windows
        since = now - table.expiry
        hits = windows.get(identifiers)
        count = table.count(hits, since)
        if count >= table.amount:
            # Refused: nothing counted, so the key's place in the order stays.
            self._sweep(table, since)
            return False
        if hits is None:
            if self._keys >= self._max_keys:
                self._make_room(now)
            windows[identifiers] = now
            self._keys += 1
        else:
            if count == 0:
                windows[identifiers] = now
            elif isinstance(hits, float):
                windows[identifiers] = array("d", (hits, now))
            else:
                hits.append(now)
            windows.move_to_end(identifiers)
        self._sweep(table, since)
        return True

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
        return self._keys

    def _sweep(self, table: _Table, since: float) -> None:
        windows = table.windows
        for _ in range(self.SWEEP_PER_HIT):
            if not windows:
                return
            key, hits = next(iter(windows.items()))
            if _newest(hits) >= since:
                return
            del windows[key]
            self._keys -= 1

    def _make_room(self, now: float) -> None:
        """Drop one key: an emptied window if a table leads with one, else the least
        recently hit key of all tables, which is an eviction."""
        oldest_table: _Table | None = None
        oldest = math.inf
        for table in self._tables.values():
            if not table.windows:
                continue
            key, hits = next(iter(table.windows.items()))
            newest = _newest(hits)
            if newest < now - table.expiry:
                del table.windows[key]
                self._keys -= 1
                return
            if newest < oldest:
                oldest_table, oldest = table, newest
        if oldest_table is None:
            return
        del oldest_table.windows[next(iter(oldest_table.windows))]
        self._keys -= 1
        if self._on_evict is not None:
            self._on_evict()
