"""Moving windows in Redis, several in one round trip, in the `limits` library's format.

With the default limits a send consults eight windows (its client's, its
number's three checked and then taken, its market's budget); through `limits`
each would be a script call of its own.
These scripts take the same steps over the same keys and lists as `limits`'
moving-window scripts (acquire_moving_window.lua, moving_window.lua), for
several windows at once, so both read and write the same windows. Imported
only when RATE_LIMIT_STORAGE_URL is Redis.

On a Redis Cluster every key of one script must be in one hash slot. A window's
key carries its identifiers (the limit and whose window it is: a client, a
number, a market) as a hash tag, so that the windows of one identity share a
slot and different identities spread over the nodes; a decision is split into
one script per run of steps of one identity, in order (see "Scaling out" in
the README for what that keeps and gives up).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from limits import RateLimitItem
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from app.services.limits.steps import Clock, Step

# KEYS: the windows; ARGV: now, then each window's limit, expiry and whether to
# take one from it (1) or only look (0). In order, stop at the first window that
# is full: its position (1-based), or 0 when none was. A window is full when its
# limit-th newest hit is still inside it (the list holds the newest `limit`).
_IN_ORDER = """
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
    local limit = tonumber(ARGV[3 * i - 1])
    local expiry = tonumber(ARGV[3 * i])
    local entry = redis.call('lindex', KEYS[i], limit - 1)
    if entry and tonumber(entry) >= now - expiry then
        return i
    end
    if ARGV[3 * i + 1] == '1' then
        redis.call('lpush', KEYS[i], now)
        redis.call('ltrim', KEYS[i], 0, limit - 1)
        redis.call('expire', KEYS[i], expiry)
    end
end
return 0
"""

# KEYS: the windows; ARGV: now, then each window's limit and expiry. For each
# window, its oldest hit still inside it and how many hits are inside it
# ({false, 0} when none), by binary search.
_WINDOWS = """
local now = tonumber(ARGV[1])
local windows = {}
for i = 1, #KEYS do
    local limit = tonumber(ARGV[2 * i])
    local target = now - tonumber(ARGV[2 * i + 1])
    local low, high, found = 0, limit - 1, nil
    while low <= high do
        local mid = math.floor((low + high) / 2)
        local value = tonumber(redis.call('lindex', KEYS[i], mid))
        if value and value >= target then
            found = mid
            low = mid + 1
        else
            high = mid - 1
        end
    end
    if found then
        windows[i] = {redis.call('lindex', KEYS[i], found), found + 1}
    else
        windows[i] = {false, 0}
    end
end
return windows
"""


class RedisWindows:
    """Several moving windows per round trip; Redis failures raise `StorageError`."""

    def __init__(
        self, client: Redis | RedisCluster, key_prefix: str, clock: Clock = time.time
    ) -> None:
        self._clock = clock
        self._cluster = isinstance(client, RedisCluster)
        self._client = client
        self._initialized = False
        self._in_order = client.register_script(_IN_ORDER)
        self._windows = client.register_script(_WINDOWS)
        self._prefix = key_prefix

    def _key(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> str:
        if self._cluster:
            # The hash tag: one identity's windows in one slot, identities spread out.
            return f"{self._prefix}:{{{'/'.join(identifiers)}}}:{item.key_for(*identifiers)}"
        return f"{self._prefix}:{item.key_for(*identifiers)}"

    async def run_in_order(self, steps: Sequence[Step]) -> int | None:
        """Go through `steps` in order, stopping at the first window that is full:
        its index, or None when every window had room (and those to take, took one).
        One script call; on a Cluster, one per run of steps of one identity."""
        if not self._cluster:
            return await self._run(steps)
        await self._initialize()
        start = 0
        for run in _runs(steps):
            refused = await self._run(run)
            if refused is not None:
                return start + refused
            start += len(run)
        return None

    async def _initialize(self) -> None:
        """Learn the cluster's slots before the first scripts: redis-py's cluster client,
        when its first calls run concurrently on several nodes, can send on a connection
        that another call's discovery has just closed."""
        if self._initialized or not isinstance(self._client, RedisCluster):
            return
        try:
            await self._client.initialize()
        except RedisError as exc:
            raise StorageError(exc) from exc
        self._initialized = True

    async def _run(self, steps: Sequence[Step]) -> int | None:
        args: list[float | int] = [self._clock()]
        for step in steps:
            args += [step.item.amount, step.item.get_expiry(), int(step.take)]
        keys = [self._key(step.item, step.identifiers) for step in steps]
        try:
            refused = int(await self._in_order(keys=keys, args=args))
        except RedisError as exc:
            raise StorageError(exc) from exc
        return refused - 1 if refused else None

    async def resets(
        self, items: Sequence[RateLimitItem], identifiers: tuple[str, ...]
    ) -> list[float]:
        """When each window frees a slot (epoch seconds; a whole window from now when
        it is empty)."""
        return [reset for reset, _ in await self._windows_of(items, identifiers)]

    async def resets_of_full(
        self, items: Sequence[RateLimitItem], identifiers: tuple[str, ...]
    ) -> list[float]:
        """When each full window frees a slot (epoch seconds); empty when none is full."""
        return [reset for reset, full in await self._windows_of(items, identifiers) if full]

    async def counts(
        self, items: Sequence[RateLimitItem], identifiers: tuple[str, ...]
    ) -> list[int]:
        """How many hits each window holds now."""
        return [count for _, count in await self._hits_of(items, identifiers)]

    async def _windows_of(
        self, items: Sequence[RateLimitItem], identifiers: tuple[str, ...]
    ) -> list[tuple[float, bool]]:
        now = self._clock()
        return [
            (
                (oldest if oldest is not None else now) + item.get_expiry(),
                count >= item.amount,
            )
            for item, (oldest, count) in zip(
                items, await self._hits_of(items, identifiers, now), strict=True
            )
        ]

    async def _hits_of(
        self,
        items: Sequence[RateLimitItem],
        identifiers: tuple[str, ...],
        now: float | None = None,
    ) -> list[tuple[float | None, int]]:
        """Each window's oldest hit still inside it (None when empty) and its count."""
        await self._initialize()
        args: list[float | int] = [self._clock() if now is None else now]
        for item in items:
            args += [item.amount, item.get_expiry()]
        keys = [self._key(item, identifiers) for item in items]
        try:
            windows = await self._windows(keys=keys, args=args)
        except RedisError as exc:
            raise StorageError(exc) from exc
        return [(float(oldest) if oldest else None, int(count)) for oldest, count in windows]


def _runs(steps: Sequence[Step]) -> list[Sequence[Step]]:
    """`steps` cut where the identity changes: each run's keys share a hash slot."""
    runs: list[Sequence[Step]] = []
    start = 0
    for index in range(1, len(steps) + 1):
        if index == len(steps) or steps[index].identifiers != steps[start].identifiers:
            runs.append(steps[start:index])
            start = index
    return runs
