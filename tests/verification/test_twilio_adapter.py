"""The Twilio Verify adapter over a real `httpx.AsyncClient`, Twilio mocked with respx.

Asserts what goes on the wire (path, Basic auth, form fields) and how every
answer Twilio can give is mapped: outcomes, the error table of the project's
Twilio notes, retries, and answers that are not Twilio's JSON.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.core.metrics import Metrics
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
    StartResult,
)
from app.services.verification.providers.twilio import TwilioCredentials, TwilioVerifyClient
from tests.helpers import KG_PHONE
from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CHECK_PATH,
    FIXTURES,
    SERVICE_SID,
    START_PATH,
    TWILIO_BASE_URL,
    VERIFICATION_SID,
    basic_auth,
    checked,
    form,
    started,
    twilio_error,
)

US_PHONE = "+14155552671"
CODE = "123456"
HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center></body></html>"
)


def recorded(name: str) -> dict[str, Any]:
    """A recorded Twilio error body from tests/fixtures/twilio/."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return body


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A real client, as the lifespan makes it; respx intercepts its transport."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=1.0)) as client:
        yield client


@pytest.fixture
def twilio_api() -> Iterator[respx.MockRouter]:
    """Twilio's API; a call to any unmocked route fails the test."""
    with respx.mock(base_url=TWILIO_BASE_URL, assert_all_called=False) as router:
        yield router


def make_client(
    http: httpx.AsyncClient, *, max_retries: int = 2, base_url: str = TWILIO_BASE_URL
) -> TwilioVerifyClient:
    return TwilioVerifyClient(
        http,
        TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID),
        base_url=base_url,
        max_retries=max_retries,
        retry_base_delay=0,
    )


@pytest.fixture
def adapter(http: httpx.AsyncClient) -> TwilioVerifyClient:
    return make_client(http)


def start_request(phone: str = KG_PHONE, **changes: Any) -> StartRequest:
    values: dict[str, Any] = {"phone": phone, "channel": "sms", "locale": "ru"}
    values.update(changes)
    return StartRequest(**values)


def check_request(code: str = CODE) -> CheckRequest:
    return CheckRequest(sid=VERIFICATION_SID, code=code)


# --- what goes on the wire ---------------------------------------------------------------


async def test_start_posts_the_form_to_verifications_with_basic_auth(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=started(KG_PHONE))

    result = await adapter.start(start_request())

    assert result == StartResult(sid=VERIFICATION_SID)
    assert route.call_count == 1
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url == f"{TWILIO_BASE_URL}{START_PATH}"
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {"To": KG_PHONE, "Channel": "sms", "Locale": "ru"}


async def test_requests_carry_the_clients_headers_and_timeouts(
    twilio_api: respx.MockRouter,
) -> None:
    route = twilio_api.post(CHECK_PATH).mock(return_value=checked("approved", KG_PHONE))
    timeout = httpx.Timeout(3.0, connect=0.5)
    headers = {"User-Agent": "phone-auth/test", "Accept": "application/json"}
    async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
        await make_client(client).check(check_request())

    request = route.calls.last.request
    assert request.headers["user-agent"] == "phone-auth/test"
    assert request.headers["accept"] == "application/json"
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert request.extensions["timeout"] == timeout.as_dict()


async def test_start_sends_device_ip_only_when_given(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=started(US_PHONE))

    await adapter.start(start_request(US_PHONE, locale="en", device_ip="203.0.113.7"))
    await adapter.start(start_request(US_PHONE, locale="en", device_ip=None))

    with_ip, without_ip = (form(call.request) for call in route.calls)
    assert with_ip == {"To": US_PHONE, "Channel": "sms", "Locale": "en", "DeviceIp": "203.0.113.7"}
    assert without_ip == {"To": US_PHONE, "Channel": "sms", "Locale": "en"}


