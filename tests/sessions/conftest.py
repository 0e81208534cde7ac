"""Fixtures of the session tests: Twilio approving every code."""

from __future__ import annotations

import uuid

import httpx
import pytest
import respx

from tests.twilio_fixtures import CHECK_PATH, START_PATH, checked, form, started


@pytest.fixture(autouse=True)
def twilio_approves(twilio: respx.MockRouter) -> respx.MockRouter:
    """Twilio starts a verification for any number and approves any code."""
    numbers: dict[str, str] = {}

    def start(request: httpx.Request) -> httpx.Response:
        to = form(request)["To"]
        sid = "VE" + uuid.uuid4().hex
        numbers[sid] = to
        return started(to, sid=sid)

    def check(request: httpx.Request) -> httpx.Response:
        sid = form(request)["VerificationSid"]
        return checked("approved", numbers[sid], sid=sid)

    twilio.post(START_PATH).mock(side_effect=start)
    twilio.post(CHECK_PATH).mock(side_effect=check)
    return twilio
