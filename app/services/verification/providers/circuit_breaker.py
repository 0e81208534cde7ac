"""A circuit breaker around a provider: after repeated failures, fail fast for a while.

One per provider. When a provider is down every request would otherwise wait
for timeouts and retries; after `failures` consecutive failures (5xx, timeouts, connection
errors: `ProviderUnavailable`) calls fail at once (503 with
Retry-After) for `reset_seconds`, then one request at a time probes the provider
until one succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.core.metrics import Metrics
from app.services.verification.exceptions import (
    ProviderCircuitOpen,
    ProviderError,
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

T = TypeVar("T")


class CircuitBreaker:
    """Wraps a provider; counts consecutive `ProviderUnavailable` failures and deadlines."""

    def __init__(
        self,
        inner: VerifyProvider,
        *,
        failures: int,
        reset_seconds: float,
        deadline_seconds: float,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = inner.name
        self._label = inner.name.capitalize()
        self._clock = clock
        self._inner = inner
        self._threshold = failures
        self._reset = reset_seconds
        self._deadline = deadline_seconds
        self._metrics = metrics
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._gauge()

    @property
    def is_open(self) -> bool:
        """Whether calls are failing fast right now."""
        return self._opened_at is not None

    async def start(self, request: StartRequest) -> StartResult:
        """Start through the breaker."""
        return await self._call("start", lambda: self._inner.start(request))

    async def check(self, request: CheckRequest) -> CheckOutcome:
        """Check through the breaker."""
        return await self._call("check", lambda: self._inner.check(request))

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        probe = self._admit()
        try:
            async with asyncio.timeout(self._deadline):
                result = await call()
        except TimeoutError as exc:
            self._failed(probe)
            raise ProviderUnavailable(f"{operation}: no answer within {self._deadline}s") from exc
        except ProviderUnavailable:
            self._failed(probe)
            raise
        except ProviderError:
            # The provider answered (a 4xx, mapped or not): it is up, this request was refused.
            # Counting it would let one odd number open the circuit for everyone.
            self._succeeded(probe)
            raise
        except BaseException:
            self._release(probe)
            raise
        self._succeeded(probe)
        return result

    def _admit(self) -> bool:
        """Let a call through; True when it is the half-open probe."""
        if self._opened_at is None:
            return False
        waited = self._clock() - self._opened_at
        if waited < self._reset:
            raise ProviderCircuitOpen(max(1, math.ceil(self._reset - waited)))
        if self._probing:
            raise ProviderCircuitOpen(1)
        self._probing = True
        return True

    def _release(self, probe: bool) -> None:
        if probe:
            self._probing = False

    def _succeeded(self, probe: bool) -> None:
        self._release(probe)
        if self._opened_at is not None:
            logger.info("%s answered again: circuit closed", self._label)
        self._failures = 0
        self._opened_at = None
        self._gauge()

    def _failed(self, probe: bool) -> None:
        self._release(probe)
        self._failures += 1
        if probe or self._failures >= self._threshold:
            if self._opened_at is None or probe:
                logger.error(
                    "%s failed %d times in a row: failing fast for %.1fs",
                    self._label,
                    self._failures,
                    self._reset,
                )
            self._opened_at = self._clock()
        self._gauge()

    def _gauge(self) -> None:
        if self._metrics is not None:
            state = 1 if self.is_open else 0
            self._metrics.provider_circuit_open.labels(self.name).set(state)
            if self.name == "twilio":
                self._metrics.twilio_circuit_open.set(state)
