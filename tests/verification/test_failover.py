"""Provider order per market and failover on send, end to end: the app against a
stateful fake Twilio and a stateful fake Vonage (respx at the HTTP boundary).

A send goes to the first provider of its market's order that can take it; a check
goes to the provider that sent the code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.phone import mask_phone
from app.main import Clocks
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    INVALID_CODE,
    PROVIDER_FAILED,
    SEND,
    VERIFY,
    Records,
    new_phone,
    verifications,
)
from tests.ops.conftest import parse_metrics, sample
from tests.twilio_fixtures import START_PATH, StatefulTwilio, basic_auth, twilio_error
from tests.vonage_fixtures import (
    API_KEY,
    API_SECRET,
    REQUEST_PATH,
    VONAGE,
    VONAGE_BASE_URL,
    StatefulVonage,
    answer,
    load,
    markets,
    payload,
)

CODE = "480913"
US_NUMBERS = iter(range(100, 10_000))


def us_phone() -> str:
    """A US mobile number no other test of this module used."""
    return f"+1202555{next(US_NUMBERS):04d}"


# The example: KG through Vonage first, US through Twilio first.
ROUTED: dict[str, Any] = {
    **VONAGE,
    "markets": markets(["vonage", "twilio"], ["twilio", "vonage"]),
    "rate_limit_enabled": False,
    "twilio_max_retries": 0,
}


@pytest.fixture
def vonage_api(twilio: respx.MockRouter) -> Iterator[respx.MockRouter]:
    """Vonage's API, mocked beside Twilio's; any unmocked call fails the test."""
    with respx.mock(base_url=VONAGE_BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
def fake_twilio(twilio: respx.MockRouter) -> StatefulTwilio:
    return StatefulTwilio(twilio, CODE)


@pytest.fixture
def fake_vonage(vonage_api: respx.MockRouter) -> StatefulVonage:
    return StatefulVonage(vonage_api, CODE)


async def send(client: httpx.AsyncClient, phone: str) -> httpx.Response:
    return await client.post(SEND, json={"phone": phone})


async def verify(client: httpx.AsyncClient, phone: str, code: str = CODE) -> httpx.Response:
    return await client.post(VERIFY, json={"phone": phone, "verification_code": code})


async def providers_of(engine: AsyncEngine) -> dict[str, str]:
    """The provider recorded on each number's newest verification."""
    return {row.phone: row.provider for row in await verifications(engine)}


# --- routing by market ---------------------------------------------------------------------


async def test_kg_logs_in_through_vonage_and_us_through_twilio(
    client_for: ClientFactory,
    fake_twilio: StatefulTwilio,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
) -> None:
    kg, us = new_phone(), us_phone()
    async with client_for(**ROUTED) as client:
        kg_sent = await send(client, kg)
        assert kg_sent.status_code == 200, kg_sent.text
        assert (await verify(client, kg)).status_code == 200
        assert (fake_vonage.starts, fake_vonage.checks) == (1, 1)
        assert fake_twilio.start_route.call_count == 0

        us_sent = await send(client, us)
        assert us_sent.status_code == 200, us_sent.text
        assert (await verify(client, us)).status_code == 200
        metrics = parse_metrics((await client.get("/metrics")).text)

    assert (fake_twilio.start_route.call_count, fake_twilio.check_route.call_count) == (1, 1)
    assert (fake_vonage.starts, fake_vonage.checks) == (1, 1)
    assert await providers_of(db_engine) == {kg: "vonage", us: "twilio"}
    # Vonage texts without the "+"; Twilio with it.
    assert list(fake_vonage.numbers.values()) == [kg.removeprefix("+")]
    assert list(fake_twilio.numbers.values()) == [us]
    spend = "phone_auth_sms_spend_usd_total"
    assert sample(metrics, spend, market="KG", provider="vonage") == pytest.approx(0.09)
    assert sample(metrics, spend, market="US", provider="twilio") == pytest.approx(0.0575)
    assert sample(metrics, spend, market="KG", provider="twilio") is None


