"""VERIFY_PROVIDER=console: a whole login with the code from the log, and no Twilio."""

from __future__ import annotations

import logging
import re

import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.logging import ConsoleFormatter
from tests.conftest import ClientFactory
from tests.helpers import INVALID_CODE, KG_PHONE, ME, SEND, VERIFY, bearer, verifications

CODE_IN_LOG = re.compile(r"\bcode (\d+)\b")


def logged_codes(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The codes the console provider printed, oldest first."""
    return [
        match.group(1)
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name.startswith("app")
        for match in [CODE_IN_LOG.search(record.getMessage())]
        if match
    ]


async def test_whole_login_with_the_logged_code(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with client_for(verify_provider="console", twilio_auth_token=None) as client:
        sent = await client.post(SEND, json={"phone": KG_PHONE})
        [code] = logged_codes(caplog)
        [row] = await verifications(db_engine)
        verified = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": code})
        me = await client.get(ME, headers=bearer(verified.json()["access_token"]))

    assert sent.status_code == 200, sent.text
    assert sent.json()["phone"] == KG_PHONE
    assert re.fullmatch(r"\d{6}", code)
    [line] = [r.getMessage() for r in caplog.records if code in r.getMessage()]
    # The one log line with a whole number: it stands for the text message.
    assert f"for {KG_PHONE} via sms" in line
    assert sent.headers["X-Request-ID"] in line
    assert all(KG_PHONE not in r.getMessage() for r in caplog.records if code not in r.getMessage())
    # Only an HMAC of the code is kept.
    assert row.provider == "console"
    assert row.code_hash
    assert code not in row.code_hash
    assert all(code not in str(value) for value in row)
    assert verified.status_code == 200, verified.text
    assert verified.json()["is_new_user"] is True
    assert me.status_code == 200
    assert me.json() == verified.json()["user"]
    assert not twilio.calls


async def test_wrong_code_is_400_then_the_right_one_works(
    client_for: ClientFactory, twilio: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(verify_provider="console") as client:
        await client.post(SEND, json={"phone": KG_PHONE})
        [code] = logged_codes(caplog)
        wrong_code = f"{(int(code) + 1) % 1_000_000:06d}"
        wrong = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": wrong_code})
        right = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": code})

    assert wrong.status_code == 400
    assert wrong.json() == INVALID_CODE
    assert right.status_code == 200, right.text
    assert not twilio.calls


async def test_code_works_once(
    client_for: ClientFactory, twilio: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(verify_provider="console") as client:
        await client.post(SEND, json={"phone": KG_PHONE})
        [code] = logged_codes(caplog)
        first = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": code})
        again = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": code})

    assert first.status_code == 200
    assert again.status_code == 400
    assert again.json() == INVALID_CODE
    assert not twilio.calls


async def test_only_the_newest_code_works(
    client_for: ClientFactory, twilio: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(verify_provider="console", rate_limit_enabled=False) as client:
        await client.post(SEND, json={"phone": KG_PHONE})
        await client.post(SEND, json={"phone": KG_PHONE})
        old, new = logged_codes(caplog)
        if old == new:  # one chance in a million
            pytest.skip("the two random codes happen to be equal")
        stale = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": old})
        newest = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": new})

    assert stale.status_code == 400
    assert stale.json() == INVALID_CODE
    assert newest.status_code == 200, newest.text
    assert not twilio.calls


async def test_codes_for_two_numbers_are_told_apart_by_number_and_request(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Numbers masked alike (`+996*****3456`) and one process's request ids, which share
    their first characters: each line shows its whole number and its request's whole id."""
    first, second = "+996700113456", "+996777223456"
    async with client_for(verify_provider="console") as client:
        given = await client.post(
            SEND, json={"phone": first}, headers={"X-Request-ID": "frontend-7f3a"}
        )
        generated = await client.post(SEND, json={"phone": second})

    assert given.status_code == generated.status_code == 200
    lines = [
        ConsoleFormatter("%(message)s").format(record)
        for record in caplog.records
        if CODE_IN_LOG.search(record.getMessage()) and record.levelno == logging.WARNING
    ]
    assert len(lines) == 2
    generated_id = generated.headers["X-Request-ID"]
    assert len(generated_id) == 32
    line_of = {
        phone: [line for line in lines if f"for {phone} via" in line] for phone in (first, second)
    }
    assert len(line_of[first]) == len(line_of[second]) == 1
    assert "request frontend-7f3a" in line_of[first][0]
    assert generated_id not in line_of[first][0]
    assert f"request {generated_id}" in line_of[second][0]
    assert "frontend-7f3a" not in line_of[second][0]
