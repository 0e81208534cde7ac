"""The login's limits: sends and checks per client and per number, and each market's
SMS budget, in moving windows (`RateLimiter`).

A send takes from the client's windows first; a send they refuse takes
nothing from the number's or the market's. The number's windows are then
checked, the market's budget taken, and the number's windows taken: a send
the budget refuses never uses up the number's limit, and a number at its
limit takes nothing from the budget. Test numbers skip the number's limits
and the budget. A client is counted by its address, or by its /64 for IPv6.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from limits import RateLimitItem

from app.core.client_ip import limit_key
from app.core.config import Settings
from app.core.markets import Market
from app.core.metrics import Metrics
from app.core.phone import Phone
from app.services.limits.exceptions import RateLimited, SmsBudgetExhausted
from app.services.limits.steps import Step, parse_limits
from app.services.limits.windows import RateLimiter

logger = logging.getLogger(__name__)

__all__ = ["Limit", "LoginLimits", "RateLimited", "SmsBudgetExhausted"]


class Limit(StrEnum):
    """The limits, named as they appear in logs and metrics."""

    SEND_PER_PHONE = "send_per_phone"
    SEND_PER_IP = "send_per_ip"
    VERIFY_PER_PHONE = "verify_per_phone"
    VERIFY_PER_IP = "verify_per_ip"
    SMS_BUDGET = "sms_budget"


class LoginLimits:
    """The service's limits on sending codes and checking them, one per process."""

    def __init__(self, settings: Settings, limiter: RateLimiter, metrics: Metrics) -> None:
        self._enabled = settings.rate_limit_enabled
        self._limiter = limiter
        self._metrics = metrics
        self._send_per_phone = parse_limits(settings.rate_limit_send_per_phone)
        self._send_per_ip = parse_limits(settings.rate_limit_send_per_ip)
        self._verify_per_phone = parse_limits(settings.rate_limit_verify_per_phone)
        self._verify_per_ip = parse_limits(settings.rate_limit_verify_per_ip)
        self._budgets = {
            name: parse_limits(market.sms_budget) for name, market in settings.markets.items()
        }

    @property
    def shared(self) -> bool:
        """Whether the limits are shared between processes (Redis)."""
        return self._limiter.shared

    async def ping(self) -> bool:
        """Whether the limits' storage answers."""
        return await self._limiter.ping()

    async def aclose(self) -> None:
        """Close the storage's connections."""
        await self._limiter.aclose()

    async def take_send(
        self, phone: Phone, market: Market, client_ip: str | None, *, test_number: bool
    ) -> None:
        """Count a send, or raise the limit that refuses it."""
        if not self._enabled:
            return
        steps = _steps(Limit.SEND_PER_IP, self._send_per_ip, limit_key(client_ip), take=True)
        if not test_number:
            steps += _steps(Limit.SEND_PER_PHONE, self._send_per_phone, phone.e164, take=False)
            steps += _steps(
                Limit.SMS_BUDGET, self._budgets.get(market.name, []), market.name, take=True
            )
            steps += _steps(Limit.SEND_PER_PHONE, self._send_per_phone, phone.e164, take=True)
        await self._decide(steps, phone, market)

    async def take_verify(
        self, phone: Phone, market: Market, client_ip: str | None, *, test_number: bool
    ) -> None:
        """Count a code check, or raise the limit that refuses it."""
        if not self._enabled:
            return
        steps = _steps(Limit.VERIFY_PER_IP, self._verify_per_ip, limit_key(client_ip), take=True)
        if not test_number:
            steps += _steps(Limit.VERIFY_PER_PHONE, self._verify_per_phone, phone.e164, take=True)
        await self._decide(steps, phone, market)

    async def _decide(self, steps: list[Step], phone: Phone, market: Market) -> None:
        """Run the steps; for the one that refuses, wait for the longest of that limit's
        used-up windows."""
        refused = await self._limiter.run_in_order(steps) if steps else None
        if refused is None:
            return
        step = steps[refused]
        limit = Limit(step.identifiers[0])
        items = [s.item for s in steps if s.identifiers == step.identifiers and s.take == step.take]
        waits = await self._limiter.retry_afters(items, *step.identifiers)
        wait = (
            max(waits) if waits else await self._limiter.retry_after(step.item, *step.identifiers)
        )
        self._metrics.rate_limit_refusals.labels(limit.value).inc()
        if limit is Limit.SMS_BUDGET:
            logger.error(
                "SMS budget of market %s used up (%s): refusing sends for %ss; "
                "an attack or a bug, not a busy user",
                market.name,
                limit.value,
                wait,
            )
            raise SmsBudgetExhausted(wait)
        logger.info("Rate limit %s refused %s for %ss", limit.value, phone.masked, wait)
        raise RateLimited(wait)


def _steps(limit: Limit, items: list[RateLimitItem], key: str, *, take: bool) -> list[Step]:
    return [Step(item, (limit, key), take) for item in items]
