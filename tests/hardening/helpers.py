"""Shared helpers of the hardening tests; the HTTP tests' helpers, and a few more."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import (
    CODE,
    KG_PHONE,
    ME,
    SEND,
    US_PHONE,
    VERIFY,
    bearer,
    login,
    mock_check,
    mock_start,
    new_sid,
)

__all__ = [
    "CODE",
    "KG_PHONE",
    "LOGOUT",
    "ME",
    "NO_LIMITS",
    "REFRESH",
    "SEND",
    "TEST_CODE",
    "TEST_KG",
    "TEST_NUMBERS",
    "TEST_US",
    "US_PHONE",
    "VERIFY",
    "bearer",
    "login",
    "mock_check",
    "mock_start",
    "new_sid",
]

REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"

# Test numbers with fixed codes: they never reach Twilio and skip the per-phone limits.
TEST_KG = "+996700000001"
TEST_US = "+12025550100"
TEST_CODE = "123456"
TEST_NUMBERS = f"{TEST_US}={TEST_CODE},{TEST_KG}={TEST_CODE}"

# No limits in the way of tests that send many requests on purpose.
NO_LIMITS: dict[str, Any] = {"rate_limit_enabled": False}