async def test_the_answer_does_not_say_which_provider_sent(
    client_for: ClientFactory, fake_twilio: StatefulTwilio, fake_vonage: StatefulVonage
) -> None:
    async with client_for(**ROUTED) as client:
        by_twilio = await send(client, "+12025550143")
        fake_twilio.stopped = True
        by_vonage = await send(client, "+12025550144")
    assert fake_vonage.starts == 1
    assert by_twilio.status_code == by_vonage.status_code == 200
    assert by_vonage.json() == {
        **by_twilio.json(),
        "phone": "+12025550144",
        "message": ("Verification code sent to +12025550144"),
    }


# --- failover on send ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"code": 20500, "message": "Internal Server Error"}),
        httpx.Response(503, text="<html>Service Unavailable</html>"),
        httpx.ReadTimeout("no answer"),
        httpx.ConnectError("connection refused"),
        twilio_error(20003, 401, "Authenticate"),
        twilio_error(20404, 404, "The requested resource was not found"),
        twilio_error(60223, 400, "Delivery channel disabled"),
        twilio_error(21608, 400, "The number is unverified"),
        twilio_error(20429, 429, "Too many requests"),
    ],
    ids=["500", "503", "timeout", "unreachable", "20003", "20404", "60223", "21608", "20429"],
)
async def test_twilio_failing_sends_through_vonage_and_checks_there(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
    failure: httpx.Response | Exception,
) -> None:
    route = twilio.post(START_PATH)
    if isinstance(failure, Exception):
        route.mock(side_effect=failure)
    else:
        route.mock(return_value=failure)
    phone = us_phone()
    async with client_for(**ROUTED) as client:
        sent = await send(client, phone)
        assert sent.status_code == 200, sent.text
        verified = await verify(client, phone)
        assert verified.status_code == 200, verified.text
        metrics = parse_metrics((await client.get("/metrics")).text)

    assert route.call_count == 1, "exactly one start reached Twilio"
    assert fake_vonage.starts == 1, "exactly one start reached Vonage"
    assert fake_vonage.checks == 1
    assert await providers_of(db_engine) == {phone: "vonage"}
    failovers = "phone_auth_provider_failovers_total"
    assert sample(metrics, failovers, market="US", provider="twilio", next_provider="vonage") == 1
    spend = "phone_auth_sms_spend_usd_total"
    assert sample(metrics, spend, market="US", provider="vonage") == pytest.approx(0.07)
    assert sample(metrics, spend, market="US", provider="twilio") is None


async def test_a_hanging_twilio_fails_over_at_its_deadline(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
) -> None:
    released = asyncio.Event()
    reached: list[httpx.Request] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        reached.append(request)
        await released.wait()
        raise AssertionError("never answered")

    twilio.post(START_PATH).mock(side_effect=hang)
    phone = us_phone()
    async with client_for(twilio_deadline_seconds=0.3, **ROUTED) as client:
        sent = await send(client, phone)
        assert sent.status_code == 200, sent.text
        assert (await verify(client, phone)).status_code == 200
    released.set()
    assert len(reached) == 1
    assert (fake_vonage.starts, fake_vonage.checks) == (1, 1)
    assert await providers_of(db_engine) == {phone: "vonage"}


@pytest.mark.parametrize(
    ("failure", "calls"),
    [
        (httpx.Response(500), 1),
        (httpx.ConnectError("connection refused"), 1),
        (httpx.ReadTimeout("no answer"), 1),
        (answer("error_401_unauthorized", 401), 1),
        (answer("error_403_forbidden", 403), 1),
        (
            httpx.Response(
                402, json={"type": "https://developer.nexmo.com/api-errors#low-balance"}
            ),
            1,
        ),
        (answer("error_422_invalid_sender", 422), 1),
        (answer("error_429_throttled", 429), 2),  # retried once (twilio_max_retries=1)
    ],
    ids=["500", "unreachable", "timeout", "401", "403", "402-balance", "422-setup", "throttled"],
)
async def test_vonage_failing_sends_kg_through_twilio(
    client_for: ClientFactory,
    fake_twilio: StatefulTwilio,
    vonage_api: respx.MockRouter,
    db_engine: AsyncEngine,
    failure: httpx.Response | Exception,
    calls: int,
) -> None:
    down = vonage_api.post("/v2/verify")
    if isinstance(failure, Exception):
        down.mock(side_effect=failure)
    else:
        down.mock(return_value=failure)
    phone = new_phone()
    async with client_for(**{**ROUTED, "twilio_max_retries": 1}) as client:
        assert (await send(client, phone)).status_code == 200
        assert (await verify(client, phone)).status_code == 200
    assert down.call_count == calls
    assert fake_twilio.start_route.call_count == 1
    assert fake_twilio.check_route.call_count == 1
    assert await providers_of(db_engine) == {phone: "twilio"}


