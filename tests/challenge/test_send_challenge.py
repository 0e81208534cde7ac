"""A send that needs a challenge: no token, a token the provider accepts or rejects, and
the provider down; siteverify mocked with respx at the HTTP boundary."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import CaptchaProvider
from app.services.challenge.siteverify import NoVerdict, SiteverifyClient
from tests.challenge.support import (
    FAILED,
    HCAPTCHA_URL,
    RECAPTCHA_URL,
    REQUIRED,
    SECRET,
    SITE_KEY,
    TOKEN,
    TURNSTILE_URL,
    UNAVAILABLE,
    captcha,
    passed,
    rejected,
    siteverify_form,
)
from tests.conftest import ClientFactory
from tests.helpers import (
    CODE,
    KG_PHONE,
    SEND,
    US_PHONE,
    VERIFY,
    Records,
    bearer,
    new_phone,
    verifications,
)
from tests.ops.conftest import parse_metrics, sample
from tests.twilio_fixtures import form, mock_approving, mock_start

CHANGE_SEND = "/api/v1/users/me/phone/send-verification"

ALWAYS = captcha(captcha_mode="always")


async def test_a_send_without_a_token_is_told_to_complete_the_challenge(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**ALWAYS) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE})

    assert response.status_code == 400
    assert response.json() == REQUIRED
    assert not start.called
    assert not siteverify.called
    assert await verifications(db_engine) == []


@pytest.mark.parametrize("blank", ["", "   ", None])
async def test_a_blank_token_is_no_token(
    client_for: ClientFactory, twilio: respx.MockRouter, blank: str | None
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**ALWAYS) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": blank})

    assert (response.status_code, response.json()) == (400, REQUIRED)
    assert not start.called
    assert not siteverify.called


async def test_a_passed_turnstile_token_sends_the_code(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**ALWAYS) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert response.status_code == 200, response.text
    assert start.call_count == 1
    assert siteverify.call_count == 1
    sent = siteverify_form(siteverify.calls.last.request)
    assert sent == {
        "secret": SECRET,
        "response": TOKEN,
        "remoteip": "127.0.0.1",
        "idempotency_key": sent["idempotency_key"],
    }
    assert uuid.UUID(sent["idempotency_key"]).version == 4
    [row] = await verifications(db_engine)
    assert row.status == "pending"


async def test_the_check_goes_through_the_shared_client_with_a_short_timeout(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """The service's one HTTP client (its User-Agent), with the check's own timeouts
    rather than Twilio's longer ones."""
    mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(
        **ALWAYS, twilio_connect_timeout_seconds=9.0, twilio_read_timeout_seconds=30.0
    ) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert response.status_code == 200, response.text
    request = siteverify.calls.last.request
    assert request.headers["user-agent"] == "phone-auth/0.1"
    assert request.extensions["timeout"] == {
        "connect": 2.0,
        "read": 3.0,
        "write": 3.0,
        "pool": 3.0,
    }


