"""Log injection: hostile phone values never reach a log line unescaped."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from app.core.logging import ConsoleFormatter, ContextFilter, JsonFormatter
from tests.conftest import ClientFactory
from tests.helpers import SEND, VERIFY
from tests.twilio_fixtures import mock_check, mock_start

FORGED = "INFO app.services.login.service: Login: user=1 market=KG new=False phone=+996*****0000"
PAYLOADS = [
    f"+996555123456\n{FORGED}",
    f"+996555123456\r\n{FORGED}",
    f"+996 555 123 456\r{FORGED}",
    "+996555123456\x1b[2K\x1b[1A\x1b[31mFORGED",
    "\x1b]0;pwned\x07+12025550143",
    "+1202555\x1b[8m0143",
    f"+12025550143\u2028{FORGED}",
    f"+12025550143\u0085{FORGED}",
    "+99655512345\x00\n6",
    f"+996555123456%0a{FORGED}",
]


def _assert_clean(records: list[logging.LogRecord]) -> None:
    console = ConsoleFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    json_lines = JsonFormatter()
    context = ContextFilter()
    for record in records:
        message = record.getMessage()
        context.filter(record)
        for text in (message, console.format(record), json_lines.format(record)):
            assert "\x1b" not in text, text
            assert FORGED not in text, text
            assert "FORGED" not in text, text
            assert "\n" not in text.rstrip("\n"), text
            for control in ("\r", "\u2028", "\x85", "\x00"):
                assert control not in text, text
        for value in vars(record).values():
            if isinstance(value, str):
                assert "\x1b" not in value, record
                assert FORGED not in value, record


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_hostile_phone_never_reaches_a_log_unescaped(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    payload: str,
) -> None:
    mock_start(twilio)
    mock_check(twilio)
    caplog.set_level(logging.DEBUG)
    async with client_for(log_level="DEBUG", rate_limit_enabled=False) as client:
        caplog.clear()
        for body in (
            {"phone": payload},
            {"phone": payload, "channel": payload},
            {"phone": "+996555123456", "channel": payload},
        ):
            sent = await client.post(SEND, json=body, headers={"X-Request-ID": payload.encode()})
            assert sent.status_code == 400, sent.text
        for body in (
            {"phone": payload, "verification_code": "123456"},
            {"phone": "+996555123456", "verification_code": payload},
            {"phone": payload, "code": payload},
        ):
            verified = await client.post(
                VERIFY, json=body, headers={"User-Agent": payload.encode()}
            )
            assert verified.status_code == 400, verified.text
        await client.get(
            "/api/v1/users/me", headers={"Authorization": b"Bearer " + payload.encode()}
        )
    assert caplog.records, "no log captured: the capture handler is not attached"
    _assert_clean(caplog.records)


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_valid_phone_is_logged_masked_only(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    level: str,
) -> None:
    mock_start(twilio)
    mock_check(twilio)
    caplog.set_level(logging.DEBUG)
    async with client_for(log_level=level) as client:
        sent = await client.post(SEND, json={"phone": "+996 555 123 456"})
        assert sent.status_code == 200
        verified = await client.post(
            VERIFY, json={"phone": "+996555123456", "verification_code": "480913"}
        )
        assert verified.status_code == 200
        token = verified.json()["access_token"]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "+996*****3456" in text
    assert "555123456" not in text
    assert "480913" not in text
    assert token not in text
    _assert_clean(caplog.records)


async def test_url_with_newline_is_not_logged_raw(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.get("/api/v1/users/me%0a" + FORGED.replace(" ", "%20"))
    _assert_clean(caplog.records)