@pytest.mark.parametrize("channel", ["sms", "whatsapp", "call"])
async def test_start_sends_the_requested_channel(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter, channel: str
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=started(KG_PHONE, channel=channel))

    await adapter.start(start_request(channel=channel))

    assert form(route.calls.last.request)["Channel"] == channel


async def test_base_url_with_trailing_slash_gives_the_same_path(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=started(KG_PHONE))

    await make_client(http, base_url=TWILIO_BASE_URL + "/").start(start_request())

    assert route.calls.last.request.url.path == START_PATH


async def test_check_posts_verification_sid_and_code_to_verification_check(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(CHECK_PATH).mock(return_value=checked("approved", KG_PHONE))

    outcome = await adapter.check(check_request())

    assert outcome is CheckOutcome.APPROVED
    request = route.calls.last.request
    assert request.url == f"{TWILIO_BASE_URL}{CHECK_PATH}"
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert form(request) == {"VerificationSid": VERIFICATION_SID, "Code": CODE}


async def test_a_check_without_a_sid_asks_by_number_and_without_either_asks_nothing(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    """A sent code whose sid was never stored is checked by the number it went to."""
    route = twilio_api.post(CHECK_PATH).mock(return_value=checked("approved", KG_PHONE))

    by_number = await adapter.check(CheckRequest(sid="", code=CODE, phone=KG_PHONE))
    unknown = await adapter.check(CheckRequest(sid="", code=CODE))

    assert by_number is CheckOutcome.APPROVED
    assert unknown is CheckOutcome.NOT_FOUND
    assert route.call_count == 1
    request = route.calls.last.request
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert form(request) == {"To": KG_PHONE, "Code": CODE}


# --- outcomes of a check ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(checked("approved", KG_PHONE), CheckOutcome.APPROVED, id="approved-200"),
        pytest.param(
            httpx.Response(
                201, json={"sid": VERIFICATION_SID, "status": "approved", "valid": True}
            ),
            CheckOutcome.APPROVED,
            id="approved-201",
        ),
        pytest.param(checked("pending", KG_PHONE), CheckOutcome.WRONG_CODE, id="pending"),
        pytest.param(twilio_error(20404, 404), CheckOutcome.NOT_FOUND, id="20404"),
        pytest.param(twilio_error(60202, 429), CheckOutcome.MAX_ATTEMPTS, id="60202"),
        pytest.param(
            httpx.Response(200, json={"status": "max_attempts_reached", "valid": False}),
            CheckOutcome.MAX_ATTEMPTS,
            id="status-max_attempts_reached",
        ),
        pytest.param(
            httpx.Response(200, json={"status": "expired", "valid": False}),
            CheckOutcome.NOT_FOUND,
            id="status-expired",
        ),
        pytest.param(
            httpx.Response(200, json={"status": "canceled", "valid": False}),
            CheckOutcome.NOT_FOUND,
            id="status-canceled",
        ),
        pytest.param(
            httpx.Response(200, json={"status": "approved", "valid": False}),
            CheckOutcome.NOT_FOUND,
            id="approved-but-not-valid-is-not-approved",
        ),
        pytest.param(twilio_error(60200, 400), CheckOutcome.WRONG_CODE, id="60200-code-length"),
    ],
)
async def test_check_outcomes(
    adapter: TwilioVerifyClient,
    twilio_api: respx.MockRouter,
    response: httpx.Response,
    expected: CheckOutcome,
) -> None:
    route = twilio_api.post(CHECK_PATH).mock(return_value=response)

    assert await adapter.check(check_request()) is expected
    assert route.call_count == 1


