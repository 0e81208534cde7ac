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
from typing import TYPE_CHECKING, Protocol

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from app.core.config import Settings
from app.services.local_limits import LocalMovingWindow

if TYPE_CHECKING:
    from redis.asyncio import BlockingConnectionPool

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
    """What `limits`' MovingWindowRateLimiter and LocalMovingWindow both do."""

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool: ...

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool: ...

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> _WindowStats: ...


class RateLimiter:
    """Moving-window limits over the configured storage, with an in-process fallback."""

    def __init__(
        self, storage_url: str, key_prefix: str = "phone-auth", *, max_connections: int = 50
    ) -> None:
        self._pool: BlockingConnectionPool | None = None
        self._storage: RedisStorage | None = None
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

    def _primary_failed(self, exc: Exception) -> None:
        self._primary_down_until = time.monotonic() + REDIS_RETRY_SECONDS
        logger.error(
            "Rate-limit storage unreachable (%s); using in-process limits for %.0fs",
            type(getattr(exc, "storage_error", exc)).__name__,
            REDIS_RETRY_SECONDS,
        )

    async def hit(self, item: RateLimitItem, *key: str) -> bool:
        """Take one from `item` for `key`; False when it is used up."""
        strategy = self._strategy()
        try:
            return await strategy.hit(item, *key)
        except (StorageError, OSError, TimeoutError) as exc:
            self._primary_failed(exc)
            return await self._fallback.hit(item, *key)

    async def test(self, item: RateLimitItem, *key: str) -> bool:
        """Whether one more would be allowed, without taking it."""
        strategy = self._strategy()
        try:
            return await strategy.test(item, *key)
        except (StorageError, OSError, TimeoutError) as exc:
            self._primary_failed(exc)
            return await self._fallback.test(item, *key)

    async def retry_after(self, item: RateLimitItem, *key: str) -> int:
        """Seconds until `item` allows one more for `key`."""
        strategy = self._strategy()
        try:
            stats = await strategy.get_window_stats(item, *key)
        except (StorageError, OSError, TimeoutError) as exc:
            self._primary_failed(exc)
            stats = await self._fallback.get_window_stats(item, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))

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
        from the number's sends or the market's budget.
        """
        if not self._enabled:
            return None
        refusal = await self._take(Limit.SEND_PER_IP, self._send_per_ip, client_ip or "-")
        if refusal or test_number:
            return refusal
        budget = self._budgets.get(market, [])
        refusal = await self._test(Limit.SEND_PER_PHONE, self._send_per_phone, phone)
        if refusal:
            return refusal
        # The budget is taken before the number's sends, so a send the budget
        # refuses never uses up that number's limit.
        return await self._take(Limit.SMS_BUDGET, budget, market) or (
            await self._take(Limit.SEND_PER_PHONE, self._send_per_phone, phone)
        )

    async def allow_verify(
        self, phone: str, client_ip: str | None, *, test_number: bool
    ) -> Refusal | None:
        """Count a code check; say which limit refuses it, if any."""
        if not self._enabled:
            return None
        refusal = await self._take(Limit.VERIFY_PER_IP, self._verify_per_ip, client_ip or "-")
        if refusal or test_number:
            return refusal
        return await self._take(Limit.VERIFY_PER_PHONE, self._verify_per_phone, phone)

    async def _test(self, limit: Limit, items: list[RateLimitItem], key: str) -> Refusal | None:
        waits = [
            await self._limiter.retry_after(item, limit, key)
            for item in items
            if not await self._limiter.test(item, limit, key)
        ]
        return Refusal(limit, max(waits)) if waits else None

    async def _take(self, limit: Limit, items: list[RateLimitItem], key: str) -> Refusal | None:
        for item in items:
            if not await self._limiter.hit(item, limit, key):
                refusal = await self._test(limit, items, key)
                wait = (
                    refusal.retry_after
                    if refusal
                    else await self._limiter.retry_after(item, limit, key)
                )
                return Refusal(limit, wait)
        return None
