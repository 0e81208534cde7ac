"""The Vonage Verify v2 adapter over a real `httpx.AsyncClient`, Vonage mocked with respx.

Asserts what goes on the wire (path, Basic auth, JSON body) and how each answer
Vonage documents is mapped (the recorded bodies of tests/fixtures/vonage/).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from app.services.verification.exceptions import (
    NumberProblem,
    ProviderBlocked,
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
from app.services.verification.providers.vonage import (
    VonageCredentials,
    VonageVerifyClient,
    vonage_locale,
)
from tests.helpers import KG_PHONE
from tests.twilio_fixtures import basic_auth
from tests.vonage_fixtures import (
    API_KEY,
    API_SECRET,
    BRAND,
    REQUEST_ID,
    REQUEST_PATH,
    START_PATH,
    VONAGE_BASE_URL,
    StatefulVonage,
    answer,
    completed,
    payload,
    started,
)

US_PHONE = "+14155552671"
CODE = "123456"
OLDER_ID = "575a2054-aaaf-4405-994e-290be7b9a91f"
CHECK_URL = f"{VONAGE_BASE_URL}/v2/verify/{REQUEST_ID}"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A real client, as the lifespan makes it; respx intercepts its transport."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=1.0)) as client:
        yield client


@pytest.fixture
def vonage_api() -> Iterator[respx.MockRouter]:
    """Vonage's API; a call to any unmocked route fails the test."""
    with respx.mock(base_url=VONAGE_BASE_URL, assert_all_called=False) as router:
        yield router


def make_client(
    http: httpx.AsyncClient, *, max_retries: int = 2, whatsapp_from: str | None = None
) -> VonageVerifyClient:
    return VonageVerifyClient(
        http,
        VonageCredentials(API_KEY, API_SECRET),
        brand=BRAND,
        code_length=6,
        base_url=VONAGE_BASE_URL,
        max_retries=max_retries,
        retry_base_delay=0,
        whatsapp_from=whatsapp_from,
    )


@pytest.fixture
def adapter(http: httpx.AsyncClient) -> VonageVerifyClient:
    return make_client(http)


def start_request(phone: str = KG_PHONE, **changes: Any) -> StartRequest:
    values: dict[str, Any] = {"phone": phone, "channel": "sms", "locale": "ru"}
    values.update(changes)
    return StartRequest(**values)


def check_request(code: str = CODE, sid: str = REQUEST_ID) -> CheckRequest:
    return CheckRequest(sid=sid, code=code)


# --- what goes on the wire ---------------------------------------------------------------


