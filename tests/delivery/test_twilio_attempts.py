"""The Twilio adapter's attempts list (GET /v2/Attempts) over a real client, Twilio
mocked with respx: what goes on the wire, how the answer is read, how failures map."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from app.core.metrics import Metrics
from app.services.verification.exceptions import (
    ProviderMisconfigured,
    ProviderRefusedRequest,
    ProviderUnavailable,
)
from app.services.verification.providers.attempts import ReportedAttempt
from app.services.verification.providers.base import StartRequest
from app.services.verification.providers.twilio import TwilioCredentials, TwilioVerifyClient
from tests.delivery.support import (
    ATTEMPTS_PATH,
    EXAMPLE_TO,
    FakeAttempts,
    at,
    attempt,
    attempt_sid,
    page_answer,
    verification_sid,
)
from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SERVICE_SID,
    TWILIO_BASE_URL,
    basic_auth,
    load,
    twilio_error,
)

SINCE = at("2026-11-30T11:30:00Z")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=1.0)) as client:
        yield client


@pytest.fixture
def twilio_api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=TWILIO_BASE_URL, assert_all_called=False) as router:
        yield router


class Sleeps:
    """The adapter's back-off waits, recorded instead of slept."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def adapter(http: httpx.AsyncClient, sleeps: Sleeps | None = None) -> TwilioVerifyClient:
    return TwilioVerifyClient(
        http,
        TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID),
        base_url=TWILIO_BASE_URL,
        max_retries=2,
        sleep=sleeps or Sleeps(),
        jitter=lambda: 0.5,
    )