@pytest.mark.parametrize(
    ("failure", "status", "body"),
    [
        (
            twilio_error(21211, 400, "Invalid 'To' Phone Number"),
            400,
            {"phone": ["Enter a valid phone number."]},
        ),
        (
            twilio_error(60205, 400, "SMS is not supported by landline phone number"),
            400,
            {"phone": ["This phone number cannot receive SMS."]},
        ),
        (
            twilio_error(60605, 403, "Verification delivery to this country is blocked"),
            400,
            {"phone": ["Phone numbers from this country are not supported."]},
        ),
        (
            twilio_error(60410, 403, "Verification delivery attempt blocked"),
            403,
            {
                "success": False,
                "detail": "We cannot send a verification code to this phone number. "
                "Please contact support.",
            },
        ),
        (
            twilio_error(60200, 400, "Invalid parameter: To"),
            400,
            {"phone": ["Enter a valid phone number."]},
        ),
        (
            twilio_error(21614, 400, "'To' number is not a valid mobile number"),
            400,
            {"phone": ["This phone number cannot receive SMS."]},
        ),
        (
            twilio_error(21408, 400, "Permission to send an SMS has not been enabled"),
            400,
            {"phone": ["Phone numbers from this country are not supported."]},
        ),
        (twilio_error(60412, 403, "Suspected fraudulent sign-up"), 403, None),
        (twilio_error(60203, 429, "Max send attempts reached"), 429, None),
        (twilio_error(60212, 429, "Too many concurrent requests for phone number"), 429, None),
        (twilio_error(60999, 400, "Something new"), 502, None),
    ],
    ids=[
        "invalid",
        "landline",
        "geo",
        "fraud-guard",
        "invalid-parameter",
        "not-mobile",
        "geo-permission",
        "suspected-fraud",
        "send-limit",
        "concurrent",
        "unmapped-4xx",
    ],
)
async def test_answers_about_the_number_stand_and_never_reach_vonage(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
    failure: httpx.Response,
    status: int,
    body: dict[str, Any] | None,
) -> None:
    route = twilio.post(START_PATH).mock(return_value=failure)
    async with client_for(**ROUTED) as client:
        refused = await send(client, us_phone())
    assert refused.status_code == status, refused.text
    if body is not None:
        assert refused.json() == body
    assert route.call_count == 1
    assert fake_vonage.starts == 0
    assert await verifications(db_engine) == []


@pytest.mark.parametrize(
    ("failure", "status", "body", "starts"),
    [
        (
            answer("error_422_invalid_number", 422),
            400,
            {"phone": ["Enter a valid phone number."]},
            1,
        ),
        (
            answer("error_403_forbidden", 403, detail="Request blocked by the fraud check."),
            403,
            {
                "success": False,
                "detail": "We cannot send a verification code to this phone number. "
                "Please contact support.",
            },
            1,
        ),
        # A verification to the number stays in progress after the older one was
        # cancelled: the number's own limit, started again once only.
        (answer("error_409_conflict", 409), 429, None, 2),
    ],
    ids=["invalid-number", "fraud-check", "conflict-stays"],
)
async def test_vonages_answers_about_the_number_stand_and_never_reach_twilio(
    client_for: ClientFactory,
    vonage_api: respx.MockRouter,
    fake_twilio: StatefulTwilio,
    db_engine: AsyncEngine,
    failure: httpx.Response,
    status: int,
    body: dict[str, Any] | None,
    starts: int,
) -> None:
    refusing = vonage_api.post("/v2/verify").mock(return_value=failure)
    vonage_api.delete(path__regex=REQUEST_PATH).mock(return_value=httpx.Response(204))
    async with client_for(**ROUTED) as client:
        refused = await send(client, new_phone())
    assert refused.status_code == status, refused.text
    if body is not None:
        assert refused.json() == body
    if status == 429:
        assert refused.headers["retry-after"] == "5"
    assert refusing.call_count == starts
    assert fake_twilio.start_route.call_count == 0
    assert await verifications(db_engine) == []


