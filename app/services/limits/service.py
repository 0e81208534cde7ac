"""The login's limits: sends and checks per client and per number, and each market's
SMS budget, in moving windows (`RateLimiter`).

A send takes from the client's windows first; a send they refuse takes
nothing from the number's or the market's. The number's windows are then
checked, the market's budget taken, and the number's windows taken: a send
the budget refuses never uses up the number's limit, and a number at its
limit takes nothing from the budget. Test numbers skip the resend cooldown
and the budget, and keep the number's other windows, so that their fixed
code meets the attempt lockout a bounded number of times. A client is counted
by its address, or by its /64 for IPv6.

A check takes from the client's window; the number's window
(`RATE_LIMIT_VERIFY_PER_PHONE`) is kept per number and client, and taken
only once the check has found a pending code to spend an attempt on
(`take_code_check`): guesses at a number with no code, and other clients'
guesses, never stand between the owner and their next code.
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
from app.services.limits.windows import RateLimiter, StorageState

logger = logging.getLogger(__name__)

__all__ = ["Limit", "LoginLimits", "RateLimited", "SmsBudgetExhausted"]


class Limit(StrEnum):
    """The limits, named as they appear in logs and metrics."""

    SEND_PER_PHONE = "send_per_phone"
    SEND_PER_IP = "send_per_ip"
    VERIFY_PER_PHONE = "verify_per_phone"
    VERIFY_PER_IP = "verify_per_ip"
    SMS_BUDGET = "sms_budget"
    CAPTCHA_FREE_SENDS = "captcha_free_sends"


class LoginLimits:
    """The service's limits on sending codes and checking them, one per process."""

    def __init__(self, settings: Settings, limiter: RateLimiter, metrics: Metrics) -> None:
        self._enabled = settings.rate_limit_enabled
        self._limiter = limiter
        self._metrics = metrics
        self._send_per_phone = parse_limits(settings.rate_limit_send_per_phone)
        self._send_per_test_number = _without_cooldown(self._send_per_phone)
        self._send_per_ip = parse_limits(settings.rate_limit_send_per_ip)
        self._verify_per_phone = parse_limits(settings.rate_limit_verify_per_phone)
        self._verify_per_ip = parse_limits(settings.rate_limit_verify_per_ip)
        self._budgets = {
            name: parse_limits(market.sms_budget) for name, market in settings.markets.items()
        }
        self._free_sends = parse_limits(settings.captcha_free_sends_per_ip)

    @property
    def shared(self) -> bool:
        """Whether the limits are shared between processes (Redis)."""
        return self._limiter.shared

    @property
    def storage_state(self) -> StorageState | None:
        """The Redis topology and the failovers seen so far; None with memory://."""
        return self._limiter.storage_state

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
        steps = _steps(Limit.SEND_PER_IP, self._send_per_ip, (limit_key(client_ip),), take=True)
        number = (phone.e164,)
        if test_number:
            steps += _steps(Limit.SEND_PER_PHONE, self._send_per_test_number, number, take=True)
        else:
            steps += _steps(Limit.SEND_PER_PHONE, self._send_per_phone, number, take=False)
            steps += _steps(
                Limit.SMS_BUDGET, self._budgets.get(market.name, []), (market.name,), take=True
            )
            steps += _steps(Limit.SEND_PER_PHONE, self._send_per_phone, number, take=True)
        await self._decide(steps, phone, market)

    async def take_free_send(self, client_ip: str | None) -> bool:
        """Take one of the client's sends without a challenge (`CAPTCHA_FREE_SENDS_PER_IP`):
        False, taking nothing, when they are used up.

        Counted whether or not the other limits are enabled: it decides when a send
        needs a challenge, it refuses nothing by itself."""
        key = (Limit.CAPTCHA_FREE_SENDS, limit_key(client_ip))
        steps = [Step(item, key, False) for item in self._free_sends]
        steps += [Step(item, key, True) for item in self._free_sends]
        return await self._limiter.run_in_order(steps) is None

    async def sms_budget_used(self, market: Market) -> float:
        """The share of the market's SMS budget used in its windows, 0 to 1 (the fullest
        window's); 0 without a budget."""
        items = self._budgets.get(market.name, [])
        if not items:
            return 0.0
        counts = await self._limiter.counts(items, Limit.SMS_BUDGET, market.name)
        return max(count / item.amount for item, count in zip(items, counts, strict=True))

    async def take_verify(self, phone: Phone, market: Market, client_ip: str | None) -> None:
        """Count a check against the client's window, or raise the limit that refuses it.

        The client's window at this number is only looked at: it is taken by
        `take_code_check`, once there is a pending code to check.
        """
        if not self._enabled:
            return
        client = limit_key(client_ip)
        steps = _steps(Limit.VERIFY_PER_IP, self._verify_per_ip, (client,), take=True)
        steps += _steps(
            Limit.VERIFY_PER_PHONE, self._verify_per_phone, (phone.e164, client), take=False
        )
        await self._decide(steps, phone, market)

    async def take_code_check(self, phone: Phone, market: Market, client_ip: str | None) -> None:
        """Count a check of the number's pending code against this client's window at
        the number, or raise the limit that refuses it."""
        if not self._enabled:
            return
        key = (phone.e164, limit_key(client_ip))
        await self._decide(
            _steps(Limit.VERIFY_PER_PHONE, self._verify_per_phone, key, take=True), phone, market
        )

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


def _steps(
    limit: Limit, items: list[RateLimitItem], key: tuple[str, ...], *, take: bool
) -> list[Step]:
    return [Step(item, (limit, *key), take) for item in items]


def _without_cooldown(items: list[RateLimitItem]) -> list[RateLimitItem]:
    """A number's send windows but the resend cooldown: the shortest window, when it
    allows one send and a longer one follows (which keeps test numbers bounded)."""
    if len(items) > 1 and items[0].amount == 1:
        return items[1:]
    return items
