"""Moving windows in the configured storage, shared between replicas through Redis.

Built on the `limits` library's moving windows. A busy Redis pool is not an
outage: callers queue for a connection. Only when Redis cannot be reached (a
call fails and a health ping fails too) do the windows fall back to this
process's memory, logged and counted once per outage, until a health ping
answers again; logins keep working meanwhile. Redis is one server, Sentinel's
master (followed across failovers) or a Cluster (`topology.py`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from limits import RateLimitItem
from limits.errors import StorageError

from app.core.metrics import Metrics
from app.services.limits.local import LocalMovingWindow
from app.services.limits.steps import Clock, Step

if TYPE_CHECKING:
    from collections.abc import Sequence

    from app.services.limits.redis import RedisWindows
    from app.services.limits.topology import RedisClients

logger = logging.getLogger(__name__)

# While Redis cannot be reached, how often a health ping asks whether it is back.
REDIS_RETRY_SECONDS = 5.0
# A Redis call, connect or health ping that takes longer has failed.
REDIS_TIMEOUT_SECONDS = 2.0

_FAILURES = (StorageError, OSError, TimeoutError)
T = TypeVar("T")


class _Unreachable(Exception):
    """Redis cannot be reached: the in-process windows answer."""


@dataclass(frozen=True, slots=True)
class StorageState:
    """The Redis behind the limits: its topology (`single`, `sentinel`, `cluster`) and,
    with Sentinel, the failovers this process has seen and when it saw the last."""

    topology: str
    failovers: int = 0
    last_failover: float | None = None


class RateLimiter:
    """Moving-window limits over the configured storage, with an in-process fallback."""

    def __init__(
        self,
        storage_url: str,
        key_prefix: str = "phone-auth",
        *,
        max_connections: int = 50,
        clock: Clock = time.time,
        retry_seconds: float = REDIS_RETRY_SECONDS,
        metrics: Metrics | None = None,
        max_keys: int | None = None,
        on_evict: Callable[[], object] | None = None,
    ) -> None:
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._metrics = metrics
        self._clients: RedisClients | None = None
        self._master: str | None = None
        self._topology: str | None = None
        self._failovers = 0
        self._last_failover: float | None = None
        self._redis: RedisWindows | None = None
        # The in-process windows: the only ones with memory://, the fallback with Redis.
        self._fallback = LocalMovingWindow(clock, max_keys=max_keys, on_evict=on_evict)
        # One waiter per connection in the pool at most; the rest queue here, where
        # they can still turn to the fallback should Redis go away meanwhile.
        self._slots = asyncio.Semaphore(max_connections)
        self._ping: asyncio.Future[bool] | None = None
        self._degraded = False
        self._down_until = 0.0
        if not storage_url.startswith("memory://"):
            # Imported here: a process that keeps its limits in memory never loads redis-py.
            from app.core.redis_url import parse_storage_url
            from app.services.limits.redis import RedisWindows
            from app.services.limits.topology import connect

            try:
                topology = parse_storage_url(storage_url)
            except ValueError as exc:
                raise ValueError(
                    "RATE_LIMIT_STORAGE_URL must be memory://, redis://, rediss://, "
                    f"redis+sentinel:// or redis+cluster:// ({exc})"
                ) from None
            self._topology = topology.kind
            self._clients = connect(topology, max_connections, REDIS_TIMEOUT_SECONDS)
            self._redis = RedisWindows(self._clients.windows, key_prefix, clock)

    @property
    def shared(self) -> bool:
        """Whether limits are shared between processes (Redis)."""
        return self._redis is not None

    @property
    def storage_state(self) -> StorageState | None:
        """The Redis topology and the failovers seen so far; None with memory://."""
        if self._topology is None:
            return None
        return StorageState(self._topology, self._failovers, self._last_failover)

    async def _on_redis(self, call: Callable[[RedisWindows], Awaitable[T]]) -> T:
        """`call` on Redis (callers check that it is configured), waiting for a
        connection as long as it takes; raises `_Unreachable` when the in-process
        windows must answer instead.

        A failed call is not an outage by itself (a flood can starve a reply of its
        turn on the event loop): a health ping decides, and while Redis answers it
        the call is made once more. A call that timed out may have counted, so the
        second may count the request twice: the limits err on the strict side."""
        redis_windows = self._redis
        if redis_windows is None or not await self._reachable():
            raise _Unreachable
        for attempt in range(2):
            async with self._slots:
                if self._degraded:  # declared down while this call queued
                    raise _Unreachable
                try:
                    return await call(redis_windows)
                except _FAILURES as exc:
                    failure: Exception = exc
            if attempt == 0 and await self._health_check(failure):
                if self._metrics is not None:
                    self._metrics.rate_limit_storage_retries.inc()
                logger.warning(
                    "Rate-limit storage call failed (%s) while Redis answers; asking again",
                    _name(failure),
                )
                continue
            break
        self._down(failure)
        raise _Unreachable

    async def _reachable(self) -> bool:
        """False while Redis is known to be down; once its retry time has come, one
        request asks with a health ping while the others keep to the fallback."""
        if not self._degraded:
            return True
        if self._clock() < self._down_until or self._ping is not None:
            return False
        return await self._health_check(None)

    async def _health_check(self, failure: Exception | None) -> bool:
        """Whether Redis answers a ping; concurrent callers share one ping."""
        if self._ping is None:
            ping = asyncio.ensure_future(self._ping_once(failure))
            self._ping = ping
            ping.add_done_callback(self._ping_done)
        return await asyncio.shield(self._ping)

    def _ping_done(self, ping: asyncio.Future[bool]) -> None:
        if self._ping is ping:
            self._ping = None

    async def _ping_once(self, failure: Exception | None) -> bool:
        assert self._clients is not None
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                await self._clients.health.ping()
                master = await self._clients.master()
                await self._moved(master)
        except Exception as exc:  # any failure to answer is the answer
            self._down(exc if failure is None else failure)
            return False
        self._up()
        return True

    async def _moved(self, master: str | None) -> None:
        """Sentinel: note a new master (a failover), logged and counted once, and drop
        the connections to the old one."""
        if master is None or master == self._master:
            return
        if self._master is not None:
            assert self._clients is not None
            if self._clients.forget_master is not None:
                await self._clients.forget_master()
            self._failovers += 1
            self._last_failover = self._clock()
            if self._metrics is not None:
                self._metrics.rate_limit_storage_failovers.inc()
            logger.warning(
                "Rate-limit storage master moved from %s to %s (failover)", self._master, master
            )
        self._master = master

    def _down(self, exc: Exception) -> None:
        """Redis cannot be reached: in-process windows until the next health ping."""
        self._down_until = self._clock() + self._retry_seconds
        if self._degraded:
            return
        self._degraded = True
        if self._metrics is not None:
            self._metrics.rate_limit_fallbacks.inc()
            self._metrics.rate_limit_storage_degraded.set(1)
        logger.error(
            "Rate-limit storage unreachable (%s); limits are this process's own "
            "until Redis answers again (asked every %.0fs)",
            _name(exc),
            self._retry_seconds,
        )

    def _up(self) -> None:
        if not self._degraded:
            return
        self._degraded = False
        if self._metrics is not None:
            self._metrics.rate_limit_storage_degraded.set(0)
        logger.warning("Rate-limit storage reachable again; limits are shared again")

    async def retry_after(self, item: RateLimitItem, *key: str) -> int:
        """Seconds until `item` allows one more for `key`."""
        if self._redis is not None:
            try:
                [reset] = await self._on_redis(lambda redis: redis.resets([item], key))
            except _Unreachable:
                pass
            else:
                return self._seconds_until(reset)
        stats = await self._fallback.get_window_stats(item, *key)
        return self._seconds_until(stats.reset_time)

    async def run_in_order(self, steps: Sequence[Step]) -> int | None:
        """Go through `steps` in order, stopping at the first window that is used up:
        its index, or None when every window had room (and those to take, took one).
        With Redis, one round trip whatever the number of steps (on a Cluster, one per
        run of steps of one identity)."""
        if self._redis is not None:
            try:
                return await self._on_redis(lambda redis: redis.run_in_order(steps))
            except _Unreachable:
                pass
        for index, (item, identifiers, take) in enumerate(steps):
            window = self._fallback.hit if take else self._fallback.test
            if not await window(item, *identifiers):
                return index
        return None

    async def retry_afters(self, items: Sequence[RateLimitItem], *key: str) -> list[int]:
        """Seconds until each of `items` that is used up for `key` allows one more;
        empty when none is. With Redis, one round trip."""
        if self._redis is not None:
            try:
                resets = await self._on_redis(lambda redis: redis.resets_of_full(items, key))
            except _Unreachable:
                pass
            else:
                return [self._seconds_until(reset) for reset in resets]
        resets = []
        for item in items:
            if not await self._fallback.test(item, *key):
                stats = await self._fallback.get_window_stats(item, *key)
                resets.append(stats.reset_time)
        return [self._seconds_until(reset) for reset in resets]

    async def counts(self, items: Sequence[RateLimitItem], *key: str) -> list[int]:
        """How many hits each of `items` holds for `key` now, taking nothing. With Redis,
        one round trip."""
        if self._redis is not None:
            try:
                return await self._on_redis(lambda redis: redis.counts(items, key))
            except _Unreachable:
                pass
        counts = []
        for item in items:
            stats = await self._fallback.get_window_stats(item, *key)
            counts.append(item.amount - stats.remaining)
        return counts

    async def ping(self) -> bool:
        """Whether the configured storage answers a health ping now; the limits fall
        back to the process's memory while it does not, and return when it does."""
        if self._clients is None:
            return True
        return await self._health_check(None)

    def _seconds_until(self, reset_time: float) -> int:
        """Whole seconds after which a window that frees a slot at `reset_time` has it: a
        hit exactly `expiry` old still counts, so the wait ends a moment after."""
        return max(1, math.floor(reset_time - self._clock()) + 1)

    async def aclose(self) -> None:
        """Close the Redis clients."""
        if self._clients is not None:
            await self._clients.close()


def _name(exc: Exception) -> str:
    """The failure's type, that of Redis' own error when `limits` wrapped it."""
    return type(getattr(exc, "storage_error", exc)).__name__
