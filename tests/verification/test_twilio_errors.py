"""Every row of the Twilio error mapping, seen from the client, Twilio mocked at HTTP."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import (
    CODE,
    INVALID_CODE,
    KG_MASKED,
    KG_PHONE,
    LOCKED,
    PROVIDER_FAILED,
    SEND,
    UNAVAILABLE,
    VERIFY,
    verifications,
)
from tests.twilio_fixtures import CHECK_PATH, START_PATH, checked, form, mock_start, twilio_error

INVALID = "Enter a valid phone number."
NO_SMS = "This phone number cannot receive SMS."
NOT_SUPPORTED = "Phone numbers from this country are not supported."
HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)


def _error_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.name.startswith("app")
    ]


# --- start ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [(20003, 401), (60223, 400), (21608, 400), (20404, 404)],
)
async def test_start_misconfiguration_is_503_with_an_error_log(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    code: int,
    status: int,
) -> None:
    start = twilio.post(START_PATH).mock(return_value=twilio_error(code, status))

    response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 503
    assert response.json() == {"success": False, "detail": UNAVAILABLE}
    assert start.call_count == 1
    assert _error_records(caplog) == [
        f"Twilio is misconfigured (Twilio code {code}) during send for {KG_MASKED}: "
        f"HTTP {status}, Twilio code {code}"
    ]
    assert await verifications(db_engine) == []


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        (21211, 400, INVALID),
        (21614, 400, NO_SMS),
        (60200, 400, INVALID),
        (60205, 400, NO_SMS),
        (21408, 400, NOT_SUPPORTED),
        (60605, 403, NOT_SUPPORTED),
    ],
)
async def test_start_number_problem_is_a_phone_field_error(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    code: int,
    status: int,
    message: str,
) -> None:
    start = twilio.post(START_PATH).mock(return_value=twilio_error(code, status))

    response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 400
    assert response.json() == {"phone": [message]}
    assert start.call_count == 1
    assert await verifications(db_engine) == []


@pytest.mark.parametrize("code", [60410, 60412])
async def test_start_fraud_block_is_403_neutral_and_not_retried(
    client: httpx.AsyncClient, twilio: respx.MockRouter, code: int
) -> None:
    start = twilio.post(START_PATH).mock(
        return_value=twilio_error(code, 403, "Verification blocked: suspected fraud")
    )

    response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 403
    body = response.json()
    assert body == {
        "success": False,
        "detail": "We cannot send a verification code to this phone number. "
        "Please contact support.",
    }
    assert "fraud" not in response.text.lower()
    assert start.call_count == 1


async def test_start_send_limit_60203_is_429_with_retry_after(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    start = twilio.post(START_PATH).mock(return_value=twilio_error(60203, 429))

    response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "600"
    assert response.json() == {
        "success": False,
        "detail": "Too many requests. Try again in 600 seconds.",
        "retry_after": 600,
    }
    assert start.call_count == 1


async def test_start_20429_is_retried_twice_then_502(
    client: httpx.AsyncClient, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    start = twilio.post(START_PATH).mock(return_value=twilio_error(20429, 429))

    response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 502
    assert response.json() == {"success": False, "detail": PROVIDER_FAILED}
    assert start.call_count == 3
    # Every try is the same request.
    assert {tuple(sorted(form(call.request).items())) for call in start.calls} == {
        (("Channel", "sms"), ("DeviceIp", "127.0.0.1"), ("Locale", "ru"), ("To", KG_PHONE))
    }
    assert await verifications(db_engine) == []


async def test_start_20429_then_success_sends_once(
    client: httpx.AsyncClient, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    start = twilio.post(START_PATH).mock(
        side_effect=[
            twilio_error(20429, 429),
            httpx.Response(201, json={"sid": "VE" + "c" * 32, "status": "pending"}),
        ]
    )

    response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 200, response.text
    assert start.call_count == 2
    [row] = await verifications(db_engine)
    assert row.provider_sid == "VE" + "c" * 32


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout])
async def test_start_connection_never_made_is_retried_then_502(
    client: httpx.AsyncClient, twilio: respx.MockRouter, error: type[httpx.HTTPError]
) -> None:
    start = twilio.post(START_PATH).mock(side_effect=error("no route to host"))

    response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 502
    assert response.json() == {"success": False, "detail": PROVIDER_FAILED}
    assert start.call_count == 3


async def test_start_read_timeout_is_502_without_retry(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    # Twilio may have sent the SMS already: trying again could send a second one.
    start = twilio.post(START_PATH).mock(side_effect=httpx.ReadTimeout("read timed out"))

    response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 502
    assert response.json() == {"success": False, "detail": PROVIDER_FAILED}
    assert start.call_count == 1


STRANGE_START_ANSWERS = [
    pytest.param(twilio_error(20500, 500, "Internal Server Error"), id="500-json"),
    pytest.param(httpx.Response(503, json={"code": 20503, "status": 503}), id="503-json"),
    pytest.param(
        httpx.Response(502, text=HTML_502, headers={"Content-Type": "text/html"}), id="502-html"
    ),
    pytest.param(httpx.Response(500, text=""), id="500-empty"),
    pytest.param(httpx.Response(200, text="OK"), id="200-not-json"),
    pytest.param(httpx.Response(201, json=["VE" + "b" * 32]), id="201-json-array"),
    pytest.param(httpx.Response(201, json={"status": "pending"}), id="201-without-sid"),
    pytest.param(httpx.Response(418, json={"message": "teapot"}), id="unknown-4xx-without-code"),
]


@pytest.mark.parametrize("answer", STRANGE_START_ANSWERS)
async def test_start_failure_or_foreign_body_is_502(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    answer: httpx.Response,
) -> None:
    start = twilio.post(START_PATH).mock(return_value=answer)

    response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 502
    assert response.json() == {"success": False, "detail": PROVIDER_FAILED}
    assert start.call_count == 1
    assert await verifications(db_engine) == []


# --- check ---------------------------------------------------------------------------


async def _send(client: httpx.AsyncClient, twilio: respx.MockRouter) -> None:
    mock_start(twilio)
    sent = await client.post(SEND, json={"phone": KG_PHONE})
    assert sent.status_code == 200, sent.text


async def _verify(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(twilio_error(20404, 404), id="20404"),
        pytest.param(checked("canceled", KG_PHONE), id="status-canceled"),
        pytest.param(checked("expired", KG_PHONE), id="status-expired"),
    ],
)
async def test_check_of_a_verification_twilio_no_longer_has_is_invalid_code(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    answer: httpx.Response,
) -> None:
    await _send(client, twilio)
    check = twilio.post(CHECK_PATH).mock(return_value=answer)

    answers = [await _verify(client) for _ in range(7)]

    assert [(a.status_code, a.json()) for a in answers] == [(400, INVALID_CODE)] * 7
    # The row is left pending (the answer a second check of an approved code gets, whose
    # login may be being stored): each check spends an attempt, and once they are all
    # spent Twilio is not asked again.
    assert check.call_count == 5
    [row] = await verifications(db_engine)
    assert (row.status, row.failed_attempts) == ("pending", 5)


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(twilio_error(60202, 429), id="60202"),
        pytest.param(checked("max_attempts_reached", KG_PHONE), id="status-max-attempts"),
    ],
)
async def test_check_max_attempts_is_429_with_retry_after(
    client: httpx.AsyncClient, twilio: respx.MockRouter, answer: httpx.Response
) -> None:
    await _send(client, twilio)
    check = twilio.post(CHECK_PATH).mock(return_value=answer)

    response = await _verify(client)
    again = await _verify(client)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "60"
    assert response.json() == LOCKED
    assert (again.status_code, again.json()) == (429, LOCKED)
    assert check.call_count == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(twilio_error(20500, 500), id="500-json"),
        pytest.param(httpx.Response(503, text="Service Unavailable"), id="503-text"),
        pytest.param(
            httpx.Response(502, text=HTML_502, headers={"Content-Type": "text/html"}), id="502-html"
        ),
        pytest.param(httpx.Response(200, text="approved"), id="200-not-json"),
        pytest.param(httpx.Response(200, json={"valid": True}), id="200-without-status"),
        pytest.param(httpx.ReadTimeout("read timed out"), id="read-timeout"),
    ],
)
async def test_check_failure_is_502_without_success_key(
    client: httpx.AsyncClient, twilio: respx.MockRouter, answer: Any
) -> None:
    await _send(client, twilio)
    route = twilio.post(CHECK_PATH)
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)

    response = await _verify(client)

    assert response.status_code == 502
    assert response.json() == {"detail": PROVIDER_FAILED}
    assert route.call_count == 1


async def test_check_after_a_502_can_still_succeed(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    await _send(client, twilio)
    check = twilio.post(CHECK_PATH).mock(
        side_effect=[twilio_error(20500, 500), checked("approved", KG_PHONE)]
    )

    failed = await _verify(client)
    retried = await _verify(client)

    assert failed.status_code == 502
    assert retried.status_code == 200, retried.text
    assert retried.json()["is_new_user"] is True
    assert check.call_count == 2


@pytest.mark.parametrize(("code", "status"), [(20003, 401), (60223, 400), (21608, 400)])
async def test_check_misconfiguration_is_503_detail_alone(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    code: int,
    status: int,
) -> None:
    await _send(client, twilio)
    twilio.post(CHECK_PATH).mock(return_value=twilio_error(code, status))

    response = await _verify(client)

    assert response.status_code == 503
    assert response.json() == {"detail": UNAVAILABLE}
    assert _error_records(caplog) == [
        f"Twilio is misconfigured (Twilio code {code}) during verify for {KG_MASKED}: "
        f"check: HTTP {status}, Twilio code {code}"
    ]


async def test_twilio_failures_are_not_wrong_codes(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    # More outages than allowed wrong codes, fewer than open the circuit breaker.
    check = twilio.post(CHECK_PATH).mock(
        side_effect=[twilio_error(20500, 500)] * 3 + [checked("approved", KG_PHONE)]
    )

    async with client_for(verification_max_attempts=2, twilio_circuit_failures=10) as client:
        await _send(client, twilio)
        failures = [await _verify(client) for _ in range(3)]
        after = await _verify(client)

    assert [f.status_code for f in failures] == [502] * 3
    assert after.status_code == 200, after.text
    assert check.call_count == 4


# --- what the log says -------------------------------------------------------------------


def _logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == level and r.name == "app.services.verification.service"
    ]


@pytest.mark.parametrize(
    ("answer", "level", "message"),
    [
        pytest.param(
            twilio_error(60999, 400),
            logging.WARNING,
            "Twilio refused send for {masked} with an error the service does not map "
            "(Twilio code 60999): start: HTTP 400, Twilio code 60999",
            id="unmapped-4xx",
        ),
        pytest.param(
            twilio_error(20500, 500),
            logging.ERROR,
            "Twilio failed during send for {masked} (Twilio code 20500): "
            "start: HTTP 500, Twilio code 20500",
            id="5xx",
        ),
    ],
)
async def test_a_failed_send_logs_twilios_status_and_code(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    answer: httpx.Response,
    level: int,
    message: str,
) -> None:
    twilio.post(START_PATH).mock(return_value=answer)

    assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 502

    assert _logged(caplog, level) == [message.format(masked=KG_MASKED)]


@pytest.mark.parametrize(
    ("answer", "level", "message"),
    [
        pytest.param(
            twilio_error(60999, 400),
            logging.WARNING,
            "Twilio refused verify for {masked} with an error the service does not map "
            "(Twilio code 60999): check: HTTP 400, Twilio code 60999",
            id="unmapped-4xx",
        ),
        pytest.param(
            twilio_error(20500, 500),
            logging.ERROR,
            "Twilio failed during verify for {masked} (Twilio code 20500): "
            "check: HTTP 500, Twilio code 20500",
            id="5xx",
        ),
    ],
)
async def test_a_failed_check_logs_twilios_status_and_code(
    client: httpx.AsyncClient,
    twilio: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    answer: httpx.Response,
    level: int,
    message: str,
) -> None:
    await _send(client, twilio)
    twilio.post(CHECK_PATH).mock(return_value=answer)

    assert (await _verify(client)).status_code == 502

    assert _logged(caplog, level) == [message.format(masked=KG_MASKED)]


async def test_a_refused_number_is_logged_masked_with_twilios_code(
    client: httpx.AsyncClient, twilio: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    twilio.post(START_PATH).mock(return_value=twilio_error(21211, 400))

    assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 400

    assert [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and r.name == "app.services.verification.providers.twilio"
    ] == [f"Twilio refused {KG_MASKED}: HTTP 400, Twilio code 21211"]