async def test_a_check_without_an_answer_in_time_has_no_verdict() -> None:
    """However the attempts' timeouts add up, a check gives up at its deadline."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return passed()

    with respx.mock(assert_all_called=False) as router:
        router.post(TURNSTILE_URL).mock(side_effect=slow)
        async with httpx.AsyncClient() as http:
            checker = SiteverifyClient(
                http,
                provider=CaptchaProvider.TURNSTILE,
                url=TURNSTILE_URL,
                secret=SECRET,
                deadline_seconds=0.05,
            )
            started = time.monotonic()
            with pytest.raises(NoVerdict, match=r"no answer within 0\.05s"):
                await checker.verify(TOKEN, "203.0.113.7")

    assert time.monotonic() - started < 1


async def test_each_check_has_its_own_idempotency_key(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**ALWAYS) as client:
        for _ in range(2):
            response = await client.post(SEND, json={"phone": new_phone(), "captcha_token": TOKEN})
            assert response.status_code == 200, response.text

    keys = {siteverify_form(call.request)["idempotency_key"] for call in siteverify.calls}
    assert len(keys) == 2


@pytest.mark.parametrize(
    ("provider", "url", "extra"),
    [
        pytest.param("hcaptcha", HCAPTCHA_URL, {"sitekey": SITE_KEY}, id="hcaptcha"),
        pytest.param("recaptcha", RECAPTCHA_URL, {}, id="recaptcha"),
    ],
)
async def test_hcaptcha_and_recaptcha_get_their_own_form_at_their_own_url(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    provider: str,
    url: str,
    extra: dict[str, str],
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(url).mock(return_value=passed())

    async with client_for(**captcha(provider, captcha_mode="always")) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert response.status_code == 200, response.text
    assert start.call_count == 1
    request = siteverify.calls.last.request
    assert request.method == "POST"
    assert siteverify_form(request) == {
        "secret": SECRET,
        "response": TOKEN,
        "remoteip": "127.0.0.1",
        **extra,
    }


@pytest.mark.parametrize(
    ("provider", "url", "score", "status"),
    [
        pytest.param("recaptcha", RECAPTCHA_URL, 0.3, 400, id="recaptcha-v3-low"),
        pytest.param("recaptcha", RECAPTCHA_URL, 0.5, 200, id="recaptcha-v3-threshold"),
        pytest.param("recaptcha", RECAPTCHA_URL, 0.9, 200, id="recaptcha-v3-high"),
        # hCaptcha Enterprise's score is a risk (high: a bot): not read.
        pytest.param("hcaptcha", HCAPTCHA_URL, 0.1, 200, id="hcaptcha-risk-score"),
    ],
)
async def test_a_recaptcha_v3_token_scored_as_a_bot_is_not_passed(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    app_logs: Records,
    provider: str,
    url: str,
    score: float,
    status: int,
) -> None:
    start = mock_start(twilio)
    answer = {"success": True, "score": score, "action": "login", "hostname": "shop.example"}
    twilio.post(url).mock(return_value=httpx.Response(200, json=answer))

    async with client_for(**captcha(provider, captcha_mode="always")) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})
        metrics = parse_metrics((await client.get("/metrics")).text)

    assert response.status_code == status, response.text
    assert start.call_count == (status == 200)
    outcome = "passed" if status == 200 else "failed"
    assert sample(metrics, "phone_auth_challenges_total", outcome=outcome, reason="always") == 1.0
    if status == 400:
        assert response.json() == FAILED
        [line] = app_logs.at(logging.INFO, "app.services.challenge")
        assert "Challenge not passed (score 0.3 below 0.5)" in line


async def test_the_verify_url_setting_points_the_check_elsewhere(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    staging = "https://captcha.staging.example/siteverify"
    elsewhere = twilio.post(staging).mock(return_value=passed())
    default = twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**ALWAYS, captcha_verify_url=staging) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert response.status_code == 200, response.text
    assert elsewhere.call_count == 1
    assert not default.called


@pytest.mark.parametrize(
    "codes",
    [
        ["invalid-input-response"],
        ["timeout-or-duplicate"],  # Turnstile and reCAPTCHA: expired or reused
        ["expired-input-response"],  # hCaptcha: expired
        ["already-seen-response"],  # hCaptcha: reused
        ["invalid-or-already-seen-response"],
        [],
    ],
)
async def test_a_rejected_token_is_not_passed_and_sends_nothing(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    app_logs: Records,
    codes: list[str],
) -> None:
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=rejected(*codes))

    async with client_for(**ALWAYS) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert (response.status_code, response.json()) == (400, FAILED)
    assert not start.called
    assert await verifications(db_engine) == []
    [line] = app_logs.at(logging.INFO, "app.services.challenge")
    assert "Challenge not passed" in line
    assert all(code in line for code in codes)


async def test_a_token_solved_on_another_hostname_is_not_passed(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=passed(hostname="evil.example"))
    hosts = "shop.example,m.shop.example"

    async with client_for(**ALWAYS, captcha_expected_hostnames=hosts) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert (response.status_code, response.json()) == (400, FAILED)
    assert not start.called


async def test_an_expected_hostname_passes_in_any_case(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=passed(hostname="M.Shop.Example"))
    hosts = "shop.example, m.shop.example"

    async with client_for(**ALWAYS, captcha_expected_hostnames=hosts) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert response.status_code == 200, response.text
    assert start.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.Response(503, text="upstream down"), id="http-503"),
        pytest.param(httpx.Response(200, text="<html>challenge</html>"), id="not-json"),
        pytest.param(httpx.Response(200, json={"ok": True}), id="no-success"),
        pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
        pytest.param(rejected("internal-error"), id="internal-error"),
    ],
)
async def test_a_provider_without_a_verdict_answers_503_and_logs_an_error(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    app_logs: Records,
    failure: httpx.Response | Exception,
) -> None:
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(side_effect=[failure, failure])

    async with client_for(**ALWAYS) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert (response.status_code, response.json()) == (503, UNAVAILABLE)
    assert not start.called
    assert await verifications(db_engine) == []
    [error] = app_logs.at(logging.ERROR, "app.services.challenge")
    assert "no verdict" in error
    assert "+996*****3456" in error


async def test_turnstile_is_asked_again_with_the_same_idempotency_key(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(
        side_effect=[httpx.ReadTimeout("lost answer"), passed()]
    )

    async with client_for(**ALWAYS) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert response.status_code == 200, response.text
    assert start.call_count == 1
    first, second = (siteverify_form(call.request) for call in siteverify.calls)
    assert first == second
    assert first["idempotency_key"]


async def test_hcaptcha_is_not_asked_twice_once_the_check_may_have_arrived(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """A second check of the same token would be "already seen"."""
    mock_start(twilio)
    siteverify = twilio.post(HCAPTCHA_URL).mock(
        side_effect=[httpx.ReadTimeout("lost answer"), passed()]
    )

    async with client_for(**captcha("hcaptcha", captcha_mode="always")) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert response.status_code == 503
    assert siteverify.call_count == 1


async def test_hcaptcha_is_asked_again_when_the_connection_was_never_made(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(HCAPTCHA_URL).mock(
        side_effect=[httpx.ConnectError("refused"), passed()]
    )

    async with client_for(**captcha("hcaptcha", captcha_mode="always")) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert response.status_code == 200, response.text
    assert siteverify.call_count == 2
    assert start.call_count == 1


@pytest.mark.parametrize(
    "codes", [["invalid-input-secret"], ["missing-input-secret"], ["sitekey-secret-mismatch"]]
)
async def test_a_refused_secret_is_the_services_problem_not_the_persons(
    client_for: ClientFactory, twilio: respx.MockRouter, app_logs: Records, codes: list[str]
) -> None:
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=rejected(*codes))

    async with client_for(**ALWAYS) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert (response.status_code, response.json()) == (503, UNAVAILABLE)
    assert not start.called
    [error] = app_logs.at(logging.ERROR, "app.services.challenge")
    assert codes[0] in error


async def test_fail_open_lets_the_send_through_and_counts_it(
    client_for: ClientFactory, twilio: respx.MockRouter, app_logs: Records
) -> None:
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(side_effect=httpx.ConnectError("refused"))

    async with client_for(**ALWAYS, captcha_fail_open=True) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})
        metrics = parse_metrics((await client.get("/metrics")).text)

    assert response.status_code == 200, response.text
    assert start.call_count == 1
    assert sample(metrics, "phone_auth_challenge_fail_open_total") == 1.0
    assert sample(metrics, "phone_auth_challenges_total", outcome="errored", reason="always") == 1.0
    assert app_logs.at(logging.ERROR, "app.services.challenge") == []
    [warning] = app_logs.at(logging.WARNING, "app.services.challenge.service")
    assert "CAPTCHA_FAIL_OPEN" in warning


async def test_fail_open_still_refuses_a_send_without_a_token(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)

    async with client_for(**ALWAYS, captcha_fail_open=True) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE})

    assert (response.status_code, response.json()) == (400, REQUIRED)
    assert not start.called


async def test_the_metrics_count_required_passed_failed_and_errored(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    down = httpx.ConnectError("down")
    # The check that meets a connection error is asked once more.
    twilio.post(TURNSTILE_URL).mock(
        side_effect=[passed(), rejected("invalid-input-response"), down, down]
    )

    async with client_for(**ALWAYS, rate_limit_enabled=False) as client:
        await client.post(SEND, json={"phone": new_phone()})
        for _ in range(3):
            await client.post(SEND, json={"phone": new_phone(), "captcha_token": TOKEN})
        metrics = parse_metrics((await client.get("/metrics")).text)

    def count(outcome: str) -> float | None:
        return sample(metrics, "phone_auth_challenges_total", outcome=outcome, reason="always")

    assert (count("required"), count("passed"), count("failed"), count("errored")) == (
        4.0,
        1.0,
        1.0,
        1.0,
    )
    assert sample(metrics, "phone_auth_challenge_fail_open_total") == 0.0


async def test_neither_the_token_nor_the_secret_reaches_the_log(
    client_for: ClientFactory, twilio: respx.MockRouter, app_logs: Records
) -> None:
    mock_start(twilio)
    down = httpx.ConnectError("down")
    twilio.post(TURNSTILE_URL).mock(side_effect=[rejected("invalid-input-response"), down, down])

    async with client_for(**ALWAYS) as client:
        for _ in range(2):
            await client.post(SEND, json={"phone": new_phone(), "captcha_token": TOKEN})

    lines = [record.getMessage() for record in app_logs.records]
    assert lines
    assert not [line for line in lines if TOKEN in line or SECRET in line]


async def test_test_numbers_never_need_a_challenge(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())
    number = "+12025550100"

    async with client_for(**ALWAYS, test_phone_numbers=f"{number}=123456") as client:
        response = await client.post(SEND, json={"phone": number})

    assert response.status_code == 200, response.text
    assert not start.called
    assert not siteverify.called


async def test_without_a_provider_no_send_needs_a_challenge(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=rejected("invalid-input-response"))

    async with client_for(captcha_mode="always", rate_limit_enabled=False) as client:
        answers = [
            await client.post(SEND, json={"phone": new_phone(), "captcha_token": TOKEN})
            for _ in range(5)
        ]

    assert [answer.status_code for answer in answers] == [200] * 5
    assert start.call_count == 5
    assert not siteverify.called


async def test_the_outgoing_send_is_unchanged_by_a_passed_challenge(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """The token is the service's business: Twilio gets the same form as ever."""
    start = mock_start(twilio)
    twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**ALWAYS) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": TOKEN})

    assert response.status_code == 200, response.text
    assert form(start.calls.last.request) == {
        "To": KG_PHONE,
        "Channel": "sms",
        "Locale": "ru",
        "DeviceIp": "127.0.0.1",
    }


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param(12345, "Not a valid string.", id="number"),
        pytest.param(["a"], "Not a valid string.", id="list"),
        pytest.param(
            "x" * 4097, "Ensure this field has no more than 4096 characters.", id="too-long"
        ),
        pytest.param("tok\u00e9n", FAILED["captcha_token"][0], id="not-ascii"),
        pytest.param("to ken", FAILED["captcha_token"][0], id="inner-space"),
    ],
)
async def test_a_token_that_is_not_a_token_is_refused_on_its_field(
    client_for: ClientFactory, twilio: respx.MockRouter, token: object, message: str
) -> None:
    start = mock_start(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(return_value=passed())

    async with client_for(**ALWAYS) as client:
        response = await client.post(SEND, json={"phone": KG_PHONE, "captcha_token": token})

    assert (response.status_code, response.json()) == (400, {"captcha_token": [message]})
    assert not start.called
    assert not siteverify.called


async def test_a_number_changes_send_needs_the_challenge_as_a_logins_does(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """The number change's send is a login's send: a bot with a fresh login cannot text
    codes to numbers of its choice past the challenge."""
    start, _ = mock_approving(twilio)
    siteverify = twilio.post(TURNSTILE_URL).mock(
        side_effect=[passed(), rejected("timeout-or-duplicate"), passed()]
    )
    phone = new_phone()

    async with client_for(**ALWAYS) as client:
        sent = await client.post(SEND, json={"phone": phone, "captcha_token": TOKEN})
        assert sent.status_code == 200, sent.text
        verified = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})
        assert verified.status_code == 200, verified.text
        auth = bearer(verified.json()["access_token"])
        without = await client.post(CHANGE_SEND, json={"phone": US_PHONE}, headers=auth)
        reused = await client.post(
            CHANGE_SEND, json={"phone": US_PHONE, "captcha_token": TOKEN}, headers=auth
        )
        passed_ = await client.post(
            CHANGE_SEND, json={"phone": US_PHONE, "captcha_token": "0.fresh"}, headers=auth
        )

    assert (without.status_code, without.json()) == (400, REQUIRED)
    assert (reused.status_code, reused.json()) == (400, FAILED)
    assert passed_.status_code == 200, passed_.text
    assert passed_.json()["phone"] == US_PHONE
    assert [form(call.request)["To"] for call in start.calls] == [phone, US_PHONE]
    assert siteverify.call_count == 3
    assert siteverify_form(siteverify.calls.last.request) == {
        "secret": SECRET,
        "response": "0.fresh",
        "remoteip": "127.0.0.1",
        "idempotency_key": siteverify_form(siteverify.calls.last.request)["idempotency_key"],
    }
