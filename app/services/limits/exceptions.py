"""What the limits refuse with."""

from __future__ import annotations

from app.core.errors import ServiceUnavailable, TooManyRequests


class RateLimited(TooManyRequests):
    """A per-client or per-number limit is used up (429 with `Retry-After`)."""


class SmsBudgetExhausted(ServiceUnavailable):
    """The market's SMS budget is used up: an attack or a bug, not a busy user (503)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers={"Retry-After": str(retry_after)})
