"""Shared helpers of the HTTP tests: endpoints, contract bodies, Twilio routes, rows."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.user import User
from app.models.verification import Verification
from tests.twilio_fixtures import mock_check as mock_check
from tests.twilio_fixtures import mock_start as mock_start
from tests.twilio_fixtures import new_sid as new_sid

SEND = "/api/v1/auth/send-verification"
VERIFY = "/api/v1/auth/verify-code"
ME = "/api/v1/users/me"

KG_PHONE = "+996555123456"
KG_MASKED = "+996*****3456"
US_PHONE = "+12025550143"
CODE = "480913"

UNAVAILABLE = "SMS verification is temporarily unavailable. Please contact support."
PROVIDER_FAILED = "Could not reach the SMS provider. Please try again later."
INVALID_CODE = {"detail": "Invalid or expired verification code"}
LOCKED = {"detail": "Too many failed attempts. Please request a new code.", "retry_after": 60}
DISABLED = {"detail": "User account is disabled."}
NOT_AUTHENTICATED = {"detail": "Authentication credentials were not provided."}
INVALID_TOKEN = {"detail": "Invalid or expired token."}
BAD_BODY = {"detail": "Request body must be a JSON object."}

# The old backend's lifetime, which issue 4 keeps available through the setting.
OLD_LIFETIME: dict[str, Any] = {"access_token_expire_seconds": 2592000}


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


async def login(
    client: httpx.AsyncClient, phone: str = KG_PHONE, code: str = CODE
) -> dict[str, Any]:
    """Send a code and verify it (Twilio mocked by the test); the verify-code body."""
    sent = await client.post(SEND, json={"phone": phone})
    assert sent.status_code == 200, sent.text
    verified = await client.post(VERIFY, json={"phone": phone, "verification_code": code})
    assert verified.status_code == 200, verified.text
    body: dict[str, Any] = verified.json()
    return body


async def users(engine: AsyncEngine) -> list[Any]:
    """Every users row."""
    async with engine.connect() as connection:
        result = await connection.execute(select(User.__table__).order_by(User.id))
        return list(result.all())


async def verifications(engine: AsyncEngine) -> list[Any]:
    """Every verifications row, oldest first."""
    async with engine.connect() as connection:
        result = await connection.execute(select(Verification.__table__).order_by(Verification.id))
        return list(result.all())


async def user_id(engine: AsyncEngine, phone: str) -> int:
    """The id of the user with `phone`."""
    async with engine.connect() as connection:
        found = await connection.scalar(select(User.id).where(User.phone == phone))
    assert found is not None
    return int(found)


async def disable_user(engine: AsyncEngine, phone: str) -> None:
    """Set the user's `is_active` to false, as an administrator would."""
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.phone == phone).values(is_active=False))
