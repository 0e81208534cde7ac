"""Done when: after a login and a sync against the fake Twilio, the stored attempt, the
admin view and /metrics show that verification's delivery status, price and conversion;
a second sync changes nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

import httpx
import pytest
import respx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import attempts as attempts_cli
from app.core.database import Database
from app.models.base import utcnow
from app.models.verification import Verification
from app.services.delivery.service import DeliverySyncService
from app.services.verification.providers.twilio import TwilioCredentials, TwilioVerifyClient
from tests.conftest import ClientFactory, SettingsFactory
from tests.delivery.conftest import Clock, stored
from tests.delivery.support import FakeAttempts, attempt, attempt_sid
from tests.helpers import KG_PHONE, NO_LIMITS, SEND, VERIFY, bearer, login, new_phone, set_roles
from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SERVICE_SID,
    TWILIO_BASE_URL,
    mock_approving,
)

ADMIN_VERIFICATIONS = "/api/v1/admin/verifications"


async def test_a_login_s_delivery_price_and_conversion_after_a_sync(
    client_for: ClientFactory,
    db_engine: AsyncEngine,
    twilio: respx.MockRouter,
    fake_attempts: FakeAttempts,
    http: httpx.AsyncClient,
) -> None:
    mock_approving(twilio)
    async with client_for() as client:
        sent = await client.post(SEND, json={"phone": KG_PHONE})
        logged_in = await client.post(
            VERIFY, json={"phone": KG_PHONE, "verification_code": "480913"}
        )
    assert (sent.status_code, logged_in.status_code) == (200, 200)
    async with db_engine.connect() as connection:
        row = (await connection.execute(select(Verification.id, Verification.provider_sid))).one()
    sent_at = utcnow()
    fake_attempts.add(
        attempt(
            attempt_sid(1),
            row.provider_sid,
            sent_at,
            message_status="delivered",
            conversion_status="converted",
            price={"value": "0.1500", "currency": "usd"},
        )
    )
    twilio_client = TwilioVerifyClient(
        http, TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID), base_url=TWILIO_BASE_URL
    )
    clock = Clock(now=sent_at + timedelta(minutes=5))
    service = DeliverySyncService(
        twilio_client,
        markets_by_region={"KG": "KG", "US": "US"},
        overlap_seconds=1800,
        first_lookback_seconds=86400,
        page_size=100,
        clock=clock,
    )
    database = Database(db_engine)

    uow = database.unit_of_work()
    try:
        first = await service.sync(uow)
        clock.advance(300)
        second = await service.sync(uow)
    finally:
        await uow.close()

    [stored_attempt] = (await stored(db_engine)).values()
    assert stored_attempt["verification_id"] == row.id
    assert stored_attempt["market"] == "KG"
    assert stored_attempt["delivery_status"] == "delivered"
    assert stored_attempt["converted"] is True
    assert (stored_attempt["price_micros"], stored_attempt["price_currency"]) == (150_000, "USD")
    assert (first.new, first.unmatched) == (1, 0)
    assert (second.new, second.updated, second.unchanged) == (0, 0, 1)


def _samples(metrics_text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of one metric, keyed by their labels."""
    return {
        frozenset(sample.labels.items()): sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == name
    }


async def test_after_a_login_and_a_sync_the_admin_view_and_metrics_show_the_code(
    client_for: ClientFactory,
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    twilio: respx.MockRouter,
    fake_attempts: FakeAttempts,
) -> None:
    """The issue's "done when", through the command the CronJob runs and the HTTP API:
    the delivery status, price and conversion of a login's code, and a second sync that
    changes nothing."""
    mock_approving(twilio)
    async with client_for(**NO_LIMITS) as client:
        admin = await login(client)
        await set_roles(db_engine, admin["user"]["id"], ["admin"])
        phone = new_phone()
        await login(client, phone)
        async with db_engine.connect() as connection:
            sid = (
                await connection.execute(
                    select(Verification.provider_sid).where(Verification.phone == phone)
                )
            ).scalar_one()
        sent_at = utcnow()
        fake_attempts.add(
            attempt(
                attempt_sid(7),
                sid,
                sent_at,
                message_status="delivered",
                conversion_status="converted",
                price={"value": "0.0500", "currency": "usd"},
                to=phone,
            )
        )
        clock = Clock(now=sent_at + timedelta(minutes=5))
        sync = partial(attempts_cli.run, make_settings(), clock=clock)

        assert await asyncio.to_thread(sync) == 0
        headers = bearer(admin["access_token"])
        view = await client.get(ADMIN_VERIFICATIONS, params={"phone": phone}, headers=headers)
        metrics = (await client.get("/metrics")).text
        before = await stored(db_engine)
        clock.advance(300)
        assert await asyncio.to_thread(sync) == 0
        again = await client.get(ADMIN_VERIFICATIONS, params={"phone": phone}, headers=headers)

    assert view.status_code == 200, view.text
    [item] = view.json()["items"]
    assert item["channel"] == "sms"
    assert (item["delivery_status"], item["converted"]) == ("delivered", True)
    assert (item["price"], item["price_currency"]) == ("0.0500", "USD")
    kg_hour = {("market", "KG"), ("window", "1h")}
    assert _samples(metrics, "phone_auth_delivery_messages")[
        frozenset({*kg_hour, ("status", "delivered")})
    ] == pytest.approx(1.0)
    assert _samples(metrics, "phone_auth_delivery_conversion_rate")[
        frozenset(kg_hour)
    ] == pytest.approx(1.0)
    assert _samples(metrics, "phone_auth_sms_spend_reported")[
        frozenset({*kg_hour, ("provider", "twilio"), ("currency", "USD")})
    ] == pytest.approx(0.05)
    # The second sync stored nothing twice and changed nothing.
    assert await stored(db_engine) == before
    assert again.json() == view.json()
