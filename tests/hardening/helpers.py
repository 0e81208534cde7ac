"""Shared helpers of the hardening tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import respx

from tests.twilio_fixtures import CHECK_PATH, START_PATH, checked, form, started

SEND = "/api/v1/auth/send-verification"
VERIFY = "/api/v1/auth/verify-code"
ME = "/api/v1/users/me"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"

KG_PHONE = "+996555123456"
US_PHONE = "+12025550143"
CODE = "480913"

# Test numbers with fixed codes: they never reach Twilio and skip the per-phone limits.
TEST_KG = "+996700000001"
TEST_US = "+12025550100"
TEST_CODE = "123456"
TEST_NUMBERS = f"{TEST_US}={TEST_CODE},{TEST_KG}={TEST_CODE}"

# No limits in the way of tests that send many requests on purpose.
NO_LIMITS: dict[str, Any] = {"rate_limit_enabled": False}


def new_sid() -> str:
    """A fresh Twilio verification sid."""
    return "VE" + uuid.uuid4().hex


def mock_start(twilio: respx.MockRouter) -> respx.Route:
    """Twilio's start endpoint: 201 with a fresh sid for any number."""

    def answer(request: httpx.Request) -> httpx.Response:
        fields = form(request)
        return started(fields["To"], sid=new_sid(), channel=fields["Channel"])

    return twilio.post(START_PATH).mock(side_effect=answer)


def mock_check(twilio: respx.MockRouter, status: str = "approved") -> respx.Route:
    """Twilio's check endpoint: `approved`, or `pending` for a wrong code."""

    def answer(request: httpx.Request) -> httpx.Response:
        return checked(status, "+10000000000", sid=form(request)["VerificationSid"])

    return twilio.post(CHECK_PATH).mock(side_effect=answer)


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, phone: str, code: str = CODE) -> dict[str, Any]:
    """Send a code and verify it; the verify-code body."""
    sent = await client.post(SEND, json={"phone": phone})
    assert sent.status_code == 200, sent.text
    verified = await client.post(VERIFY, json={"phone": phone, "verification_code": code})
    assert verified.status_code == 200, verified.text
    body: dict[str, Any] = verified.json()
    return body
