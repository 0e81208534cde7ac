"""Readiness and metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.core.metrics import Metrics
from app.services.delivery.stats import DeliveryStats
from app.services.ops.service import ReadinessChecker


async def get_readiness(request: Request) -> ReadinessChecker:
    """The readiness checker, one per process."""
    checker: ReadinessChecker = request.app.state.readiness
    return checker


async def get_metrics(request: Request) -> Metrics:
    """The process's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_delivery_stats(request: Request) -> DeliveryStats:
    """The delivery gauges' refresher, one per process."""
    stats: DeliveryStats = request.app.state.delivery_stats
    return stats


ReadinessDep = Annotated[ReadinessChecker, Depends(get_readiness)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
DeliveryStatsDep = Annotated[DeliveryStats, Depends(get_delivery_stats)]