async def test_the_recorded_answer_is_read_into_an_attempt(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.get(ATTEMPTS_PATH).mock(httpx.Response(200, json=load("attempts_list")))

    page = await adapter(http).list_attempts(SINCE, page_size=50)

    assert page.attempts == (
        ReportedAttempt(
            sid="VLaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            verification_sid="VEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            channel="sms",
            created_at=at("2020-08-11T18:36:59Z"),
            updated_at=at("2020-08-11T18:37:00Z"),
            converted=False,
            delivery_status="undelivered",
            delivery_error_code="30008",
            price_micros=5000,
            price_currency="USD",
            country="CO",
        ),
    )
    assert page.next_page is None


async def test_the_request_filters_by_our_service_and_creation_time_with_basic_auth(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.get(ATTEMPTS_PATH).mock(page_answer([]))

    await adapter(http).list_attempts(SINCE, page_size=100)

    request = route.calls.last.request
    assert request.method == "GET"
    assert request.url.path == "/v2/Attempts"
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert parse_qs(request.url.query.decode()) == {
        "VerifyServiceSid": [SERVICE_SID],
        "DateCreatedAfter": ["2026-11-30T11:30:00Z"],
        "PageSize": ["100"],
    }
    assert request.content == b""
    assert "content-type" not in request.headers


async def test_pages_follow_the_page_token_of_next_page_url(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    fake = FakeAttempts()
    fake.add(
        *(
            attempt(attempt_sid(n), verification_sid(n), SINCE + timedelta(minutes=n))
            for n in range(1, 6)
        )
    )
    twilio_api.get(ATTEMPTS_PATH).mock(side_effect=fake)
    client = adapter(http)

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):  # three pages; a cursor that is not followed would never end
        page = await client.list_attempts(SINCE, page_size=2, page=cursor)
        seen += [item.sid for item in page.attempts]
        if page.next_page is None:
            break
        cursor = page.next_page

    assert seen == [attempt_sid(n) for n in (5, 4, 3, 2, 1)]
    tokens = [params.get("PageToken") for params in fake.params()]
    assert tokens == [None, "2", "4"]
    # Every page keeps the filters: the token only says where in the list to go on.
    for params in fake.params():
        assert params["VerifyServiceSid"] == SERVICE_SID
        assert params["DateCreatedAfter"] == "2026-11-30T11:30:00Z"
        assert params["PageSize"] == "2"


async def test_an_unreadable_attempt_is_skipped_with_a_warning_that_shows_no_number(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    good = attempt(attempt_sid(1), verification_sid(1), SINCE, to=EXAMPLE_TO)
    no_date = attempt(attempt_sid(2), verification_sid(2), SINCE, to=EXAMPLE_TO)
    del no_date["date_created"]
    bad_price = attempt(
        attempt_sid(3), verification_sid(3), SINCE, to=EXAMPLE_TO, price={"value": "lots"}
    )
    twilio_api.get(ATTEMPTS_PATH).mock(page_answer([good, no_date, bad_price, "junk"]))  # type: ignore[list-item]

    with caplog.at_level(logging.WARNING):
        page = await adapter(http).list_attempts(SINCE, page_size=50)

    assert [item.sid for item in page.attempts] == [attempt_sid(1)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"Twilio attempt {attempt_sid(2)} skipped: date_created is missing" in warnings
    assert f"Twilio attempt {attempt_sid(3)} skipped: price.value is not a number" in warnings
    assert "Twilio attempt ? skipped: not a JSON object" in warnings
    assert EXAMPLE_TO[1:] not in caplog.text


@pytest.mark.parametrize(
    ("price", "micros", "currency"),
    [
        ({"value": "0.005", "currency": "usd"}, 5000, "USD"),
        ({"value": "0.0575", "currency": "USD"}, 57500, "USD"),
        ({"value": 0.15, "currency": "eur"}, 150000, "EUR"),
        ({"value": None, "currency": "usd"}, None, None),
    ],
)
async def test_prices_are_stored_in_micros_with_an_upper_case_currency(
    http: httpx.AsyncClient,
    twilio_api: respx.MockRouter,
    price: dict[str, object],
    micros: int | None,
    currency: str | None,
) -> None:
    item = attempt(attempt_sid(1), verification_sid(1), SINCE, price=price)
    twilio_api.get(ATTEMPTS_PATH).mock(page_answer([item]))

    (read,) = (await adapter(http).list_attempts(SINCE, page_size=50)).attempts

    assert (read.price_micros, read.price_currency) == (micros, currency)


@pytest.mark.parametrize(
    "written",
    ["2026-11-30T11:45:10Z", "2026-11-30T11:45:10+00:00", "Mon, 30 Nov 2026 11:45:10 +0000"],
)
async def test_creation_times_are_read_as_utc(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter, written: str
) -> None:
    item = attempt(attempt_sid(1), verification_sid(1), SINCE)
    item["date_created"] = written
    twilio_api.get(ATTEMPTS_PATH).mock(page_answer([item]))

    (read,) = (await adapter(http).list_attempts(SINCE, page_size=50)).attempts

    assert read.created_at == at("2026-11-30T11:45:10Z")


async def test_each_list_call_is_measured_as_list_attempts(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.get(ATTEMPTS_PATH).mock(
        side_effect=[page_answer([]), twilio_error(20003, 401, "Authenticate")]
    )
    metrics = Metrics()
    client = TwilioVerifyClient(
        http,
        TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID),
        base_url=TWILIO_BASE_URL,
        metrics=metrics,
    )

    await client.list_attempts(SINCE, page_size=50)
    with pytest.raises(ProviderMisconfigured):
        await client.list_attempts(SINCE, page_size=50)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"provider": "twilio", **labels})

    duration = "phone_auth_provider_request_duration_seconds_count"
    assert sample(duration, operation="list_attempts", status="200") == 1
    assert sample(duration, operation="list_attempts", status="401") == 1
    errors = "phone_auth_provider_errors_total"
    assert sample(errors, operation="list_attempts", code="20003") == 1


async def test_an_attempt_not_yet_priced_or_delivered_has_none(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    item = attempt(attempt_sid(1), verification_sid(1), SINCE, message_status=None)
    item["price"] = None
    item["conversion_status"] = "unconverted"
    twilio_api.get(ATTEMPTS_PATH).mock(page_answer([item]))

    (read,) = (await adapter(http).list_attempts(SINCE, page_size=50)).attempts

    assert read.price_micros is None
    assert read.price_currency is None
    assert read.delivery_status is None
    assert read.converted is False


@pytest.mark.parametrize("status", [401, 403])
async def test_bad_credentials_are_misconfiguration_and_not_retried(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter, status: int
) -> None:
    route = twilio_api.get(ATTEMPTS_PATH).mock(twilio_error(20003, status, "Authenticate"))

    with pytest.raises(ProviderMisconfigured) as caught:
        await adapter(http).list_attempts(SINCE, page_size=50)

    assert caught.value.provider_code == 20003
    assert caught.value.reason == f"list_attempts: HTTP {status}, Twilio code 20003"
    assert route.call_count == 1


async def test_a_refused_request_is_not_retried(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.get(ATTEMPTS_PATH).mock(twilio_error(20001, 400, "Invalid PageSize"))

    with pytest.raises(ProviderRefusedRequest) as caught:
        await adapter(http).list_attempts(SINCE, page_size=50)

    assert caught.value.provider_code == 20001
    assert caught.value.reason == "list_attempts: HTTP 400, Twilio code 20001"
    assert route.call_count == 1


async def test_a_5xx_is_retried_then_unavailable(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.get(ATTEMPTS_PATH).mock(twilio_error(20500, 500, "Internal"))
    sleeps = Sleeps()

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter(http, sleeps).list_attempts(SINCE, page_size=50)

    assert route.call_count == 3
    assert caught.value.provider_code == 20500
    assert "after 3 attempts" in caught.value.reason
    assert sleeps.delays == [0.2, 0.4]


async def test_a_5xx_then_an_answer_is_the_answer(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.get(ATTEMPTS_PATH).mock(
        side_effect=[httpx.Response(503, text="<html>busy</html>"), page_answer([])]
    )

    page = await adapter(http).list_attempts(SINCE, page_size=50)

    assert page.attempts == ()
    assert route.call_count == 2


async def test_a_timeout_is_retried_then_unavailable(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.get(ATTEMPTS_PATH).mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter(http).list_attempts(SINCE, page_size=50)

    assert route.call_count == 3
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


async def test_a_start_that_timed_out_is_still_not_retried(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    """Only the list is idempotent: a start may have sent its SMS."""
    route = twilio_api.post(f"/v2/Services/{SERVICE_SID}/Verifications").mock(
        side_effect=httpx.ReadTimeout("slow")
    )

    with pytest.raises(ProviderUnavailable):
        await adapter(http).start(StartRequest(phone="+996555123456", channel="sms", locale="ru"))

    assert route.call_count == 1


async def test_an_answer_without_an_attempts_list_is_unavailable(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.get(ATTEMPTS_PATH).mock(httpx.Response(200, json={"meta": {}}))

    with pytest.raises(ProviderUnavailable):
        await adapter(http).list_attempts(SINCE, page_size=50)


async def test_the_list_carries_the_clients_headers_and_timeouts(
    twilio_api: respx.MockRouter,
) -> None:
    route = twilio_api.get(ATTEMPTS_PATH).mock(page_answer([]))
    timeout = httpx.Timeout(3.0, connect=0.5)
    headers = {"User-Agent": "phone-auth/test", "Accept": "application/json"}
    async with httpx.AsyncClient(timeout=timeout, headers=headers) as client:
        await adapter(client).list_attempts(SINCE, page_size=50)

    request = route.calls.last.request
    assert request.headers["user-agent"] == "phone-auth/test"
    assert request.headers["accept"] == "application/json"
    assert basic_auth(request) == (ACCOUNT_SID, AUTH_TOKEN)
    assert request.extensions["timeout"] == timeout.as_dict()


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        pytest.param(
            twilio_error(20500, 500, "Internal"),
            "list_attempts: HTTP 500, Twilio code 20500 after 3 attempts",
            id="5xx",
        ),
        pytest.param(
            httpx.Response(500, text="<html>busy</html>"),
            "list_attempts: HTTP 500 with a body that is not JSON after 3 attempts",
            id="5xx-not-json",
        ),
        pytest.param(
            httpx.ReadTimeout("slow"),
            "list_attempts: timed out (ReadTimeout) after 3 attempts",
            id="read-timeout",
        ),
        pytest.param(
            httpx.RemoteProtocolError("peer closed"),
            "list_attempts: RemoteProtocolError after 3 attempts",
            id="protocol-error",
        ),
        pytest.param(
            httpx.ConnectError("refused"),
            "list_attempts: connection not made (ConnectError) after 3 attempts",
            id="no-connection",
        ),
    ],
)
async def test_every_failure_of_the_list_is_retried_and_the_reason_says_which(
    http: httpx.AsyncClient,
    twilio_api: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
    failure: httpx.Response | Exception,
    reason: str,
) -> None:
    """A GET changes nothing at Twilio: any failure is tried again, twice, and the last
    one is the reason of the 503-mapped error, as a retry's warning says each time."""
    caplog.set_level(logging.WARNING)
    route = twilio_api.get(ATTEMPTS_PATH).mock(side_effect=[failure] * 3 + [page_answer([])])
    sleeps = Sleeps()

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter(http, sleeps).list_attempts(SINCE, page_size=50)
    page = await adapter(http).list_attempts(SINCE, page_size=50)

    assert caught.value.reason == reason
    if isinstance(failure, Exception):
        assert caught.value.__cause__ is failure
    elif "not JSON" in reason:
        assert isinstance(caught.value.__cause__, ValueError)
    assert route.call_count == 4
    assert sleeps.delays == [0.2, 0.4]
    assert page.attempts == ()
    why = reason.removeprefix("list_attempts: ").removesuffix(" after 3 attempts")
    retried = [r.getMessage() for r in caplog.records if r.name.endswith("twilio")]
    assert retried == [
        f"Twilio list_attempts: {why}; retrying in 0.20s",
        f"Twilio list_attempts: {why}; retrying in 0.40s",
    ]


async def test_an_answer_without_an_attempts_list_says_so(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    twilio_api.get(ATTEMPTS_PATH).mock(httpx.Response(200, json={"attempts": {}, "meta": {}}))

    with pytest.raises(ProviderUnavailable) as caught:
        await adapter(http).list_attempts(SINCE, page_size=50)

    assert caught.value.reason == "list_attempts answer has no attempts list"


@pytest.fixture
def host_in_bishkek(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is UTC+6 for the test."""
    monkeypatch.setenv("TZ", "Asia/Bishkek")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("host_in_bishkek")
async def test_the_creation_filter_is_gmt_whatever_the_hosts_time_zone(
    http: httpx.AsyncClient, twilio_api: respx.MockRouter
) -> None:
    route = twilio_api.get(ATTEMPTS_PATH).mock(page_answer([]))
    in_bishkek = datetime(2026, 11, 30, 17, 30, tzinfo=timezone(timedelta(hours=6)))

    await adapter(http).list_attempts(in_bishkek, page_size=50)

    query = parse_qs(route.calls.last.request.url.query.decode())
    assert query["DateCreatedAfter"] == ["2026-11-30T11:30:00Z"]


@pytest.mark.parametrize(
    "base_url",
    ["https://verify.twilio.com/", "https://gateway.example/TWILIOX"],
    ids=["trailing-slash", "path-ending-in-x"],
)
async def test_the_list_and_the_start_go_under_the_base_url_as_given(
    http: httpx.AsyncClient, base_url: str
) -> None:
    """One slash between the base URL and Twilio's paths, and nothing else taken off."""
    root = base_url.removesuffix("/")
    with respx.mock(assert_all_called=True) as router:
        router.get(f"{root}/v2/Attempts").mock(page_answer([]))
        router.post(f"{root}/v2/Services/{SERVICE_SID}/Verifications").mock(
            httpx.Response(201, json={"sid": "VE1"})
        )
        client = TwilioVerifyClient(
            http, TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID), base_url=base_url
        )
        await client.list_attempts(SINCE, page_size=50)
        await client.start(StartRequest(phone="+996555123456", channel="sms", locale="ru"))
