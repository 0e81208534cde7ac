"""The real Twilio adapter against Stoplight Prism serving Twilio's own Verify spec.

Prism validates every request against `twilio_verify_v2.yaml` (path patterns,
required form fields, Basic auth, content type) and answers with the spec's
examples, so a passing start/check proves the adapter speaks Twilio's contract.
Error paths that the spec has no example for run against a copy of the spec
with examples added (see `conftest.extended_spec`), picked with `Prefer`.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from urllib.parse import parse_qs

import httpx
import pytest

from app.services.verification.exceptions import (
    NumberProblem,
    ProviderBlocked,
    ProviderError,
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderRefusedRequest,
    ProviderRejectedNumber,
    ProviderUnavailable,
)
from app.services.verification.providers.base import (
    CheckOutcome,
    CheckRequest,
    StartRequest,
)
from app.services.verification.providers.twilio import TwilioCredentials, TwilioVerifyClient
from tests.contract.conftest import WRONG_CODE_EXAMPLE, Prism
from tests.helpers import KG_PHONE, free_port

pytestmark = pytest.mark.node

ACCOUNT_SID = "AC" + secrets.token_hex(16)
AUTH_TOKEN = secrets.token_hex(16)
SERVICE_SID = "VA" + secrets.token_hex(16)
VERIFICATION_SID = "VE" + secrets.token_hex(16)
EXAMPLE_SID = "VEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"  # the sid in the spec's examples


class Exchanges:
    """Every request the adapter sent and the status Prism answered."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.statuses: list[int] = []

    async def on_request(self, request: httpx.Request) -> None:
        self.requests.append(request)

    async def on_response(self, response: httpx.Response) -> None:
        self.statuses.append(response.status_code)


@asynccontextmanager
async def adapter_for(
    server: Prism | str,
    *,
    prefer: str | None = None,
    service_sid: str = SERVICE_SID,
    max_retries: int = 2,
) -> AsyncIterator[tuple[TwilioVerifyClient, Exchanges]]:
    """The real adapter over a real client pointed at Prism; `prefer` picks an example."""
    exchanges = Exchanges()
    headers = {"Prefer": prefer} if prefer else None
    async with httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(10.0, connect=3.0),
        event_hooks={"request": [exchanges.on_request], "response": [exchanges.on_response]},
    ) as client:
        adapter = TwilioVerifyClient(
            client,
            TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, service_sid),
            base_url=server if isinstance(server, str) else server.url,
            max_retries=max_retries,
            retry_base_delay=0,
        )
        yield adapter, exchanges


def start_request(**changes: str | None) -> StartRequest:
    values: dict[str, str | None] = {"phone": KG_PHONE, "channel": "sms", "locale": "ru"}
    values.update(changes)
    return StartRequest(**values)  # type: ignore[arg-type]


def check_request(code: str = "123456") -> CheckRequest:
    return CheckRequest(sid=VERIFICATION_SID, code=code)


# --- the happy paths, validated by Prism ------------------------------------------------------


async def test_start_passes_prism_validation_and_returns_the_sid(prism: Prism) -> None:
    async with adapter_for(prism) as (adapter, exchanges):
        result = await adapter.start(start_request())

    assert result.sid == EXAMPLE_SID
    assert exchanges.statuses == [201]
    (request,) = exchanges.requests
    assert request.url.path == f"/v2/Services/{SERVICE_SID}/Verifications"


@pytest.mark.parametrize(
    ("channel", "locale", "device_ip"),
    [
        ("sms", "ru", None),
        ("sms", "en", "203.0.113.7"),
        ("whatsapp", "ru", None),
        ("call", "en", None),
    ],
)
async def test_every_start_the_service_makes_is_valid(
    prism: Prism, channel: str, locale: str, device_ip: str | None
) -> None:
    async with adapter_for(prism) as (adapter, exchanges):
        await adapter.start(start_request(channel=channel, locale=locale, device_ip=device_ip))

    assert exchanges.statuses == [201]


