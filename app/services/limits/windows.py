"""Moving windows in the configured storage, shared between replicas through Redis.

Built on the `limits` library's moving windows. When Redis cannot be reached
the windows fall back to this process's memory for a short while, with an
ERROR in the log, so that an outage of Redis never stops logins.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.errors import StorageError

from app.services.limits.local import LocalMovingWindow
from app.services.limits.steps import Clock, Step

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from redis.asyncio import BlockingConnectionPool

    from app.services.limits.redis import RedisWindows

logger = logging.getLogger(__name__)

# How long to stay on in-process limits after Redis failed before trying it again.
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5


def _redis_pool(url: str, max_connections: int) -> BlockingConnectionPool:
    """A bounded pool whose callers wait briefly for a connection rather than fail."""
    # Imported here: redis-py costs 6 MB per process that keeps its limits in memory.
    from redis.asyncio import BlockingConnectionPool

    return BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
    )


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
        max_keys: int | None = None,
        on_evict: Callable[[], object] | None = None,
    ) -> None:
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._pool: BlockingConnectionPool | None = None
        self._storage: RedisStorage | None = None
        self._redis: RedisWindows | None = None
        # The in-process windows: the only ones with memory://, the fallback with Redis.
        self._fallback = LocalMovingWindow(clock, max_keys=max_keys, on_evict=on_evict)
        if storage_url.startswith(("redis://", "rediss://")):
            self._pool = _redis_pool(storage_url, max_connections)
            self._storage = RedisStorage(
                f"async+{storage_url}",
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                connection_pool=self._pool,  # type: ignore[arg-type]  # passed through to redis-py
            )
            # Imported here for the same reason as redis-py itself.
            from app.services.limits.redis import RedisWindows

            self._redis = RedisWindows(self._pool, key_prefix, clock)
        elif not storage_url.startswith("memory://"):
            raise ValueError(
                f"RATE_LIMIT_STORAGE_URL must be memory:// or redis://, not {storage_url!r}"
            )
        self._shared = self._pool is not None
        self._primary_down_until = 0.0

    @property
    def shared(self) -> bool:
        """Whether limits are shared between processes (Redis)."""
        return self._shared

    def _redis_windows(self) -> RedisWindows | None:
        """The Redis windows, unless limits are in process or Redis failed a moment ago."""
        if self._redis is None or self._clock() < self._primary_down_until:
            return None
        return self._redis

    def _primary_failed(self, exc: Exception) -> None:
        self._primary_down_until = self._clock() + self._retry_seconds
        logger.error(
            "Rate-limit storage unreachable (%s); using in-process limits for %.0fs",
            type(getattr(exc, "storage_error", exc)).__name__,
            self._retry_seconds,
        )

    async def retry_after(self, item: RateLimitItem, *key: str) -> int:
        """Seconds until `item` allows one more for `key`."""
        redis_windows = self._redis_windows()
        if redis_windows is not None:
            try:
                [reset] = await redis_windows.resets([item], key)
            except (StorageError, OSError, TimeoutError) as exc:
                self._primary_failed(exc)
            else:
                return self._seconds_until(reset)
        stats = await self._fallback.get_window_stats(item, *key)
        return self._seconds_until(stats.reset_time)

    async def run_in_order(self, steps: Sequence[Step]) -> int | None:
        """Go through `steps` in order, stopping at the first window that is used up:
        its index, or None when every window had room (and those to take, took one).
        With Redis, one round trip whatever the number of steps."""
        redis_windows = self._redis_windows()
        if redis_windows is not None:
            try:
                return await redis_windows.run_in_order(steps)
            except (StorageError, OSError, TimeoutError) as exc:
                self._primary_failed(exc)
        for index, (item, identifiers, take) in enumerate(steps):
            window = self._fallback.hit if take else self._fallback.test
            if not await window(item, *identifiers):
                return index
        return None

    async def retry_afters(self, items: Sequence[RateLimitItem], *key: str) -> list[int]:
        """Seconds until each of `items` that is used up for `key` allows one more;
        empty when none is. With Redis, one round trip."""
        redis_windows = self._redis_windows()
        if redis_windows is not None:
            try:
                resets = await redis_windows.resets_of_full(items, key)
            except (StorageError, OSError, TimeoutError) as exc:
                self._primary_failed(exc)
            else:
                return [self._seconds_until(reset) for reset in resets]
        waits = []
        for item in items:
            if not await self._fallback.test(item, *key):
                stats = await self._fallback.get_window_stats(item, *key)
                waits.append(self._seconds_until(stats.reset_time))
        return waits

    async def ping(self) -> bool:
        """Whether the configured storage answers."""
        if self._storage is None:
            return True
        try:
            return bool(await self._storage.check())
        except (StorageError, OSError, TimeoutError):
            return False

    def _seconds_until(self, reset_time: float) -> int:
        """Whole seconds after which a window that frees a slot at `reset_time` has it: a
        hit exactly `expiry` old still counts, so the wait ends a moment after."""
        return max(1, math.floor(reset_time - self._clock()) + 1)

    async def aclose(self) -> None:
        """Close the Redis client."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()
        if self._pool is not None:
            await self._pool.disconnect()
