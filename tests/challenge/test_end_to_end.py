"""A whole login through the challenge against a fake Turnstile siteverify on a real
localhost port, the app configured through Settings alone (CAPTCHA_VERIFY_URL), its
production HTTP client (aiohttp) and the console provider, so that no mock is involved."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import respx

from tests.challenge.support import FAILED, REQUIRED, SECRET, UNAVAILABLE, FakeTurnstile, captcha
from tests.conftest import ClientFactory
from tests.helpers import ME, SEND, VERIFY, Records, bearer, new_phone
from tests.ops.conftest import parse_metrics, sample

CODE_IN_LOG = re.compile(r"\bcode (\d+)\b")


@pytest.fixture
async def turnstile() -> AsyncIterator[FakeTurnstile]:
    server = FakeTurnstile()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def through(server: FakeTurnstile, **overrides: Any) -> dict[str, Any]:
    """Settings of an app that checks tokens with `server` and texts codes to the log."""
    return {
        **captcha(captcha_mode="always", captcha_verify_url=server.url),
        "verify_provider": "console",
        "twilio_http_transport": "aiohttp",
        **overrides,
    }


def logged_codes(app_logs: Records) -> list[str]:
    return [
        match.group(1)
        for line in app_logs.at(logging.WARNING)
        for match in [CODE_IN_LOG.search(line)]
        if match
    ]


async def test_a_whole_login_through_the_challenge(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    turnstile: FakeTurnstile,
    app_logs: Records,
) -> None:
    phone = new_phone()

    async with client_for(**through(turnstile)) as client:
        without = await client.post(SEND, json={"phone": phone})
        codes_before = logged_codes(app_logs)
        token = turnstile.issue()
        sent = await client.post(SEND, json={"phone": phone, "captcha_token": token})
        [code] = logged_codes(app_logs)
        verified = await client.post(VERIFY, json={"phone": phone, "verification_code": code})
        me = await client.get(ME, headers=bearer(verified.json()["access_token"]))
        metrics = parse_metrics((await client.get("/metrics")).text)

    assert (without.status_code, without.json()) == (400, REQUIRED)
    assert codes_before == []
    assert sent.status_code == 200, sent.text
    assert verified.status_code == 200, verified.text
    assert me.json()["phone"] == phone
    [form] = turnstile.forms
    assert form == {
        "secret": SECRET,
        "response": token,
        "remoteip": "127.0.0.1",
        "idempotency_key": form["idempotency_key"],
    }
    assert sample(metrics, "phone_auth_challenges_total", outcome="passed", reason="always") == 1.0
    assert not twilio.calls


async def test_a_reused_or_made_up_token_is_not_passed(
    client_for: ClientFactory, turnstile: FakeTurnstile
) -> None:
    token = turnstile.issue()

    async with client_for(**through(turnstile)) as client:
        first = await client.post(SEND, json={"phone": new_phone(), "captcha_token": token})
        reused = await client.post(SEND, json={"phone": new_phone(), "captcha_token": token})
        made_up = await client.post(
            SEND, json={"phone": new_phone(), "captcha_token": "0.not-a-token"}
        )

    assert first.status_code == 200, first.text
    assert (reused.status_code, reused.json()) == (400, FAILED)
    assert (made_up.status_code, made_up.json()) == (400, FAILED)


async def test_a_token_from_another_site_is_not_passed(
    client_for: ClientFactory, turnstile: FakeTurnstile
) -> None:
    settings = through(turnstile, captcha_expected_hostnames="shop.example")

    async with client_for(**settings) as client:
        elsewhere = await client.post(
            SEND,
            json={"phone": new_phone(), "captcha_token": turnstile.issue("phish.example")},
        )
        here = await client.post(
            SEND, json={"phone": new_phone(), "captcha_token": turnstile.issue("shop.example")}
        )

    assert (elsewhere.status_code, elsewhere.json()) == (400, FAILED)
    assert here.status_code == 200, here.text


async def test_a_wrong_secret_is_a_503_with_the_reason_in_the_log(
    client_for: ClientFactory, turnstile: FakeTurnstile, app_logs: Records
) -> None:
    settings = through(turnstile, captcha_secret_key="0x4AAAAAAAnot-the-secret")

    async with client_for(**settings) as client:
        response = await client.post(
            SEND, json={"phone": new_phone(), "captcha_token": turnstile.issue()}
        )

    assert (response.status_code, response.json()) == (503, UNAVAILABLE)
    [error] = app_logs.at(logging.ERROR)
    assert "invalid-input-secret" in error


async def test_the_provider_down_is_a_503_or_with_fail_open_a_counted_send(
    client_for: ClientFactory, turnstile: FakeTurnstile, app_logs: Records
) -> None:
    token = turnstile.issue()
    await turnstile.stop()

    async with client_for(**through(turnstile)) as client:
        closed = await client.post(SEND, json={"phone": new_phone(), "captcha_token": token})
    async with client_for(**through(turnstile, captcha_fail_open=True)) as client:
        open_ = await client.post(SEND, json={"phone": new_phone(), "captcha_token": token})
        metrics = parse_metrics((await client.get("/metrics")).text)

    assert (closed.status_code, closed.json()) == (503, UNAVAILABLE)
    [error] = app_logs.at(logging.ERROR)
    assert "Challenge provider gave no verdict" in error
    assert open_.status_code == 200, open_.text
    assert sample(metrics, "phone_auth_challenge_fail_open_total") == 1.0