async def test_a_start_with_an_app_hash_sends_it_as_apphash(prism: Prism) -> None:
    """One-tap entry: the Android app's hash goes to Twilio as `AppHash`, which the spec
    defines for a start."""
    async with adapter_for(prism) as (adapter, exchanges):
        await adapter.start(start_request(app_hash="FA+9qCX9VSu"))

    assert exchanges.statuses == [201]
    (request,) = exchanges.requests
    assert parse_qs(request.content.decode())["AppHash"] == ["FA+9qCX9VSu"]


async def test_check_passes_prism_validation_and_is_approved(prism: Prism) -> None:
    async with adapter_for(prism) as (adapter, exchanges):
        outcome = await adapter.check(check_request())

    assert outcome is CheckOutcome.APPROVED
    assert exchanges.statuses == [200]
    (request,) = exchanges.requests
    assert request.url.path == f"/v2/Services/{SERVICE_SID}/VerificationCheck"


@pytest.mark.parametrize("code", ["1234", "123456", "1234567890"])
async def test_checks_of_every_code_length_are_valid(prism: Prism, code: str) -> None:
    async with adapter_for(prism) as (adapter, exchanges):
        assert await adapter.check(check_request(code)) is CheckOutcome.APPROVED

    assert exchanges.statuses == [200]


async def test_check_answered_201_is_approved(prism: Prism) -> None:
    async with adapter_for(prism, prefer="code=201") as (adapter, exchanges):
        assert await adapter.check(check_request()) is CheckOutcome.APPROVED

    assert exchanges.statuses == [201]


# --- the attempts list (ListVerificationAttempt), validated by Prism --------------------------

SINCE = datetime(2026, 11, 30, 11, 30, tzinfo=UTC)


async def test_list_attempts_passes_prism_validation(prism: Prism) -> None:
    """The spec's first example is an empty list."""
    async with adapter_for(prism) as (adapter, exchanges):
        page = await adapter.list_attempts(SINCE, page_size=100)

    assert page.attempts == ()
    assert page.next_page is None
    assert exchanges.statuses == [200]
    (request,) = exchanges.requests
    assert request.method == "GET"
    assert request.url.path == "/v2/Attempts"
    assert dict(request.url.params) == {
        "VerifyServiceSid": SERVICE_SID,
        "DateCreatedAfter": "2026-11-30T11:30:00Z",
        "PageSize": "100",
    }


async def test_the_spec_s_attempt_example_is_read(prism: Prism) -> None:
    prefer = "example=listVerificationAttempts"
    async with adapter_for(prism, prefer=prefer) as (adapter, exchanges):
        page = await adapter.list_attempts(SINCE, page_size=50, page="PageToken=PAtoken&Page=1")

    assert exchanges.statuses == [200]
    assert exchanges.requests[0].url.params["PageToken"] == "PAtoken"
    (attempt,) = page.attempts
    assert attempt.sid == "VLaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    assert attempt.verification_sid == EXAMPLE_SID
    assert (attempt.delivery_status, attempt.converted) == ("undelivered", False)
    assert (attempt.price_micros, attempt.price_currency) == (5000, "USD")


async def test_a_list_with_a_malformed_service_sid_is_refused_by_prism(prism: Prism) -> None:
    async with adapter_for(prism, service_sid="VA-not-a-service") as (adapter, exchanges):
        with pytest.raises(ProviderRefusedRequest):
            await adapter.list_attempts(SINCE, page_size=50)

    assert exchanges.statuses == [422], "Prism validated the query and refused it"


async def test_prism_refuses_a_list_without_basic_auth(prism: Prism) -> None:
    async with httpx.AsyncClient(base_url=prism.url) as client:
        response = await client.get("/v2/Attempts", params={"VerifyServiceSid": SERVICE_SID})

    assert response.status_code == 401


