"""Done when: after a login and a sync against the fake Twilio, the stored attempt shows
that verification's delivery status, price and conversion; a second sync changes
nothing."""

from __future__ import annotations

from datetime import timedelta

import httpx
import respx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import Database
from app.models.base import utcnow
from app.models.verification import Verification
from app.services.delivery.service import DeliverySyncService
from app.services.verification.providers.twilio import TwilioCredentials, TwilioVerifyClient
from tests.conftest import ClientFactory
from tests.delivery.conftest import Clock, stored
from tests.delivery.support import FakeAttempts, attempt, attempt_sid
from tests.helpers import KG_PHONE, SEND, VERIFY
from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SERVICE_SID,
    TWILIO_BASE_URL,
    mock_approving,
)


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