async def test_every_provider_failing_answers_502_and_stores_nothing(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    vonage_api: respx.MockRouter,
    db_engine: AsyncEngine,
    app_logs: Records,
) -> None:
    twilio_down = twilio.post(START_PATH).mock(return_value=httpx.Response(500))
    vonage_down = vonage_api.post("/v2/verify").mock(return_value=httpx.Response(502))
    phone = us_phone()
    async with client_for(**ROUTED) as client:
        failed = await send(client, phone)
    assert failed.status_code == 502
    assert failed.json() == {"success": False, "detail": PROVIDER_FAILED}
    assert (twilio_down.call_count, vonage_down.call_count) == (1, 1)
    assert await verifications(db_engine) == []
    [passed_on] = [m for m in app_logs.at(logging.WARNING) if "trying vonage" in m]
    assert passed_on.startswith(f"Provider twilio could not send for {mask_phone(phone)} (")
    assert all(phone not in m for m in app_logs.at(logging.WARNING) + app_logs.at(logging.ERROR))
    assert any(m.startswith("Vonage failed during send") for m in app_logs.at(logging.ERROR))


async def test_an_open_circuit_goes_straight_to_the_next_provider(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    fake_vonage: StatefulVonage,
    clock: FakeClock,
) -> None:
    down = twilio.post(START_PATH).mock(return_value=httpx.Response(500))
    async with client_for(clocks=Clocks(monotonic=clock), twilio_circuit_failures=1, **ROUTED) as c:
        for _ in range(3):
            assert (await send(c, us_phone())).status_code == 200
        ready = await c.get("/readyz")
        metrics = parse_metrics((await c.get("/metrics")).text)
    assert down.call_count == 1, "Twilio's circuit opened after its first failure"
    assert fake_vonage.starts == 3
    assert ready.status_code == 200
    assert ready.json()["providers"] == {"twilio": "circuit open", "vonage": "ok"}
    assert sample(metrics, "phone_auth_provider_circuit_open", provider="twilio") == 1
    assert sample(metrics, "phone_auth_provider_circuit_open", provider="vonage") == 0


async def test_an_open_vonage_circuit_sends_kg_through_twilio(
    client_for: ClientFactory,
    vonage_api: respx.MockRouter,
    fake_twilio: StatefulTwilio,
    clock: FakeClock,
) -> None:
    down = vonage_api.post("/v2/verify").mock(return_value=httpx.Response(503))
    async with client_for(clocks=Clocks(monotonic=clock), twilio_circuit_failures=1, **ROUTED) as c:
        phones = [new_phone() for _ in range(3)]
        for phone in phones:
            assert (await send(c, phone)).status_code == 200
        assert (await verify(c, phones[-1])).status_code == 200
        ready = await c.get("/readyz")
        metrics = parse_metrics((await c.get("/metrics")).text)
    assert down.call_count == 1, "Vonage's circuit opened after its first failure"
    assert fake_twilio.start_route.call_count == 3
    assert ready.status_code == 200
    assert ready.json()["providers"] == {"twilio": "ok", "vonage": "circuit open"}
    assert sample(metrics, "phone_auth_provider_circuit_open", provider="vonage") == 1
    failovers = "phone_auth_provider_failovers_total"
    assert sample(metrics, failovers, market="KG", provider="vonage", next_provider="twilio") == 3


# --- stopping a provider -------------------------------------------------------------------


