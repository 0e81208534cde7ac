"""POST /api/v1/auth/send-verification: the answer, and what goes to Twilio."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import CODE, KG_PHONE, SEND, US_PHONE, VERIFY, verifications
from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    START_PATH,
    VERIFICATION_SID,
    basic_auth,
    form,
    mock_check,
    mock_start,
    started,
    twilio_error,
)


def sent_body(phone: str, market: str, language: str) -> dict[str, object]:
    return {
        "success": True,
        "message": f"Verification code sent to {phone}",
        "phone": phone,
        "market": market,
        "language": language,
        "expires_in_minutes": 10,
        "channel": "sms",
    }


@pytest.mark.parametrize(
    ("phone", "market", "language"),
    [(KG_PHONE, "KG", "ru"), (US_PHONE, "US", "en")],
    ids=["KG", "US"],
)
async def test_send_answers_the_contract_and_asks_twilio_in_the_market_language(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    phone: str,
    market: str,
    language: str,
) -> None:
    start = mock_start(twilio)

    response = await client.post(SEND, json={"phone": phone})

    assert response.status_code == 200, response.text
    assert response.json() == sent_body(phone, market, language)
    assert start.call_count == 1
    request = start.calls.last.request
    assert request.url.path == START_PATH
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert form(request) == {
        "To": phone,
        "Channel": "sms",
        "Locale": language,
        "DeviceIp": "127.0.0.1",
    }
    [row] = await verifications(db_engine)
    assert (row.phone, row.market, row.channel, row.status) == (phone, market, "sms", "pending")
    assert row.failed_attempts == 0
    assert row.provider_sid.startswith("VE")
    assert row.code_hash is None  # Twilio holds the code
    assert row.expires_at - row.created_at == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("+996 555 123 456", KG_PHONE),
        ("+996-555-123-456", KG_PHONE),
        ("+996.555.123.456", KG_PHONE),
        ("+996 (555) 12-34-56", KG_PHONE),
        ("  +996555123456  ", KG_PHONE),
        ("+1 (202) 555-0143", US_PHONE),
        ("+1 202.555.0143", US_PHONE),
        ("+1-202-555-0143", US_PHONE),
        # Pasted: the bidi marks iOS wraps around a number, non-breaking and thin spaces.
        ("\u202a+996 555 123 456\u202c", KG_PHONE),
        ("+996\u00a0555\u00a0123\u00a0456", KG_PHONE),
        ("\u2066+1\u2009202\u2009555\u20090143\u2069", US_PHONE),
    ],
)
async def test_formatted_numbers_are_normalised_to_e164(
    client: httpx.AsyncClient, twilio: respx.MockRouter, typed: str, e164: str
) -> None:
    start = mock_start(twilio)

    response = await client.post(SEND, json={"phone": typed})

    assert response.status_code == 200, response.text
    assert response.json()["phone"] == e164
    assert response.json()["message"] == f"Verification code sent to {e164}"
    assert form(start.calls.last.request)["To"] == e164


async def test_differently_formatted_numbers_are_one_person(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    start = mock_start(twilio)

    async with client_for(rate_limit_enabled=False) as client:
        for typed in ("+996555123456", "+996 555 123 456", "+996 (555) 12-34-56"):
            response = await client.post(SEND, json={"phone": typed})
            assert response.status_code == 200, response.text

    assert {form(call.request)["To"] for call in start.calls} == {KG_PHONE}
    rows = await verifications(db_engine)
    assert [row.phone for row in rows] == [KG_PHONE] * 3
    # A new code replaces the pending one.
    assert [row.status for row in rows] == ["expired", "expired", "pending"]


async def test_the_row_is_stored_before_twilio_texts_the_code(
    client: httpx.AsyncClient, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    """So that a code that went out can always be checked, whatever fails after."""
    seen_by_twilio: list[tuple[str, str, int]] = []

    async def start(request: httpx.Request) -> httpx.Response:
        seen_by_twilio.extend(
            (r.status, r.provider_sid, r.failed_attempts) for r in await verifications(db_engine)
        )
        return started(KG_PHONE, sid=VERIFICATION_SID)

    twilio.post(START_PATH).mock(side_effect=start)
    sent = await client.post(SEND, json={"phone": KG_PHONE})

    assert sent.status_code == 200, sent.text
    assert seen_by_twilio == [("pending", "", 0)]
    [row] = await verifications(db_engine)
    assert (row.status, row.provider_sid) == ("pending", VERIFICATION_SID)


async def test_a_code_twilio_refused_to_send_leaves_the_pending_one(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    """The row stored before asking goes again: the code the person holds still works."""
    start = mock_start(twilio)
    check = mock_check(twilio)
    async with client_for(rate_limit_enabled=False) as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        [before] = await verifications(db_engine)
        start.mock(return_value=twilio_error(60410, 403))
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 403
        assert await verifications(db_engine) == [before]

        verified = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})
        assert verified.status_code == 200, verified.text
    assert form(check.calls.last.request)["VerificationSid"] == before.provider_sid


async def test_a_resend_twilio_answers_with_the_pending_sid_keeps_its_row(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    """Twilio resends the pending code under its sid: the row and its spent attempts stay."""
    twilio.post(START_PATH).mock(return_value=started(KG_PHONE, sid=VERIFICATION_SID))
    mock_check(twilio, "pending")
    async with client_for(rate_limit_enabled=False) as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        wrong = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})
        assert wrong.status_code == 400
        [first] = await verifications(db_engine)
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200

    [row] = await verifications(db_engine)
    assert (row.id, row.status, row.provider_sid, row.failed_attempts) == (
        first.id,
        "pending",
        VERIFICATION_SID,
        1,
    )
