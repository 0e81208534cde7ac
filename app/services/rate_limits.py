"""Rate limits on sends and checks, shared between replicas through Redis.

Built on the `limits` library's moving windows. When Redis cannot be reached
the limits fall back to this process's memory for a short while, with an
ERROR in the log, so that an outage of Redis never stops logins.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from app.core.config import Settings
from app.services.local_limits import LocalMovingWindow

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis.asyncio import BlockingConnectionPool

    from app.services.redis_windows import RedisWindows

logger = logging.getLogger(__name__)

# How long to stay on in-process limits after Redis failed before trying it again.
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5


class Limit(StrEnum):
    """The limits, named as they appear in logs and metrics."""

    SEND_PER_PHONE = "send_per_phone"
    SEND_PER_IP = "send_per_ip"
    VERIFY_PER_PHONE = "verify_per_phone"
    VERIFY_PER_IP = "verify_per_ip"
    SMS_BUDGET = "sms_budget"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A limit said no; `retry_after` seconds until it would say yes."""

    limit: Limit
    retry_after: int


class Step(NamedTuple):
    """One window of a decision: take one from it, or only check that it has room."""

    item: RateLimitItem
    identifiers: tuple[str, ...]
    take: bool


def parse_limits(text: str) -> list[RateLimitItem]:
    """Parse `1/minute;5/hour` into items, shortest window first."""
    return sorted(parse_many(text), key=lambda item: item.get_expiry())


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


class _WindowStats(Protocol):
    @property
    def reset_time(self) -> float: ...


class _MovingWindows(Protocol):
    """What `limits`' MovingWindowRateLimiter and LocalMovingWindow both answer (taking
    and checking go through `run_in_order`)."""

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> _WindowStats: ...


class RateLimiter:
    """Moving-window limits over the configured storage, with an in-process fallback."""

    def __init__(
        self, storage_url: str, key_prefix: str = "phone-auth", *, max_connections: int = 50
    ) -> None:
        self._pool: BlockingConnectionPool | None = None
        self._storage: RedisStorage | None = None
        self._redis: RedisWindows | None = None
        self._fallback = LocalMovingWindow()
        self._primary: _MovingWindows
        if storage_url.startswith(("redis://", "rediss://")):
            self._pool = _redis_pool(storage_url, max_connections)
            self._storage = RedisStorage(
                f"async+{storage_url}",
                implementation="redispy",
                key_prefix=key_prefix,
                wrap_exceptions=True,
                connection_pool=self._pool,  # type: ignore[arg-type]  # passed through to redis-py
            )
            self._primary = MovingWindowRateLimiter(self._storage)
            # Imported here for the same reason as redis-py itself.
            from app.services.redis_windows import RedisWindows

            self._redis = RedisWindows(self._pool, key_prefix)
        elif storage_url.startswith("memory://"):
            self._primary = self._fallback
        else:
            raise ValueError(
                f"RATE_LIMIT_STORAGE_URL must be memory:// or redis://, not {storage_url!r}"
            )
        self._shared = self._pool is not None
        self._primary_down_until = 0.0

    @property
    def shared(self) -> bool:
        """Whether limits are shared between processes (Redis)."""
        return self._shared

    def _strategy(self) -> _MovingWindows:
        if self._shared and time.monotonic() < self._primary_down_until:
            return self._fallback
        return self._primary

    def _redis_windows(self) -> RedisWindows | None:
        """The Redis windows, unless limits are in process or Redis failed a moment ago."""
        return self._redis if self._strategy() is self._primary else None

    def _primary_failed(self, exc: Exception) -> None:
        self._primary_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        logger.error(
            "Rate-limit storage unreachable (%s); using in-process limits for %.0fs",
            type(getattr(exc, "storage_error", exc)).__name__,
            REDIS_RETRY_SECONDS,
        )

    async def retry_after(self, item: RateLimitItem, *key: str) -> int:
        """Seconds until `item` allows one more for `key`."""
        strategy = self._strategy()
        try:
            stats = await strategy.get_window_stats(item, *key)
        except (StorageError, OSError, TimeoutError) as exc:
            self._primary_failed(exc)
            stats = await self._fallback.get_window_stats(item, *key)
        return _seconds_until(stats.reset_time)

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
                return [_seconds_until(reset) for reset in resets]
        waits = []
        for item in items:
            if not await self._fallback.test(item, *key):
                stats = await self._fallback.get_window_stats(item, *key)
                waits.append(_seconds_until(stats.reset_time))
        return waits

    async def ping(self) -> bool:
        """Whether the configured storage answers."""
        if self._storage is None:
            return True
        try:
            return bool(await self._storage.check())
        except (StorageError, OSError, TimeoutError):
            return False

    async def aclose(self) -> None:
        """Close the Redis client."""
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None:
            await client.aclose()
        if self._pool is not None:
            await self._pool.disconnect()


