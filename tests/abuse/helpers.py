"""Shared helpers of the abuse-protection tests: endpoints, Twilio routes, client addresses."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from app.core.config import DEFAULT_MARKETS, MarketSettings
from tests.twilio_fixtures import mock_check as mock_check
from tests.twilio_fixtures import mock_start as mock_start
from tests.twilio_fixtures import new_sid as new_sid

SEND = "/api/v1/auth/send-verification"
VERIFY = "/api/v1/auth/verify-code"

# Trust the test client's socket peer, so `X-Forwarded-For` can play other clients.
AS_PROXY: dict[str, Any] = {"trusted_proxies": ["127.0.0.1"]}


def from_ip(address: str) -> dict[str, str]:
    """Headers of a request forwarded by the trusted proxy for `address`."""
    return {"X-Forwarded-For": address}


def too_many(retry_after: int, *, send: bool = True) -> dict[str, Any]:
    """The 429 body of a client limit: send carries `success`, verify does not."""
    body: dict[str, Any] = {
        "detail": f"Too many requests. Try again in {retry_after} seconds.",
        "retry_after": retry_after,
    }
    return {"success": False, **body} if send else body


def retry_after(response: httpx.Response, window: int) -> int:
    """`Retry-After` of a 429/503, checked to be sane for a `window`-second limit."""
    value = int(response.headers["Retry-After"])
    assert 1 <= value <= window, (value, window)
    return value


class Records(logging.Handler):
    """Keeps the log records it sees."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int, logger_prefix: str = "app") -> list[str]:
        """Messages at exactly `level` from loggers under `logger_prefix`."""
        return [
            r.getMessage()
            for r in self.records
            if r.levelno == level and r.name.startswith(logger_prefix)
        ]


async def race_for_the_last_budget(client: httpx.AsyncClient) -> list[httpx.Response]:
    """Ten KG numbers race for a KG budget of one; then each refused number asks again.

    Sent to no one, the refused numbers have used none of their per-phone sends,
    so asking again must meet the budget (503), not their cooldown (429).
    """
    phones = [f"+99655512340{n}" for n in range(10)]
    answers = await asyncio.gather(*(client.post(SEND, json={"phone": p}) for p in phones))
    assert sorted(a.status_code for a in answers) == [200] + [503] * 9
    refused = [p for p, a in zip(phones, answers, strict=True) if a.status_code == 503]
    return [await client.post(SEND, json={"phone": p}) for p in refused]


def kg_budget(budget: str) -> dict[str, MarketSettings]:
    """The default markets with KG's SMS budget replaced."""
    kg = DEFAULT_MARKETS["KG"]
    return {
        "KG": MarketSettings(
            region=kg.region,
            language=kg.language,
            code_ttl_minutes=kg.code_ttl_minutes,
            channels=list(kg.channels),
            sms_budget=budget,
        ),
        "US": DEFAULT_MARKETS["US"],
    }