async def test_check_uses_recorded_20404_body(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(CHECK_PATH).mock(
        return_value=httpx.Response(404, json=recorded("error_20404_not_found"))
    )

    assert await adapter.check(check_request()) is CheckOutcome.NOT_FOUND


async def test_check_uses_recorded_60202_body(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(CHECK_PATH).mock(
        return_value=httpx.Response(429, json=recorded("error_60202_max_check_attempts"))
    )

    assert await adapter.check(check_request()) is CheckOutcome.MAX_ATTEMPTS


# --- the error table of start ------------------------------------------------------------

START_ERRORS: list[Any] = [
    # misconfiguration: an operator must act
    pytest.param(20003, 401, ProviderMisconfigured, None, id="20003-auth"),
    pytest.param(20404, 404, ProviderMisconfigured, None, id="20404-service-not-found"),
    pytest.param(21608, 400, ProviderMisconfigured, None, id="21608-trial"),
    pytest.param(60223, 400, ProviderMisconfigured, None, id="60223-channel-disabled"),
    # number problems
    pytest.param(21211, 400, ProviderRejectedNumber, NumberProblem.INVALID, id="21211-invalid-to"),
    pytest.param(60200, 400, ProviderRejectedNumber, NumberProblem.INVALID, id="60200-invalid-to"),
    pytest.param(
        21614, 400, ProviderRejectedNumber, NumberProblem.CANNOT_RECEIVE_SMS, id="21614-not-mobile"
    ),
    pytest.param(
        60205, 403, ProviderRejectedNumber, NumberProblem.CANNOT_RECEIVE_SMS, id="60205-landline"
    ),
    # geo permissions
    pytest.param(
        21408, 400, ProviderRejectedNumber, NumberProblem.COUNTRY_NOT_ALLOWED, id="21408-geo"
    ),
    pytest.param(
        60605, 403, ProviderRejectedNumber, NumberProblem.COUNTRY_NOT_ALLOWED, id="60605-geo"
    ),
    # fraud protection
    pytest.param(60410, 403, ProviderBlocked, None, id="60410-fraud-guard"),
    pytest.param(60412, 403, ProviderBlocked, None, id="60412-suspected-fraud"),
    # too many sends
    pytest.param(60203, 429, ProviderRateLimited, None, id="60203-max-sends"),
    pytest.param(60212, 429, ProviderRateLimited, None, id="60212-concurrent-for-number"),
]


@pytest.mark.parametrize(("code", "status", "error", "problem"), START_ERRORS)
async def test_start_maps_every_twilio_error_code(
    adapter: TwilioVerifyClient,
    twilio_api: respx.MockRouter,
    code: int,
    status: int,
    error: type[ProviderError],
    problem: NumberProblem | None,
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=twilio_error(code, status))

    with pytest.raises(error) as caught:
        await adapter.start(start_request())

    assert type(caught.value) is error
    assert caught.value.provider_code == code
    assert route.call_count == 1, "a Twilio error other than 20429 is never retried"
    if problem is not None:
        assert isinstance(caught.value, ProviderRejectedNumber)
        assert caught.value.problem is problem


@pytest.mark.parametrize(("code", "retry_after"), [(60203, 600), (60212, 5)])
async def test_send_limits_carry_a_retry_after(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter, code: int, retry_after: int
) -> None:
    twilio_api.post(START_PATH).mock(return_value=twilio_error(code, 429))

    with pytest.raises(ProviderRateLimited) as caught:
        await adapter.start(start_request())

    assert caught.value.retry_after == retry_after


async def test_start_uses_recorded_60203_body(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(START_PATH).mock(
        return_value=httpx.Response(429, json=recorded("error_60203_max_send_attempts"))
    )

    with pytest.raises(ProviderRateLimited) as caught:
        await adapter.start(start_request())

    assert caught.value.provider_code == 60203


async def test_unknown_twilio_error_on_start_is_a_refused_request(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(START_PATH).mock(return_value=twilio_error(12345, 400))

    with pytest.raises(ProviderRefusedRequest) as caught:
        await adapter.start(start_request())

    assert caught.value.provider_code == 12345


async def test_401_without_a_code_is_a_misconfiguration(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(START_PATH).mock(return_value=httpx.Response(401, json={"message": "no"}))

    with pytest.raises(ProviderMisconfigured):
        await adapter.start(start_request())


# --- the error table of check ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        pytest.param(20003, 401, ProviderMisconfigured, id="20003-auth"),
        pytest.param(60223, 400, ProviderMisconfigured, id="60223-channel-disabled"),
        pytest.param(21608, 400, ProviderMisconfigured, id="21608-trial"),
        pytest.param(60410, 403, ProviderRefusedRequest, id="60410-unexpected-on-check"),
        pytest.param(20500, 500, ProviderUnavailable, id="20500-internal"),
    ],
)
async def test_check_maps_twilio_errors(
    adapter: TwilioVerifyClient,
    twilio_api: respx.MockRouter,
    code: int,
    status: int,
    error: type[ProviderError],
) -> None:
    route = twilio_api.post(CHECK_PATH).mock(return_value=twilio_error(code, status))

    with pytest.raises(error) as caught:
        await adapter.check(check_request())

    assert type(caught.value) is error
    assert caught.value.provider_code == code
    assert route.call_count == 1


# --- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ConnectError("connection refused"), id="ConnectError"),
        pytest.param(httpx.ConnectTimeout("connect timed out"), id="ConnectTimeout"),
        pytest.param(httpx.PoolTimeout("no free connection"), id="PoolTimeout"),
    ],
)
@pytest.mark.parametrize("max_retries", [0, 1, 2])
async def test_connection_never_made_is_retried_at_most_max_retries_times(
    http: httpx.AsyncClient,
    twilio_api: respx.MockRouter,
    failure: Exception,
    max_retries: int,
) -> None:
    route = twilio_api.post(START_PATH).mock(side_effect=failure)

    with pytest.raises(ProviderUnavailable) as caught:
        await make_client(http, max_retries=max_retries).start(start_request())

    assert route.call_count == max_retries + 1
    assert isinstance(caught.value.__cause__, type(failure))
    assert caught.value.provider_code is None


async def test_connection_error_then_success_returns_the_sid(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(START_PATH).mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.ConnectTimeout("timed out"),
            started(KG_PHONE),
        ]
    )

    result = await adapter.start(start_request())

    assert result.sid == VERIFICATION_SID
    assert route.call_count == 3
    forms = [form(call.request) for call in route.calls]
    assert all(sent == forms[0] for sent in forms), "a retry sends the same request"
    assert all(basic_auth(call.request) == (ACCOUNT_SID, AUTH_TOKEN) for call in route.calls)


