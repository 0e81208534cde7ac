"""Logs of a whole login at DEBUG: outcome, market and masked phone; never a secret."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
import respx

from tests.conftest import JWT_SECRET, ClientFactory
from tests.helpers import CODE, KG_MASKED, KG_PHONE, ME, SEND, VERIFY, bearer
from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CHECK_PATH,
    START_PATH,
    checked,
    form,
    mock_start,
    twilio_error,
)

WRONG_CODE = "271828"
TYPED_PHONE = "+996 555 123 456"


def records(caplog: pytest.LogCaptureFixture, prefix: str = "") -> list[logging.LogRecord]:
    """The records of the test and its fixtures, from loggers under `prefix`."""
    found = [
        record
        for phase in ("setup", "call")
        for record in caplog.get_records(phase)
        if record.name.startswith(prefix)
    ]
    assert found, "nothing was logged"
    return found


def everything_logged(caplog: pytest.LogCaptureFixture, prefix: str = "") -> list[str]:
    """Each record (of loggers under `prefix`) as printed, with every attribute it carries."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [f"{formatter.format(r)} {vars(r)!r}" for r in records(caplog, prefix)]


def leaks(logged: list[str], values: dict[str, str]) -> dict[str, list[str]]:
    """Which of `values` appear in the log, with the lines they appear in."""
    found = {name: [line for line in logged if value in line] for name, value in values.items()}
    return {name: lines for name, lines in found.items() if lines}


@pytest.fixture
async def login_at_debug(
    client_for: ClientFactory, twilio: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> dict[str, Any]:
    """A whole login at LOG_LEVEL=DEBUG with one wrong code first; the verify-code body."""
    caplog.set_level(logging.DEBUG)
    mock_start(twilio)
    twilio.post(CHECK_PATH).mock(
        side_effect=lambda request: checked(
            "approved" if form(request)["Code"] == CODE else "pending", KG_PHONE
        )
    )
    async with client_for(log_level="DEBUG") as client:
        sent = await client.post(SEND, json={"phone": TYPED_PHONE})
        wrong = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": WRONG_CODE})
        verified = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})
        body: dict[str, Any] = verified.json()
        me = await client.get(ME, headers=bearer(body["access_token"]))
    statuses = (sent.status_code, wrong.status_code, verified.status_code, me.status_code)
    assert statuses == (200, 400, 200, 200)
    return body


def secrets_of(body: dict[str, Any]) -> dict[str, str]:
    basic = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    return {
        "code": CODE,
        "wrong code": WRONG_CODE,
        "access token": body["access_token"],
        "access token signature": body["access_token"].rsplit(".", 1)[1],
        "refresh token": body["refresh_token"],
        "Twilio auth token": AUTH_TOKEN,
        "Twilio basic credentials": basic,
        "JWT secret": JWT_SECRET,
    }


PHONES = {"phone": KG_PHONE, "phone digits": KG_PHONE[1:], "phone as typed": TYPED_PHONE}


async def test_no_code_token_or_secret_in_any_log(
    login_at_debug: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    assert leaks(everything_logged(caplog), secrets_of(login_at_debug)) == {}


async def test_the_service_logs_only_the_masked_phone(
    login_at_debug: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    assert leaks(everything_logged(caplog, "app"), PHONES) == {}
    # What is logged: each outcome, with the market and the masked phone.
    messages = [r.getMessage() for r in records(caplog, "app")]
    for outcome in ("Verification sent", "Wrong code", "Login"):
        assert any(m.startswith(outcome) and "KG" in m and KG_MASKED in m for m in messages), (
            outcome,
            messages,
        )


async def test_no_full_phone_in_any_log_at_debug(
    login_at_debug: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert leaks(everything_logged(caplog), PHONES) == {}


async def test_twilio_failure_logs_no_phone(
    client_for: ClientFactory, twilio: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    # Twilio's own message quotes the number; it must not reach the log.
    caplog.set_level(logging.DEBUG)
    twilio.post(START_PATH).mock(
        return_value=twilio_error(21211, 400, f"The 'To' number {KG_PHONE} is not valid.")
    )

    async with client_for(log_level="DEBUG") as client:
        response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 400
    assert leaks(everything_logged(caplog, "app"), PHONES) == {}
    assert any(KG_MASKED in line for line in everything_logged(caplog, "app"))
