"""The lines an operator reads about a send or a check, word for word: what was sent
where, each refusal of a code and its reason, each provider refusal with the provider's
code, always with the masked number."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
import respx

from tests.conftest import ClientFactory
from tests.db_failures import FAILURES, failing_statements
from tests.helpers import (
    CODE,
    INVALID_CODE,
    KG_MASKED,
    KG_PHONE,
    LOCKED,
    NO_LIMITS,
    SEND,
    VERIFY,
    Records,
)
from tests.twilio_fixtures import (
    CHECK_PATH,
    START_PATH,
    checked,
    form,
    mock_check,
    mock_start,
    twilio_error,
)

SERVICE_LOGGER = "app.services.verification.service"
WRONG_CODE = "000000"


def logged(app_logs: Records, level: int) -> list[str]:
    """The verification service's messages at `level`."""
    return app_logs.at(level, SERVICE_LOGGER)


async def send(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post(SEND, json={"phone": KG_PHONE})


async def verify(client: httpx.AsyncClient, code: str = CODE) -> httpx.Response:
    return await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": code})


async def test_a_send_is_logged_with_market_channel_provider_and_masked_number(
    client: httpx.AsyncClient, twilio: respx.MockRouter, app_logs: Records
) -> None:
    mock_start(twilio)

    assert (await send(client)).status_code == 200

    assert logged(app_logs, logging.INFO) == [
        f"Verification sent: market=KG channel=sms provider=twilio phone={KG_MASKED}"
    ]


@pytest.mark.parametrize(
    ("answer", "status", "level", "message"),
    [
        pytest.param(
            twilio_error(60410, 403),
            403,
            logging.WARNING,
            "Twilio blocked send for {masked} as suspected fraud (Twilio code 60410)",
            id="fraud-guard",
        ),
        pytest.param(
            twilio_error(60203, 429),
            429,
            logging.INFO,
            "Twilio rate limit (Twilio code 60203) on send for {masked}",
            id="send-limit",
        ),
    ],
)
async def test_a_refused_send_is_logged_with_twilios_code(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    app_logs: Records,
    answer: httpx.Response,
    status: int,
    level: int,
    message: str,
) -> None:
    twilio.post(START_PATH).mock(return_value=answer)

    assert (await send(client)).status_code == status

    assert logged(app_logs, level) == [message.format(masked=KG_MASKED)]


async def test_a_send_refused_by_the_open_circuit_is_logged(
    client_for: ClientFactory, twilio: respx.MockRouter, app_logs: Records
) -> None:
    twilio.post(START_PATH).mock(return_value=twilio_error(20500, 500))
    async with client_for(twilio_circuit_failures=1, **NO_LIMITS) as client:
        assert (await send(client)).status_code == 502
        refused = await send(client)

    assert refused.status_code == 503, refused.text
    assert f"Twilio circuit open: send refused for {KG_MASKED}" in logged(app_logs, logging.WARNING)


async def test_wrong_codes_then_the_lock_are_logged(
    client_for: ClientFactory, twilio: respx.MockRouter, app_logs: Records
) -> None:
    mock_start(twilio)
    mock_check(twilio, "pending")
    async with client_for(verification_max_attempts=2, **NO_LIMITS) as client:
        assert (await send(client)).status_code == 200
        answers = [await verify(client, WRONG_CODE) for _ in range(3)]

    assert [(a.status_code, a.json()) for a in answers] == [
        (400, INVALID_CODE),
        (400, INVALID_CODE),
        (429, LOCKED),
    ]
    assert [m for m in logged(app_logs, logging.INFO) if m.startswith("Wrong")] == [
        f"Wrong code: market=KG phone={KG_MASKED}"
    ]
    assert logged(app_logs, logging.WARNING) == [
        f"Verification locked after wrong codes: market=KG phone={KG_MASKED}"
    ]


@pytest.mark.parametrize(
    ("answer", "status", "level", "message"),
    [
        pytest.param(
            checked("max_attempts_reached", KG_PHONE),
            429,
            logging.WARNING,
            "Verification locked by provider: market=KG phone={masked}",
            id="max-attempts",
        ),
        pytest.param(
            twilio_error(20404, 404),
            400,
            logging.INFO,
            "Verification unknown to provider: market=KG phone={masked}",
            id="not-found",
        ),
    ],
)
async def test_a_check_twilio_ends_is_logged(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    app_logs: Records,
    answer: httpx.Response,
    status: int,
    level: int,
    message: str,
) -> None:
    mock_start(twilio)
    twilio.post(CHECK_PATH).mock(return_value=answer)
    assert (await send(client)).status_code == 200

    assert (await verify(client)).status_code == status

    assert message.format(masked=KG_MASKED) in logged(app_logs, level)


# --- a sent code whose sid could not be stored ---------------------------------------


def _sid_write(statement: str) -> bool:
    # PostgreSQL: one statement of CTEs; SQLite: the first of three.
    return "expired_other_pending" in statement or (
        statement.startswith("UPDATE verifications") and "provider_sid" in statement
    )


@pytest.fixture
def failing_sid_write() -> Iterator[list[BaseException]]:
    """The write of a sent code's sid fails with the exception the test puts in the list."""
    with failing_statements(_sid_write) as failures:
        yield failures


@pytest.mark.parametrize(("failure", "named"), FAILURES)
async def test_a_sent_code_whose_sid_is_not_stored_is_logged_and_still_checks(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    app_logs: Records,
    failing_sid_write: list[BaseException],
    failure: BaseException,
    named: str,
) -> None:
    mock_start(twilio)
    check = twilio.post(CHECK_PATH).mock(return_value=checked("approved", KG_PHONE))
    async with client_for(**NO_LIMITS) as client:
        failing_sid_write.append(failure)
        sent = await send(client)
        verified = await verify(client)

    assert sent.status_code == 200, sent.text
    assert not failing_sid_write, "the sid's write never ran"
    assert logged(app_logs, logging.ERROR) == [
        f"Verification sent to {KG_MASKED} but its sid could not be stored ({named}): "
        "its code will be checked by number"
    ]
    assert verified.status_code == 200, verified.text
    assert form(check.calls.last.request) == {"To": KG_PHONE, "Code": CODE}