@pytest.mark.parametrize("max_retries", [0, 1, 2, 3])
async def test_20429_is_retried_at_most_max_retries_times_then_unavailable(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter, max_retries: int
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=twilio_error(20429, 429))

    with pytest.raises(ProviderUnavailable) as caught:
        await make_client(http, max_retries=max_retries).start(start_request())

    assert route.call_count == max_retries + 1
    assert caught.value.provider_code == 20429


async def test_20429_then_success(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(START_PATH).mock(
        side_effect=[twilio_error(20429, 429), started(KG_PHONE)]
    )

    assert (await adapter.start(start_request())).sid == VERIFICATION_SID
    assert route.call_count == 2


async def test_20429_on_check_is_retried_then_answers(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(CHECK_PATH).mock(
        side_effect=[twilio_error(20429, 429), checked("approved", KG_PHONE)]
    )

    assert await adapter.check(check_request()) is CheckOutcome.APPROVED
    assert route.call_count == 2


@pytest.mark.parametrize(
    ("jitters", "expected"),
    [
        # base 0.1 s, doubled per retry, times (0.5 + jitter): jitter in [0, 1).
        pytest.param([0.0, 0.0, 0.0], [0.05, 0.1, 0.2], id="least"),
        pytest.param([0.5, 0.5, 0.5], [0.1, 0.2, 0.4], id="middle"),
        pytest.param([0.25, 0.999, 0.0], [0.075, 0.2998, 0.2], id="mixed"),
    ],
)
async def test_retries_back_off_with_jitter(
    http: httpx.AsyncClient,
    twilio_api: respx.MockRouter,
    jitters: list[float],
    expected: list[float],
) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    route = twilio_api.post(START_PATH).mock(side_effect=httpx.ConnectError("refused"))
    client = TwilioVerifyClient(
        http,
        TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID),
        base_url=TWILIO_BASE_URL,
        max_retries=3,
        retry_base_delay=0.1,
        sleep=sleep,
        jitter=iter(jitters).__next__,
    )

    with pytest.raises(ProviderUnavailable) as caught:
        await client.start(start_request())

    assert route.call_count == 4
    assert delays == pytest.approx(expected)
    assert caught.value.reason == "start: connection not made (ConnectError) after 4 attempts"


async def test_no_sleep_after_the_last_attempt_or_a_success(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    route = twilio_api.post(START_PATH).mock(
        side_effect=[httpx.ConnectError("refused"), started(KG_PHONE)]
    )
    client = TwilioVerifyClient(
        http,
        TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID),
        base_url=TWILIO_BASE_URL,
        max_retries=2,
        retry_base_delay=0.1,
        sleep=sleep,
        jitter=lambda: 0.5,
    )

    assert (await client.start(start_request())).sid == VERIFICATION_SID
    assert route.call_count == 2
    assert delays == pytest.approx([0.1])


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ReadTimeout("read timed out"), id="ReadTimeout"),
        pytest.param(httpx.WriteTimeout("write timed out"), id="WriteTimeout"),
        pytest.param(httpx.ReadError("connection reset"), id="ReadError"),
        pytest.param(httpx.RemoteProtocolError("server disconnected"), id="RemoteProtocolError"),
    ],
)
async def test_failure_after_the_request_left_is_never_retried(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter, failure: Exception
) -> None:
    route = twilio_api.post(START_PATH).mock(side_effect=failure)

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.start(start_request())

    assert route.call_count == 1
    assert caught.value.__cause__ is failure


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_never_retried(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter, status: int
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=twilio_error(20500, status))

    with pytest.raises(ProviderUnavailable):
        await adapter.start(start_request())

    assert route.call_count == 1