async def test_stopping_a_fake_moves_new_sends_and_keeps_started_codes(
    client_for: ClientFactory,
    fake_twilio: StatefulTwilio,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
) -> None:
    kg_before, us_before = new_phone(), us_phone()
    kg_after, us_after = new_phone(), us_phone()
    async with client_for(**ROUTED) as client:
        assert (await send(client, kg_before)).status_code == 200  # at Vonage
        assert (await send(client, us_before)).status_code == 200  # at Twilio

        fake_twilio.stopped = True
        assert (await send(client, us_after)).status_code == 200, "moved within one request"
        # Started at Vonage before: checked at Vonage, untouched by Twilio's outage.
        assert (await verify(client, kg_before)).status_code == 200
        # Started at Twilio: only Twilio knows the code. 502 while it is down ...
        down = await verify(client, us_before)
        assert down.status_code == 502, down.text

        fake_twilio.stopped = False
        fake_vonage.stopped = True
        assert (await send(client, kg_after)).status_code == 200, "moved within one request"
        # ... and the code still logs in once Twilio answers again.
        assert (await verify(client, us_before)).status_code == 200
        assert (await verify(client, kg_after)).status_code == 200
        # Started at Vonage, which is now down: 502, never asked of Twilio.
        vonage_down = await verify(client, us_after)
        assert vonage_down.status_code == 502
        fake_vonage.stopped = False
        assert (await verify(client, us_after)).status_code == 200

    assert await providers_of(db_engine) == {
        kg_before: "vonage",
        us_before: "twilio",
        us_after: "vonage",
        kg_after: "twilio",
    }
    assert fake_twilio.approvals() == 2
    assert [s for s in fake_vonage.status.values()] == ["completed", "completed"]


async def test_a_wrong_code_at_vonage_is_the_usual_400_and_locks_at_vonages_limit(
    client_for: ClientFactory, fake_vonage: StatefulVonage, fake_twilio: StatefulTwilio
) -> None:
    phone = new_phone()
    async with client_for(**ROUTED) as client:
        assert (await send(client, phone)).status_code == 200
        wrong = [await verify(client, phone, "000000") for _ in range(3)]
        after = await verify(client, phone)
    assert [r.status_code for r in wrong] == [400, 400, 429]
    assert wrong[0].json() == INVALID_CODE
    assert after.status_code == 429
    assert fake_twilio.check_route.call_count == 0


# --- configuration -------------------------------------------------------------------------


async def test_a_provider_without_credentials_is_left_out_and_logged(
    client_for: ClientFactory,
    fake_twilio: StatefulTwilio,
    vonage_api: respx.MockRouter,
    app_logs: Records,
) -> None:
    settings = {**ROUTED, "vonage_api_key": None, "vonage_api_secret": None}
    async with client_for(**settings) as client:
        sent = await send(client, new_phone())
        ready = await client.get("/readyz")
    assert sent.status_code == 200
    assert fake_twilio.start_route.call_count == 1
    assert ready.json()["providers"] == {"twilio": "ok"}
    warnings = app_logs.at(logging.WARNING, "app.main")
    assert (
        "Provider vonage has no credentials: left out of the provider order of KG, US" in warnings
    )
    [starting] = [m for m in app_logs.at(logging.INFO, "app.main") if m.startswith("Starting")]
    assert "providers=KG:twilio US:twilio" in starting
    assert "rate_limits=in-process" in starting


async def test_a_market_whose_providers_all_lack_credentials_answers_503(
    client_for: ClientFactory, fake_twilio: StatefulTwilio
) -> None:
    settings = {"markets": markets(["vonage"], ["twilio"]), "rate_limit_enabled": False}
    async with client_for(**settings) as client:
        kg = await send(client, new_phone())
        us = await send(client, us_phone())
        ready = await client.get("/readyz")
    assert kg.status_code == 503
    assert us.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"]["provider"] == "not configured"


async def test_console_and_test_numbers_reach_no_provider(
    client_for: ClientFactory,
    fake_twilio: StatefulTwilio,
    fake_vonage: StatefulVonage,
    app_logs: Records,
) -> None:
    phone = new_phone()
    async with client_for(verify_provider="console", **ROUTED) as client:
        assert (await send(client, phone)).status_code == 200
        [logged] = [m for m in app_logs.at(logging.WARNING) if "Console provider" in m]
        code = logged.split("code ")[1].split(" ")[0]
        assert (await verify(client, phone, code)).status_code == 200
    test_number = {"test_phone_numbers": "+996700000001=111111"}
    async with client_for(**ROUTED, **test_number) as client:
        assert (await send(client, "+996700000001")).status_code == 200
        assert (await verify(client, "+996700000001", "111111")).status_code == 200
    assert fake_twilio.start_route.call_count == fake_vonage.starts == 0
    assert fake_twilio.check_route.call_count == fake_vonage.checks == 0


# --- Vonage in the app ---------------------------------------------------------------------


