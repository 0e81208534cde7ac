"""The delivery gauges of /metrics: codes sent, messages delivered, undelivered and
failed, conversion over the last hour and day, and the spend the providers report, by
market, read from the database (rows inserted as the sync stores them)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.metrics import Metrics
from app.main import Clocks
from app.models.delivery_attempt import DeliveryAttempt
from app.services.delivery.reporting import MarketSpend, MarketWindow
from app.services.delivery.stats import DeliveryStats
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import Records
from tests.ops.conftest import Samples, matching, parse_metrics, sample

_sids = iter(range(10**6))


async def add(engine: AsyncEngine, clock: FakeClock, age_seconds: float, **values: Any) -> None:
    """An attempt made `age_seconds` before the clock's now."""
    number = next(_sids)
    row: dict[str, Any] = {
        "provider": "twilio",
        "attempt_sid": f"VL{number:032d}",
        "verification_sid": f"VE{number:032d}",
        "market": "KG",
        "channel": "sms",
        "attempted_at": datetime.fromtimestamp(clock.now - age_seconds, UTC),
        "synced_at": datetime.fromtimestamp(clock.now, UTC),
        **values,
    }
    async with engine.begin() as connection:
        await connection.execute(insert(DeliveryAttempt), row)


async def scrape(client: httpx.AsyncClient) -> Samples:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    return parse_metrics(answer.text)


async def test_delivery_conversion_and_spend_by_market_and_window(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    # KG, the last hour: 4 sent; 2 delivered, 1 undelivered, 1 failed; 1 of 4 converted.
    for status, converted in [
        ("delivered", True),
        ("delivered", False),
        ("undelivered", False),
        ("failed", False),
    ]:
        await add(
            db_engine,
            clock,
            600,
            delivery_status=status,
            converted=converted,
            price_micros=50_000,
            price_currency="usd",
        )
    # KG, earlier today: 2 more, both delivered and converted, one priced in EUR.
    await add(db_engine, clock, 7200, delivery_status="delivered", converted=True)
    await add(
        db_engine,
        clock,
        7200,
        delivery_status="delivered",
        converted=True,
        price_micros=40_000,
        price_currency="EUR",
    )
    # US, the last hour: one sent, nothing known yet. Two days ago: out of every window.
    await add(db_engine, clock, 60, market="US", delivery_status="sent")
    await add(db_engine, clock, 2 * 86400, market="US", converted=True, delivery_status="failed")

    async with client_for(clocks=Clocks(wall=clock)) as client:
        metrics = await scrape(client)

    def value(name: str, **labels: str) -> float | None:
        return sample(metrics, name, **labels)

    assert value("phone_auth_delivery_attempts", market="KG", window="1h") == 4
    assert value("phone_auth_delivery_attempts", market="KG", window="1d") == 6
    assert value("phone_auth_delivery_attempts", market="US", window="1h") == 1
    assert value("phone_auth_delivery_attempts", market="US", window="1d") == 1
    messages = "phone_auth_delivery_messages"
    assert value(messages, market="KG", window="1h", status="delivered") == 2
    assert value(messages, market="KG", window="1h", status="undelivered") == 1
    assert value(messages, market="KG", window="1h", status="failed") == 1
    assert value(messages, market="KG", window="1d", status="delivered") == 4
    assert value(messages, market="US", window="1d", status="failed") == 0
    assert value("phone_auth_delivery_conversion_rate", market="KG", window="1h") == 0.25
    assert value("phone_auth_delivery_conversion_rate", market="KG", window="1d") == 0.5
    assert value("phone_auth_delivery_conversion_samples", market="KG", window="1d") == 4 + 2
    # No attempt of known conversion: no series, rather than 0 (which would alert).
    assert matching(metrics, "phone_auth_delivery_conversion_rate", market="US") == []
    assert value("phone_auth_delivery_conversion_samples", market="US", window="1h") == 0
    spend = "phone_auth_sms_spend_reported"
    assert value(spend, market="KG", provider="twilio", currency="USD", window="1h") == 0.2
    assert value(spend, market="KG", provider="twilio", currency="USD", window="1d") == 0.2
    assert value(spend, market="KG", provider="twilio", currency="EUR", window="1d") == 0.04
    assert value(spend, market="KG", provider="twilio", currency="EUR", window="1h") is None
    assert matching(metrics, spend, market="US") == []
    assert value("phone_auth_delivery_stats_refreshed_timestamp_seconds") == clock.now


async def test_every_configured_market_shows_zero_sends_without_attempts(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock)) as client:
        metrics = await scrape(client)

    for market in ("KG", "US"):
        for window in ("1h", "1d"):
            assert (
                sample(metrics, "phone_auth_delivery_attempts", market=market, window=window) == 0
            )
    assert matching(metrics, "phone_auth_delivery_conversion_rate") == []