async def test_5xx_on_check_is_never_retried(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(CHECK_PATH).mock(return_value=twilio_error(20500, 503))

    with pytest.raises(ProviderUnavailable):
        await adapter.check(check_request())

    assert route.call_count == 1


@pytest.mark.parametrize("code", [60410, 60412])
async def test_fraud_blocks_are_never_retried(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter, code: int
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=twilio_error(code, 429))

    with pytest.raises(ProviderBlocked):
        await adapter.start(start_request())

    assert route.call_count == 1


async def test_429_with_another_code_is_not_retried(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=twilio_error(60203, 429))

    with pytest.raises(ProviderRateLimited):
        await adapter.start(start_request())

    assert route.call_count == 1


# --- answers that are not Twilio's JSON ---------------------------------------------------

NOT_JSON = "start: HTTP 201 with a body that is not JSON"
NOT_OBJECT = "start: HTTP 201 with a JSON body not an object"
NO_SID = "start answer has no verification sid"
NO_STATUS = "check answer has no status"


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        pytest.param(httpx.Response(201, text="not json"), NOT_JSON, id="201-not-json"),
        pytest.param(httpx.Response(201, content=b""), NOT_JSON, id="201-empty"),
        pytest.param(
            httpx.Response(201, content=b"\xff\xfe\x00garbage"), NOT_JSON, id="201-not-utf8"
        ),
        pytest.param(
            httpx.Response(201, json=[{"sid": VERIFICATION_SID}]), NOT_OBJECT, id="201-json-list"
        ),
        pytest.param(httpx.Response(201, json="VE123"), NOT_OBJECT, id="201-json-string"),
        pytest.param(httpx.Response(201, json=None), NOT_JSON, id="201-json-null"),
        pytest.param(
            httpx.Response(502, text=HTML_502, headers={"content-type": "text/html"}),
            "start: HTTP 502 with a body that is not JSON",
            id="502-html",
        ),
        pytest.param(httpx.Response(201, json={"status": "pending"}), NO_SID, id="201-without-sid"),
        pytest.param(httpx.Response(201, json={"sid": ""}), NO_SID, id="201-empty-sid"),
        pytest.param(httpx.Response(201, json={"sid": 12345}), NO_SID, id="201-sid-not-a-string"),
    ],
)
async def test_start_answer_that_is_not_twilios_json_is_unavailable(
    adapter: TwilioVerifyClient,
    twilio_api: respx.MockRouter,
    response: httpx.Response,
    reason: str,
) -> None:
    """The reason, which the failure's log line ends with, says what was wrong."""
    route = twilio_api.post(START_PATH).mock(return_value=response)

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.start(start_request())

    assert caught.value.reason == reason
    assert route.call_count == 1


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        pytest.param(
            httpx.Response(200, text="<html>ok</html>"),
            "check: HTTP 200 with a body that is not JSON",
            id="200-html",
        ),
        pytest.param(
            httpx.Response(200, json=["approved"]),
            "check: HTTP 200 with a JSON body not an object",
            id="200-json-list",
        ),
        pytest.param(httpx.Response(200, json={"valid": True}), NO_STATUS, id="200-without-status"),
        pytest.param(
            httpx.Response(200, json={"status": 1}), NO_STATUS, id="200-status-not-a-string"
        ),
        pytest.param(
            httpx.Response(502, text=HTML_502),
            "check: HTTP 502 with a body that is not JSON",
            id="502-html",
        ),
    ],
)
async def test_check_answer_that_is_not_twilios_json_is_unavailable(
    adapter: TwilioVerifyClient,
    twilio_api: respx.MockRouter,
    response: httpx.Response,
    reason: str,
) -> None:
    twilio_api.post(CHECK_PATH).mock(return_value=response)

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.check(check_request())

    assert caught.value.reason == reason