async def test_a_resend_at_vonage_cancels_the_older_request_and_only_the_new_code_counts(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = new_phone()
    async with client_for(**ROUTED) as client:
        assert (await send(client, phone)).status_code == 200
        assert (await send(client, phone)).status_code == 200
        assert (await verify(client, phone)).status_code == 200
    assert fake_vonage.starts == 3, "the resend's 409, then its start once more"
    assert fake_vonage.cancels == 1
    assert sorted(fake_vonage.status.values()) == ["cancelled", "completed"]
    rows = await verifications(db_engine)
    assert [row.status for row in rows] == ["expired", "approved"]
    assert [row.provider for row in rows] == ["vonage", "vonage"]


async def test_vonage_calls_are_measured_per_provider(
    client_for: ClientFactory, vonage_api: respx.MockRouter, fake_twilio: StatefulTwilio
) -> None:
    vonage_api.post("/v2/verify").mock(return_value=httpx.Response(500, json={"title": "x"}))
    async with client_for(**ROUTED) as client:
        assert (await send(client, new_phone())).status_code == 200
        metrics = parse_metrics((await client.get("/metrics")).text)
    errors = "phone_auth_provider_errors_total"
    assert sample(metrics, errors, provider="vonage", operation="start", code="500") == 1
    latency = "phone_auth_provider_request_duration_seconds_count"
    assert sample(metrics, latency, provider="vonage", operation="start", status="500") == 1
    assert sample(metrics, latency, provider="twilio", operation="start", status="201") == 1
    spend = "phone_auth_sms_spend_usd_total"
    assert sample(metrics, spend, market="KG", provider="twilio") == pytest.approx(0.15)


async def test_the_settings_reach_vonage_on_the_wire(
    client_for: ClientFactory, vonage_api: respx.MockRouter, fake_twilio: StatefulTwilio
) -> None:
    code = "48091375"
    fake = StatefulVonage(vonage_api, code)
    phone = new_phone()
    settings = {
        **ROUTED,
        "vonage_brand": "Bazaar",
        "verification_code_length": 8,
        "vonage_whatsapp_from": "+996700000000",
    }
    async with client_for(**settings) as client:
        sent = await client.post(SEND, json={"phone": phone, "channel": "whatsapp"})
        assert sent.status_code == 200, sent.text
        assert (await verify(client, phone, code)).status_code == 200

    start = fake.start_route.calls.last.request
    assert start.url == f"{VONAGE_BASE_URL}/v2/verify"
    assert basic_auth(start) == (API_KEY, API_SECRET)
    assert payload(start) == {
        "brand": "Bazaar",
        "locale": "ru-ru",
        "code_length": 8,
        "workflow": [
            {"channel": "whatsapp", "to": phone.removeprefix("+"), "from": "996700000000"}
        ],
    }
    [request_id] = fake.status
    check = fake.check_route.calls.last.request
    assert check.url == f"{VONAGE_BASE_URL}/v2/verify/{request_id}"
    assert basic_auth(check) == (API_KEY, API_SECRET)
    assert payload(check) == {"code": code}
    assert fake_twilio.start_route.call_count == 0


async def test_a_whatsapp_send_vonage_refuses_for_want_of_a_sender_goes_to_twilio(
    client_for: ClientFactory,
    vonage_api: respx.MockRouter,
    fake_twilio: StatefulTwilio,
    db_engine: AsyncEngine,
) -> None:
    """Vonage sends WhatsApp only from the account's own business number: without
    VONAGE_WHATSAPP_FROM it answers 422 (invalid parameters, the number not among them)."""
    refusal = load("error_422_invalid_number")
    del refusal["invalid_parameters"]
    refusing = vonage_api.post("/v2/verify").mock(return_value=httpx.Response(422, json=refusal))
    phone = new_phone()
    async with client_for(**ROUTED) as client:
        sent = await client.post(SEND, json={"phone": phone, "channel": "whatsapp"})
        assert sent.status_code == 200, sent.text
        assert sent.json()["channel"] == "whatsapp"
        assert (await verify(client, phone)).status_code == 200
    assert "from" not in payload(refusing.calls.last.request)["workflow"][0]
    assert refusing.call_count == 1
    [twilio_start] = fake_twilio.start_route.calls
    assert dict(parse_qsl(twilio_start.request.content.decode()))["Channel"] == "whatsapp"
    assert await providers_of(db_engine) == {phone: "twilio"}