async def test_the_figures_are_cached_for_the_setting_on_the_injected_clock(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock), delivery_metrics_cache_seconds=30) as client:
        await add(db_engine, clock, 10, converted=True)
        assert (
            sample(await scrape(client), "phone_auth_delivery_attempts", market="KG", window="1h")
            == 1
        )

        await add(db_engine, clock, 10, converted=False)
        clock.advance(29.9)
        cached = await scrape(client)
        clock.advance(0.1)
        fresh = await scrape(client)

    assert sample(cached, "phone_auth_delivery_attempts", market="KG", window="1h") == 1
    assert sample(fresh, "phone_auth_delivery_attempts", market="KG", window="1h") == 2
    assert sample(fresh, "phone_auth_delivery_conversion_rate", market="KG", window="1h") == 0.5


async def test_an_attempt_leaves_the_hour_window_an_hour_after_it_was_made(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    await add(db_engine, clock, 0)
    async with client_for(clocks=Clocks(wall=clock), delivery_metrics_cache_seconds=0) as client:
        clock.advance(3600)
        at_the_edge = await scrape(client)
        clock.advance(1)
        after = await scrape(client)

    assert sample(at_the_edge, "phone_auth_delivery_attempts", market="KG", window="1h") == 1
    assert sample(after, "phone_auth_delivery_attempts", market="KG", window="1h") == 0
    assert sample(after, "phone_auth_delivery_attempts", market="KG", window="1d") == 1


class FlakyFigures:
    """Figures that answer once, then fail as a database that went away."""

    def __init__(self) -> None:
        self.calls = 0

    async def read(
        self, since: Sequence[datetime]
    ) -> list[tuple[list[MarketWindow], list[MarketSpend]]]:
        self.calls += 1
        if self.calls > 1:
            raise OperationalError("SELECT …", {}, ConnectionRefusedError("connection refused"))
        return [
            ([MarketWindow("KG", 10, 8, 1, 1, 3, 5)], [MarketSpend("KG", "twilio", "USD", 500_000)])
        ] * len(since)


async def test_a_database_error_keeps_the_last_values_and_says_why(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    figures = FlakyFigures()
    stats = DeliveryStats(figures, metrics, ["KG"], clock=clock, cache_seconds=15)
    await stats.refresh()
    clock.advance(15)

    with caplog.at_level(logging.WARNING, logger="app.services.delivery.stats"):
        await stats.refresh()

    assert figures.calls == 2
    assert metrics.delivery_attempts.labels("KG", "1h")._value.get() == 10
    assert metrics.delivery_conversion_rate.labels("KG", "1d")._value.get() == 0.6
    assert metrics.delivery_stats_errors._value.get() == 1
    assert [r.getMessage() for r in caplog.records] == [
        "Delivery metrics not refreshed, the previous values stay: ConnectionRefusedError"
    ]


async def test_metrics_answer_when_the_database_cannot_be_read(
    client_for: ClientFactory, tmp_path: Any, clock: FakeClock, app_logs: Records
) -> None:
    # A SQLite file in a directory that does not exist: every read fails.
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'db.sqlite'}"
    async with client_for(clocks=Clocks(wall=clock), database_url=url) as client:
        answer = await client.get("/metrics")

    assert answer.status_code == 200
    metrics = parse_metrics(answer.text)
    assert sample(metrics, "phone_auth_delivery_stats_errors_total") == 1
    assert matching(metrics, "phone_auth_delivery_attempts") == []
    assert any(
        message.startswith("Delivery metrics not refreshed")
        for message in app_logs.at(logging.WARNING)
    )
