"""Twilio without credentials: 503 on both endpoints, no HTTP call, no local code."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import KG_PHONE, SEND, UNAVAILABLE, US_PHONE, VERIFY, verifications

MISSING = [
    pytest.param({"twilio_account_sid": None}, id="no-account-sid"),
    pytest.param({"twilio_auth_token": None}, id="no-auth-token"),
    pytest.param({"twilio_verify_service_sid": None}, id="no-service-sid"),
    pytest.param({"twilio_auth_token": ""}, id="empty-auth-token"),
    pytest.param(
        {
            "twilio_account_sid": None,
            "twilio_auth_token": None,
            "twilio_verify_service_sid": None,
        },
        id="none-at-all",
    ),
]


@pytest.mark.parametrize("missing", MISSING)
async def test_send_answers_503(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    missing: dict[str, Any],
) -> None:
    async with client_for(**missing) as client:
        kg = await client.post(SEND, json={"phone": KG_PHONE})
        us = await client.post(SEND, json={"phone": US_PHONE})

    for response in (kg, us):
        assert response.status_code == 503
        assert response.json() == {"success": False, "detail": UNAVAILABLE}
    assert not twilio.calls
    # No code is generated locally in this mode.
    assert await verifications(db_engine) == []
    refusals = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.name == "app.services.verification.service"
    ]
    assert (
        refusals == ["Verification requested but the provider's credentials are not configured"] * 2
    )


@pytest.mark.parametrize("missing", MISSING)
async def test_verify_answers_503(
    client_for: ClientFactory, twilio: respx.MockRouter, missing: dict[str, Any]
) -> None:
    async with client_for(**missing) as client:
        response = await client.post(
            VERIFY, json={"phone": KG_PHONE, "verification_code": "123456"}
        )

    assert response.status_code == 503
    assert response.json() == {"detail": UNAVAILABLE}
    assert not twilio.calls


async def test_validation_still_comes_first(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    async with client_for(twilio_auth_token=None) as client:
        response = await client.post(SEND, json={"phone": "996555123456"})

    assert response.status_code == 400
    assert response.json() == {
        "phone": ["Phone number must start with country code (e.g., +996 or +1)"]
    }
    assert not twilio.calls
