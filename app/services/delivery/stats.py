"""The delivery gauges of `/metrics`, by market: codes sent, messages delivered,
undelivered and failed, the conversion rate and the spend the providers report,
over the last hour and the last day.

The sync runs in a CronJob whose counters nobody scrapes, so the figures are read
from the database when `/metrics` is scraped, at most once per
`DELIVERY_METRICS_CACHE_SECONDS`. Every replica therefore shows the same values:
PromQL aggregates them with `max by (market)`, never `sum`. A market without an
attempt of known conversion in a window has no conversion-rate series there (an
absent series, rather than NaN, keeps alert expressions simple).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from app.core.metrics import Metrics
from app.services.delivery.reporting import MarketSpend, MarketWindow

__all__ = ["WINDOWS", "DeliveryStats"]

logger = logging.getLogger(__name__)

# Epoch seconds: the process's wall clock (`app.main.Clocks.wall`).
Clock = Callable[[], float]

# The windows' label values and lengths in seconds.
WINDOWS = {"1h": 3600, "1d": 86400}
STATUSES = ("delivered", "undelivered", "failed")
READ_TIMEOUT_SECONDS = 5.0
MICROS = Decimal(1_000_000)


class FigureSource(Protocol):
    """Where the figures come from (`reporting.DeliveryFigures`)."""

    async def read(
        self, since: Sequence[datetime]
    ) -> list[tuple[list[MarketWindow], list[MarketSpend]]]:
        """For each moment, the per-market figures of the attempts made since then."""
        ...


class DeliveryStats:
    """Refreshes the delivery gauges from the database; one per process."""

    def __init__(
        self,
        figures: FigureSource,
        metrics: Metrics,
        markets: list[str],
        clock: Clock,
        cache_seconds: float,
    ) -> None:
        self._figures = figures
        self._metrics = metrics
        self._markets = markets
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the figures again unless they were read within the cache's lifetime.
        A failed read keeps the previous values, logs why and is tried again at the next
        scrape after the cache's lifetime."""
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():
                return  # a concurrent scrape read them meanwhile
            now = self._clock()
            self._read_at = now
            since = [datetime.fromtimestamp(now - seconds, UTC) for seconds in WINDOWS.values()]
            try:
                async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                    figures = await self._figures.read(since)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                self._metrics.delivery_stats_errors.inc()
                logger.warning(
                    "Delivery metrics not refreshed, the previous values stay: %s",
                    type(getattr(exc, "orig", None) or exc).__name__,
                )
                return
            self._publish(dict(zip(WINDOWS, figures, strict=True)))
            self._metrics.delivery_stats_refreshed.set(now)

    def _fresh(self) -> bool:
        return self._read_at is not None and self._clock() - self._read_at < self._cache_seconds

    def _publish(self, figures: dict[str, tuple[list[MarketWindow], list[MarketSpend]]]) -> None:
        metrics = self._metrics
        for gauge in (
            metrics.delivery_attempts,
            metrics.delivery_messages,
            metrics.delivery_conversion_rate,
            metrics.delivery_conversion_samples,
            metrics.sms_spend_reported,
        ):
            gauge.clear()
        for window, (markets, spend) in figures.items():
            seen = {row.market: row for row in markets}
            # Configured markets show zeros rather than no series, so that sends rising
            # from nothing still compare.
            for market in dict.fromkeys([*self._markets, *seen]):
                row = seen.get(market) or MarketWindow(market, 0, 0, 0, 0, 0, 0)
                metrics.delivery_attempts.labels(market, window).set(row.attempts)
                for status, count in zip(
                    STATUSES, (row.delivered, row.undelivered, row.failed), strict=True
                ):
                    metrics.delivery_messages.labels(market, window, status).set(count)
                metrics.delivery_conversion_samples.labels(market, window).set(row.conversion_known)
                if row.conversion_known:
                    metrics.delivery_conversion_rate.labels(market, window).set(
                        row.converted / row.conversion_known
                    )
            for item in spend:
                metrics.sms_spend_reported.labels(
                    item.market, item.provider, item.currency, window
                ).set(float(Decimal(item.micros) / MICROS))