def _seconds_until(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


class LoginLimits:
    """The service's limits on sending codes and checking them."""

    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self._enabled = settings.rate_limit_enabled
        self._limiter = limiter
        self._send_per_phone = parse_limits(settings.rate_limit_send_per_phone)
        self._send_per_ip = parse_limits(settings.rate_limit_send_per_ip)
        self._verify_per_phone = parse_limits(settings.rate_limit_verify_per_phone)
        self._verify_per_ip = parse_limits(settings.rate_limit_verify_per_ip)
        self._budgets = {
            name: parse_limits(market.sms_budget) for name, market in settings.markets.items()
        }

    async def allow_send(
        self, phone: str, market: str, client_ip: str | None, *, test_number: bool
    ) -> Refusal | None:
        """Count a send; say which limit refuses it, if any.

        The client's limit is counted first; a request it refuses takes nothing
        from the number's sends or the market's budget. The budget is taken
        before the number's sends, so a send the budget refuses never uses up
        that number's limit; the number is checked before both, so a number at
        its limit takes nothing from the budget.
        """
        if not self._enabled:
            return None
        steps = _steps(Limit.SEND_PER_IP, self._send_per_ip, client_ip or "-", take=True)
        if not test_number:
            steps += _steps(Limit.SEND_PER_PHONE, self._send_per_phone, phone, take=False)
            steps += _steps(Limit.SMS_BUDGET, self._budgets.get(market, []), market, take=True)
            steps += _steps(Limit.SEND_PER_PHONE, self._send_per_phone, phone, take=True)
        return await self._decide(steps)

    async def allow_verify(
        self, phone: str, client_ip: str | None, *, test_number: bool
    ) -> Refusal | None:
        """Count a code check; say which limit refuses it, if any."""
        if not self._enabled:
            return None
        steps = _steps(Limit.VERIFY_PER_IP, self._verify_per_ip, client_ip or "-", take=True)
        if not test_number:
            steps += _steps(Limit.VERIFY_PER_PHONE, self._verify_per_phone, phone, take=True)
        return await self._decide(steps)

    async def _decide(self, steps: list[Step]) -> Refusal | None:
        """Run the steps; for the one that refuses, how long until its limit allows one:
        the longest wait among that limit's used-up windows."""
        refused = await self._limiter.run_in_order(steps) if steps else None
        if refused is None:
            return None
        step = steps[refused]
        limit = Limit(step.identifiers[0])
        items = [s.item for s in steps if s.identifiers == step.identifiers and s.take == step.take]
        waits = await self._limiter.retry_afters(items, *step.identifiers)
        wait = (
            max(waits) if waits else await self._limiter.retry_after(step.item, *step.identifiers)
        )
        return Refusal(limit, wait)


def _steps(limit: Limit, items: list[RateLimitItem], key: str, *, take: bool) -> list[Step]:
    return [Step(item, (limit, key), take) for item in items]