# --- Prism really validates: requests that break the spec are refused ------------------------


def _auth() -> httpx.BasicAuth:
    return httpx.BasicAuth(ACCOUNT_SID, AUTH_TOKEN)


async def test_prism_refuses_a_start_without_channel(prism: Prism) -> None:
    async with httpx.AsyncClient(base_url=prism.url) as client:
        response = await client.post(
            f"/v2/Services/{SERVICE_SID}/Verifications",
            data={"To": KG_PHONE, "Locale": "ru"},
            auth=_auth(),
        )

    assert response.status_code == 422
    assert "Channel" in response.text


async def test_prism_refuses_a_start_without_basic_auth(prism: Prism) -> None:
    async with httpx.AsyncClient(base_url=prism.url) as client:
        response = await client.post(
            f"/v2/Services/{SERVICE_SID}/Verifications", data={"To": KG_PHONE, "Channel": "sms"}
        )

    assert response.status_code == 401


async def test_prism_refuses_a_json_body(prism: Prism) -> None:
    async with httpx.AsyncClient(base_url=prism.url) as client:
        response = await client.post(
            f"/v2/Services/{SERVICE_SID}/Verifications",
            json={"To": KG_PHONE, "Channel": "sms"},
            auth=_auth(),
        )

    assert response.status_code in (415, 422)


async def test_prism_refuses_a_check_with_a_malformed_verification_sid(prism: Prism) -> None:
    async with httpx.AsyncClient(base_url=prism.url) as client:
        response = await client.post(
            f"/v2/Services/{SERVICE_SID}/VerificationCheck",
            data={"VerificationSid": "VE-not-a-sid", "Code": "123456"},
            auth=_auth(),
        )

    assert response.status_code == 422
    assert "VerificationSid" in response.text


async def test_adapter_with_a_malformed_service_sid_is_refused_by_prism(prism: Prism) -> None:
    async with adapter_for(prism, service_sid="VA-not-a-service") as (adapter, exchanges):
        with pytest.raises(ProviderRefusedRequest):
            await adapter.start(start_request())

    assert exchanges.statuses == [422], "Prism validated the request and refused it"


async def test_adapter_check_with_a_malformed_verification_sid_is_refused_by_prism(
    prism: Prism,
) -> None:
    async with adapter_for(prism) as (adapter, exchanges):
        with pytest.raises(ProviderRefusedRequest):
            await adapter.check(CheckRequest(sid="VE123", code="123456"))

    assert exchanges.statuses == [422]


# --- error paths from the spec's own examples -------------------------------------------------


async def test_20429_from_the_spec_is_retried_then_unavailable(prism: Prism) -> None:
    async with adapter_for(prism, prefer="code=429", max_retries=2) as (adapter, exchanges):
        with pytest.raises(ProviderUnavailable) as caught:
            await adapter.start(start_request())

    assert caught.value.provider_code == 20429
    assert exchanges.statuses == [429, 429, 429]
    assert len(exchanges.requests) == 3


async def test_connection_refused_is_retried_then_unavailable() -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"

    async with adapter_for(nobody_listens, max_retries=2) as (adapter, exchanges):
        with pytest.raises(ProviderUnavailable) as caught:
            await adapter.start(start_request())

    assert len(exchanges.requests) == 3
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


# --- error paths from examples added to a copy of the spec ------------------------------------


async def test_extended_spec_still_serves_the_happy_paths(prism_extended: Prism) -> None:
    async with adapter_for(prism_extended) as (adapter, exchanges):
        assert (await adapter.start(start_request())).sid == EXAMPLE_SID
        assert await adapter.check(check_request()) is CheckOutcome.APPROVED

    assert exchanges.statuses == [201, 200]


async def test_check_of_an_unknown_verification_is_not_found(prism_extended: Prism) -> None:
    async with adapter_for(prism_extended, prefer="code=404") as (adapter, exchanges):
        assert await adapter.check(check_request()) is CheckOutcome.NOT_FOUND

    assert exchanges.statuses == [404]


