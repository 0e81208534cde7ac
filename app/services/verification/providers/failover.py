"""A market's providers in order: a send goes to the first that can take it.

The next provider is tried only when the current one could not act on the send:
it cannot be reached, answers 5xx, times out, stays throttled after its
retries, has its circuit open, or refuses our account
(`FAILOVER_ERRORS`). An answer about the number (invalid, cannot take SMS,
geo permission, fraud protection) or the number's own limits stand: another
provider would only text a number that should not be texted. A send stops at
the first provider that accepted it, so it makes one SMS.

A check goes to the provider that sent the code (the verification row names it,
`ProviderSet.named`): another provider cannot check a code it did not send.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from app.core.metrics import Metrics
from app.core.phone import mask_phone
from app.services.verification.exceptions import (
    ProviderCircuitOpen,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
)
from app.services.verification.providers.base import (
    CheckOutcome,
    CheckRequest,
    StartRequest,
    StartResult,
    VerifyProvider,
)

logger = logging.getLogger(__name__)

# Failures after which the provider surely did not send (or may not be trusted to):
# the next provider of the order is asked.
FAILOVER_ERRORS: tuple[type[ProviderError], ...] = (
    ProviderUnavailable,
    ProviderCircuitOpen,
    ProviderMisconfigured,
)


class FailoverProvider:
    """One market's providers, tried in order on send; named after the first."""

    def __init__(
        self, market: str, members: Sequence[VerifyProvider], metrics: Metrics | None = None
    ) -> None:
        if not members:
            raise ValueError("a failover order needs at least one provider")
        self.name = members[0].name
        self.market = market
        self.members = tuple(members)
        self._metrics = metrics

    @property
    def order(self) -> tuple[str, ...]:
        """The names of the providers, in the order they are tried."""
        return tuple(member.name for member in self.members)

    async def start(self, request: StartRequest) -> StartResult:
        """Send through the first provider that takes it; the result names it."""
        last = len(self.members) - 1
        for position, member in enumerate(self.members):
            try:
                result = await member.start(request)
            except ProviderError as exc:
                exc.provider = member.name
                if position == last or not isinstance(exc, FAILOVER_ERRORS):
                    raise
                following = self.members[position + 1].name
                logger.warning(
                    "Provider %s could not send for %s (%s: %s, code %s): trying %s",
                    member.name,
                    mask_phone(request.phone),
                    type(exc).__name__,
                    exc.reason,
                    exc.provider_code,
                    following,
                )
                if self._metrics is not None:
                    self._metrics.provider_failovers.labels(
                        self.market, member.name, following
                    ).inc()
                continue
            if result.provider is None:
                return StartResult(sid=result.sid, code_hash=result.code_hash, provider=member.name)
            return result
        raise AssertionError("unreachable: the last provider's failure is raised")

    async def check(self, request: CheckRequest) -> CheckOutcome:
        """Check at the first provider; the service checks at the row's own provider
        through `ProviderSet.named` instead."""
        return await self.members[0].check(request)


class ProviderSet:
    """The configured providers by name, and each market's order of them."""

    def __init__(
        self,
        named: Mapping[str, VerifyProvider],
        by_market: Mapping[str, VerifyProvider | None],
    ) -> None:
        self._named = dict(named)
        self._by_market = dict(by_market)

    def for_market(self, market: str) -> VerifyProvider | None:
        """What sends the market's codes; None when no provider of its order is
        configured."""
        return self._by_market.get(market)

    def named(self, name: str) -> VerifyProvider | None:
        """The configured provider `name` (where a code it sent is checked)."""
        return self._named.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the configured providers."""
        return tuple(self._named)

    @property
    def providers(self) -> tuple[VerifyProvider, ...]:
        """The configured providers."""
        return tuple(self._named.values())

    @property
    def complete(self) -> bool:
        """Whether every market has a provider."""
        return all(provider is not None for provider in self._by_market.values())