async def test_start_posts_json_to_v2_verify_with_basic_auth(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    route = vonage_api.post(START_PATH).mock(return_value=started())

    result = await adapter.start(start_request())

    assert result == StartResult(sid=REQUEST_ID, provider="vonage")
    request = route.calls.last.request
    assert request.method == "POST"
    assert request.url == f"{VONAGE_BASE_URL}/v2/verify"
    assert basic_auth(request) == (API_KEY, API_SECRET)
    assert payload(request) == {
        "brand": BRAND,
        "code_length": 6,
        "locale": "ru-ru",
        "workflow": [{"channel": "sms", "to": KG_PHONE.removeprefix("+")}],
    }


@pytest.mark.parametrize("base_url", ["https://proxy.test/vonage", "https://proxy.test/vonage/"])
async def test_the_urls_go_under_the_base_url_as_given(
    http: httpx.AsyncClient, base_url: str
) -> None:
    with respx.mock(base_url="https://proxy.test/vonage", assert_all_called=True) as proxy:
        start = proxy.post("/v2/verify").mock(return_value=started())
        check = proxy.post(f"/v2/verify/{REQUEST_ID}").mock(return_value=completed())
        cancel = proxy.delete(f"/v2/verify/{REQUEST_ID}").mock(return_value=httpx.Response(204))
        adapter = VonageVerifyClient(
            http,
            VonageCredentials(API_KEY, API_SECRET),
            brand=BRAND,
            code_length=6,
            base_url=base_url,
        )
        await adapter.start(start_request())
        await adapter.check(check_request())
        await adapter.cancel(REQUEST_ID)
    assert start.calls.last.request.url == "https://proxy.test/vonage/v2/verify"
    assert check.calls.last.request.url == f"https://proxy.test/vonage/v2/verify/{REQUEST_ID}"
    assert cancel.call_count == 1


async def test_an_app_hash_goes_with_the_sms_step(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    route = vonage_api.post(START_PATH).mock(return_value=started())

    await adapter.start(start_request(app_hash="FA+9qCX9VSu"))

    assert payload(route.calls.last.request)["workflow"] == [
        {"channel": "sms", "to": KG_PHONE.removeprefix("+"), "app_hash": "FA+9qCX9VSu"}
    ]


@pytest.mark.parametrize(
    ("channel", "sent"), [("sms", "sms"), ("whatsapp", "whatsapp"), ("call", "voice")]
)
async def test_channels_are_vonages_names(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter, channel: str, sent: str
) -> None:
    route = vonage_api.post(START_PATH).mock(return_value=started())
    await adapter.start(start_request(US_PHONE, channel=channel, locale="en"))
    body = payload(route.calls.last.request)
    assert body["workflow"] == [{"channel": sent, "to": "14155552671"}]
    assert body["locale"] == "en-us"


async def test_a_whatsapp_step_comes_from_the_business_number(
    http: httpx.AsyncClient, vonage_api: respx.MockRouter
) -> None:
    route = vonage_api.post(START_PATH).mock(return_value=started())
    adapter = make_client(http, whatsapp_from="+996700000000")

    await adapter.start(start_request(channel="whatsapp"))
    await adapter.start(start_request(channel="sms"))

    first, second = (payload(call.request)["workflow"] for call in route.calls)
    assert first == [
        {"channel": "whatsapp", "to": KG_PHONE.removeprefix("+"), "from": "996700000000"}
    ]
    assert second == [{"channel": "sms", "to": KG_PHONE.removeprefix("+")}]


def test_locales_are_language_and_region() -> None:
    assert vonage_locale("ru") == "ru-ru"
    assert vonage_locale("EN") == "en-us"
    assert vonage_locale("es-MX") == "es-mx"
    assert vonage_locale("xx") is None  # Vonage's default, rather than a locale it refuses


async def test_unknown_language_sends_no_locale(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    route = vonage_api.post(START_PATH).mock(return_value=started())
    await adapter.start(start_request(locale="ky"))
    assert "locale" not in payload(route.calls.last.request)


async def test_check_posts_the_code_to_the_request(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    route = vonage_api.post(path__regex=REQUEST_PATH).mock(return_value=completed())

    assert await adapter.check(check_request()) is CheckOutcome.APPROVED

    request = route.calls.last.request
    assert request.url == CHECK_URL
    assert basic_auth(request) == (API_KEY, API_SECRET)
    assert payload(request) == {"code": CODE}


async def test_cancel_deletes_the_request(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    route = vonage_api.delete(path__regex=REQUEST_PATH).mock(return_value=httpx.Response(204))
    await adapter.cancel(REQUEST_ID)
    request = route.calls.last.request
    assert request.method == "DELETE"
    assert request.url == CHECK_URL
    assert basic_auth(request) == (API_KEY, API_SECRET)
    assert request.content == b""


async def test_cancel_of_a_request_already_over_is_fine(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    vonage_api.delete(path__regex=REQUEST_PATH).mock(
        return_value=answer("error_404_not_found", 404)
    )
    await adapter.cancel(REQUEST_ID)


# --- check outcomes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recorded", "status", "outcome"),
    [
        ("check_200_completed", 200, CheckOutcome.APPROVED),
        ("error_400_invalid_code", 400, CheckOutcome.WRONG_CODE),
        ("error_404_not_found", 404, CheckOutcome.NOT_FOUND),
        ("error_409_code_not_supported", 409, CheckOutcome.NOT_FOUND),
        ("error_410_too_many_attempts", 410, CheckOutcome.MAX_ATTEMPTS),
    ],
)
async def test_check_maps_each_documented_answer(
    adapter: VonageVerifyClient,
    vonage_api: respx.MockRouter,
    recorded: str,
    status: int,
    outcome: CheckOutcome,
) -> None:
    vonage_api.post(path__regex=REQUEST_PATH).mock(return_value=answer(recorded, status))
    assert await adapter.check(check_request()) is outcome


async def test_check_without_a_stored_request_id_asks_nobody(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    route = vonage_api.post(path__regex=REQUEST_PATH).mock(return_value=completed())
    outcome = await adapter.check(CheckRequest(sid="", code=CODE, phone=KG_PHONE))
    assert outcome is CheckOutcome.NOT_FOUND
    assert route.call_count == 0


# --- start errors ------------------------------------------------------------------------


async def test_conflict_cancels_the_older_request_and_starts_again_once(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    start = vonage_api.post(START_PATH).mock(
        side_effect=[answer("error_409_conflict", 409), started()]
    )
    cancel = vonage_api.delete(path__regex=REQUEST_PATH).mock(return_value=httpx.Response(204))

    result = await adapter.start(start_request())

    assert result.sid == REQUEST_ID
    assert start.call_count == 2
    assert cancel.call_count == 1
    assert cancel.calls.last.request.url == f"{VONAGE_BASE_URL}/v2/verify/{OLDER_ID}"


async def test_a_second_conflict_is_a_rate_limit_on_the_number(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    start = vonage_api.post(START_PATH).mock(return_value=answer("error_409_conflict", 409))
    cancel = vonage_api.delete(path__regex=REQUEST_PATH).mock(return_value=httpx.Response(204))

    with pytest.raises(ProviderRateLimited) as raised:
        await adapter.start(start_request())

    assert raised.value.status_code == 429
    assert start.call_count == 2, "started again once, not more"
    assert cancel.call_count == 1


async def test_stateful_fake_replaces_the_verification_in_progress(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    fake = StatefulVonage(vonage_api)
    first = await adapter.start(start_request())
    second = await adapter.start(start_request())

    assert first.sid != second.sid
    assert fake.status[first.sid] == "cancelled"
    assert fake.status[second.sid] == "pending"
    assert await adapter.check(check_request(sid=first.sid)) is CheckOutcome.NOT_FOUND
    assert await adapter.check(check_request(sid=second.sid)) is CheckOutcome.APPROVED


async def test_invalid_number_is_a_400_on_phone(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    vonage_api.post(START_PATH).mock(return_value=answer("error_422_invalid_number", 422))
    with caplog.at_level(logging.INFO), pytest.raises(ProviderRejectedNumber) as raised:
        await adapter.start(start_request())
    assert raised.value.status_code == 400
    assert raised.value.body() == {"phone": [NumberProblem.INVALID]}
    assert KG_PHONE not in caplog.text
    assert KG_PHONE.removeprefix("+") not in caplog.text


async def test_other_invalid_parameters_are_our_setup_naming_vonages_error(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    """The brand, the locale, the sender: the deployment's, not the person's number."""
    vonage_api.post(START_PATH).mock(return_value=answer("error_422_invalid_sender", 422))
    with pytest.raises(ProviderMisconfigured) as raised:
        await adapter.start(start_request(channel="whatsapp"))
    assert raised.value.status_code == 503
    assert raised.value.provider_code == 422
    assert raised.value.reason == "start: HTTP 422, Vonage invalid-param (Invalid sender)"


async def test_an_unmapped_refusal_of_a_check_is_a_502(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    vonage_api.post(path__regex=REQUEST_PATH).mock(
        return_value=answer("error_422_invalid_sender", 422)
    )
    with pytest.raises(ProviderRefusedRequest) as raised:
        await adapter.check(check_request())
    assert raised.value.status_code == 502
    assert "invalid-param" in raised.value.reason


@pytest.mark.parametrize(
    ("recorded", "status"),
    [("error_401_unauthorized", 401), ("error_403_forbidden", 403)],
)
async def test_account_problems_are_misconfiguration(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter, recorded: str, status: int
) -> None:
    vonage_api.post(START_PATH).mock(return_value=answer(recorded, status))
    with pytest.raises(ProviderMisconfigured) as raised:
        await adapter.start(start_request())
    assert raised.value.status_code == 503
    assert raised.value.provider_code == status


async def test_low_balance_is_misconfiguration(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    vonage_api.post(START_PATH).mock(
        return_value=httpx.Response(
            402, json={"type": "https://developer.nexmo.com/api-errors#low-balance"}
        )
    )
    with pytest.raises(ProviderMisconfigured):
        await adapter.start(start_request())


async def test_fraud_refusal_is_a_403_for_the_person(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    vonage_api.post(START_PATH).mock(
        return_value=answer(
            "error_403_forbidden", 403, detail="Request blocked by the fraud check."
        )
    )
    with pytest.raises(ProviderBlocked):
        await adapter.start(start_request())


async def test_throttling_is_retried_then_a_provider_failure(
    http: httpx.AsyncClient, vonage_api: respx.MockRouter
) -> None:
    route = vonage_api.post(START_PATH).mock(return_value=answer("error_429_throttled", 429))
    with pytest.raises(ProviderUnavailable) as raised:
        await make_client(http, max_retries=2).start(start_request())
    assert route.call_count == 3
    assert raised.value.provider_code == 429


async def test_throttling_that_ends_within_the_retries_is_not_seen(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    vonage_api.post(path__regex=REQUEST_PATH).mock(
        side_effect=[answer("error_429_throttled", 429), completed()]
    )
    assert await adapter.check(check_request()) is CheckOutcome.APPROVED


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"title": "Internal Error"}),
        httpx.Response(503, text="<html>503</html>"),
        httpx.Response(502),
        httpx.Response(202, json={"no": "request id"}),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ],
    ids=["500", "503-html", "502-empty", "202-without-id", "connect", "timeout"],
)
async def test_failures_are_provider_unavailable_with_their_cause(
    http: httpx.AsyncClient, vonage_api: respx.MockRouter, failure: httpx.Response | Exception
) -> None:
    route = vonage_api.post(START_PATH)
    if isinstance(failure, Exception):
        route.mock(side_effect=failure)
    else:
        route.mock(return_value=failure)
    with pytest.raises(ProviderUnavailable) as raised:
        await make_client(http).start(start_request())
    assert raised.value.status_code == 502
    assert route.call_count == 1, "not sent again: the next provider is asked instead"
    if isinstance(failure, Exception):
        assert raised.value.__cause__ is failure


async def test_check_with_bad_credentials_is_misconfiguration(
    adapter: VonageVerifyClient, vonage_api: respx.MockRouter
) -> None:
    vonage_api.post(path__regex=REQUEST_PATH).mock(
        return_value=answer("error_401_unauthorized", 401)
    )
    with pytest.raises(ProviderMisconfigured):
        await adapter.check(check_request())
