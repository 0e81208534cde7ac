"""A step of a rate-limit decision, shared by the storages."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from limits import RateLimitItem, parse_many

# Epoch seconds now; injected so that tests move time instead of sleeping.
Clock = Callable[[], float]


class Step(NamedTuple):
    """One window of a decision: take one from it, or only check that it has room."""

    item: RateLimitItem
    identifiers: tuple[str, ...]
    take: bool


def parse_limits(text: str) -> list[RateLimitItem]:
    """Parse `1/minute;5/hour` into items, shortest window first."""
    return sorted(parse_many(text), key=lambda item: item.get_expiry())