async def test_wrong_code_is_a_pending_answer(prism_extended: Prism) -> None:
    prefer = f"code=200, example={WRONG_CODE_EXAMPLE}"
    async with adapter_for(prism_extended, prefer=prefer) as (adapter, exchanges):
        assert await adapter.check(check_request("000000")) is CheckOutcome.WRONG_CODE

    assert exchanges.statuses == [200]


async def test_fifth_wrong_code_is_max_attempts(prism_extended: Prism) -> None:
    prefer = "code=429, example=maxCheckAttempts"
    async with adapter_for(prism_extended, prefer=prefer) as (adapter, exchanges):
        assert await adapter.check(check_request()) is CheckOutcome.MAX_ATTEMPTS

    assert exchanges.statuses == [429], "60202 is not retried"


async def test_20429_on_check_is_retried_then_unavailable(prism_extended: Prism) -> None:
    prefer = "code=429, example=tooManyConcurrent"
    async with adapter_for(prism_extended, prefer=prefer, max_retries=1) as (adapter, exchanges):
        with pytest.raises(ProviderUnavailable) as caught:
            await adapter.check(check_request())

    assert caught.value.provider_code == 20429
    assert exchanges.statuses == [429, 429]


@pytest.mark.parametrize("operation", ["start", "check"])
async def test_5xx_is_unavailable_and_not_retried(prism_extended: Prism, operation: str) -> None:
    async with adapter_for(prism_extended, prefer="code=503") as (adapter, exchanges):
        call = (
            adapter.start(start_request())
            if operation == "start"
            else adapter.check(check_request())
        )
        with pytest.raises(ProviderUnavailable) as caught:
            await call

    assert caught.value.provider_code == 20503
    assert exchanges.statuses == [503]


@pytest.mark.parametrize(
    ("status", "example", "error", "code", "problem"),
    [
        ("400", "invalidTo", ProviderRejectedNumber, 21211, NumberProblem.INVALID),
        ("400", "invalidParameter", ProviderRejectedNumber, 60200, NumberProblem.INVALID),
        ("400", "notMobile", ProviderRejectedNumber, 21614, NumberProblem.CANNOT_RECEIVE_SMS),
        ("403", "landline", ProviderRejectedNumber, 60205, NumberProblem.CANNOT_RECEIVE_SMS),
        ("400", "geoNotEnabled", ProviderRejectedNumber, 21408, NumberProblem.COUNTRY_NOT_ALLOWED),
        ("403", "geoBlocked", ProviderRejectedNumber, 60605, NumberProblem.COUNTRY_NOT_ALLOWED),
        ("401", "authFailed", ProviderMisconfigured, 20003, None),
        ("404", "serviceNotFound", ProviderMisconfigured, 20404, None),
        ("400", "trialUnverified", ProviderMisconfigured, 21608, None),
        ("400", "channelDisabled", ProviderMisconfigured, 60223, None),
        ("403", "fraudGuard", ProviderBlocked, 60410, None),
        ("403", "suspectedFraud", ProviderBlocked, 60412, None),
        ("429", "maxSendAttempts", ProviderRateLimited, 60203, None),
    ],
)
async def test_start_errors_are_mapped(
    prism_extended: Prism,
    status: str,
    example: str,
    error: type[ProviderError],
    code: int,
    problem: NumberProblem | None,
) -> None:
    prefer = f"code={status}, example={example}"
    async with adapter_for(prism_extended, prefer=prefer) as (adapter, exchanges):
        with pytest.raises(error) as caught:
            await adapter.start(start_request())

    assert type(caught.value) is error
    assert caught.value.provider_code == code
    assert exchanges.statuses == [int(status)], "only 20429 is retried"
    if problem is not None:
        assert isinstance(caught.value, ProviderRejectedNumber)
        assert caught.value.problem is problem