async def test_non_json_answer_keeps_the_decoding_error_as_cause(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(START_PATH).mock(return_value=httpx.Response(502, text=HTML_502))

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.start(start_request())

    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(429, json={"message": "slow down"}), id="429-without-code"),
        pytest.param(httpx.Response(400, text="Bad Request"), id="400-not-json"),
        pytest.param(httpx.Response(403, json=["refused"]), id="403-json-list"),
    ],
)
async def test_unmapped_4xx_answer_is_a_refused_request(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter, response: httpx.Response
) -> None:
    route = twilio_api.post(START_PATH).mock(return_value=response)

    with pytest.raises(ProviderRefusedRequest):
        await adapter.start(start_request())

    assert route.call_count == 1


async def test_error_code_that_is_a_bool_is_not_a_code(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(START_PATH).mock(
        return_value=httpx.Response(400, json={"code": True, "status": 400})
    )

    with pytest.raises(ProviderRefusedRequest) as caught:
        await adapter.start(start_request())

    assert caught.value.provider_code is None


# --- nothing personal in logs or reasons ----------------------------------------------------


async def test_twilio_message_and_raw_phone_stay_out_of_logs_and_reasons(
    adapter: TwilioVerifyClient,
    twilio_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    twilio_api.post(START_PATH).mock(
        return_value=twilio_error(21211, 400, f"The 'To' number {KG_PHONE} is not valid.")
    )
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ProviderRejectedNumber) as caught:
        await adapter.start(start_request())

    assert KG_PHONE not in caught.value.reason
    assert KG_PHONE not in caplog.text
    assert AUTH_TOKEN not in caplog.text


def test_recorded_fixtures_are_twilio_error_bodies() -> None:
    for path in sorted(Path(FIXTURES).glob("error_*.json")):
        body = json.loads(path.read_text())
        assert set(body) == {"code", "message", "more_info", "status"}, path.name
        assert isinstance(body["code"], int)
        assert body["more_info"].endswith(str(body["code"]))


# --- what is measured ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        pytest.param(httpx.Response(500, json={"code": 20500}), "500", "20500", id="coded-5xx"),
        pytest.param(httpx.Response(503, json={"message": "down"}), "503", "503", id="uncoded-5xx"),
        pytest.param(httpx.Response(502, text="Bad Gateway"), "502", "not_json", id="not-json"),
        pytest.param(httpx.Response(502, json=["x"]), "502", "not_json", id="not-an-object"),
        pytest.param(httpx.Response(400, json={"code": 60999}), "400", "60999", id="coded-400"),
        pytest.param(httpx.ConnectError("refused"), "error", "ConnectError", id="no-connection"),
        pytest.param(httpx.ReadTimeout("slow"), "error", "ReadTimeout", id="read-timeout"),
        pytest.param(
            httpx.RemoteProtocolError("peer closed"),
            "error",
            "RemoteProtocolError",
            id="protocol-error",
        ),
    ],
)
async def test_each_call_is_timed_and_its_failure_counted_under_both_names(
    http: httpx.AsyncClient,
    twilio_api: respx.MockRouter,
    answer: httpx.Response | Exception,
    status: str,
    error: str,
) -> None:
    """One observation per call: by operation and status in Twilio's own families, by
    provider too in the shared ones; a duration of this call, not of the clock."""
    twilio_api.post(START_PATH).mock(return_value=started(KG_PHONE))
    twilio_api.post(CHECK_PATH).mock(side_effect=[answer])
    metrics = Metrics()
    client = TwilioVerifyClient(
        http,
        TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID),
        base_url=TWILIO_BASE_URL,
        max_retries=0,
        metrics=metrics,
    )
    began = time.perf_counter()
    await client.start(start_request())
    with pytest.raises(ProviderError):
        await client.check(check_request())
    took = time.perf_counter() - began

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    twilio, provider = "phone_auth_twilio_", "phone_auth_provider_"
    for prefix, by in ((twilio, {}), (provider, {"provider": "twilio"})):
        for operation, answered in (("start", "201"), ("check", status)):
            timed = {**by, "operation": operation, "status": answered}
            assert value(f"{prefix}request_duration_seconds_count", **timed) == 1
            assert 0 < (value(f"{prefix}request_duration_seconds_sum", **timed) or 0) <= took
        errors = f"{prefix}errors_total"
        assert value(errors, **by, operation="check", code=error) == 1
        assert value(errors, **by, operation="start", code="201") is None


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        pytest.param(httpx.ReadTimeout("slow"), "check: timed out (ReadTimeout)", id="timeout"),
        pytest.param(
            httpx.RemoteProtocolError("peer closed"), "check: RemoteProtocolError", id="protocol"
        ),
    ],
)
async def test_a_check_that_failed_after_leaving_names_the_failure(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter, failure: Exception, reason: str
) -> None:
    twilio_api.post(CHECK_PATH).mock(side_effect=failure)

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter.check(check_request())

    assert caught.value.reason == reason
    assert caught.value.__cause__ is failure


async def test_a_start_answered_200_with_a_sid_is_started(
    adapter: TwilioVerifyClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(START_PATH).mock(return_value=httpx.Response(200, json={"sid": "VE1"}))

    assert await adapter.start(start_request()) == StartResult(sid="VE1")


async def test_20429_retries_end_with_a_reason_that_names_it(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.post(CHECK_PATH).mock(return_value=twilio_error(20429, 429))

    with pytest.raises(ProviderUnavailable) as caught:
        await make_client(http).check(check_request())

    assert (
        caught.value.reason == "check: Twilio 20429 too many concurrent requests after 3 attempts"
    )
