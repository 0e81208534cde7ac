"""Twilio failing: every kind of failure → 502 within the deadline; the circuit breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.hardening.helpers import (
    SEND,
    VERIFY,
    bearer,
    mock_check,
    mock_start,
    new_sid,
)
from tests.twilio_fixtures import CHECK_PATH, START_PATH, form, started

DEADLINE = 0.5
# A deadline's worth of slack for scheduling on a busy CI machine.
MARGIN = 1.0
FAST: dict[str, Any] = {
    "twilio_deadline_seconds": DEADLINE,
    "twilio_circuit_reset_seconds": 0.5,
    "rate_limit_enabled": False,
}
PROVIDER_FAILED = "Could not reach the SMS provider. Please try again later."


async def _slow_answer(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(2)
    return started(form(request)["To"], sid=new_sid())


def _raises(error: type[Exception]) -> Callable[[httpx.Request], httpx.Response]:
    def side_effect(request: httpx.Request) -> httpx.Response:
        raise error("boom", request=request)  # type: ignore[call-arg]

    return side_effect


FAILURES: dict[str, Any] = {
    "500-json": httpx.Response(500, json={"code": 20500, "message": "Internal", "status": 500}),
    "503-empty": httpx.Response(503),
    "502-html": httpx.Response(
        502,
        html="<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    ),
    "200-html": httpx.Response(200, html="<!doctype html><p>Captive portal</p>"),
    "200-not-json": httpx.Response(200, text="OK"),
    "201-json-array": httpx.Response(201, json=["sid"]),
    "201-without-sid": httpx.Response(201, json={"status": "pending"}),
    "200-truncated-json": httpx.Response(200, text='{"sid": "VE'),
    "read-timeout": _raises(httpx.ReadTimeout),
    "write-timeout": _raises(httpx.WriteTimeout),
    "connect-timeout": _raises(httpx.ConnectTimeout),
    "connect-error": _raises(httpx.ConnectError),
    "reset": _raises(httpx.RemoteProtocolError),
    "read-error": _raises(httpx.ReadError),
    "slow-body": _slow_answer,
}


def _mock(route: respx.Route, failure: Any) -> None:
    if isinstance(failure, httpx.Response):
        route.mock(return_value=failure)
    else:
        route.mock(side_effect=failure)


@pytest.mark.parametrize("failure", list(FAILURES), ids=list(FAILURES))
async def test_send_failures_are_502_within_the_deadline(
    client_for: ClientFactory, twilio: respx.MockRouter, failure: str
) -> None:
    _mock(twilio.post(START_PATH), FAILURES[failure])
    async with client_for(**FAST) as client:
        started_at = time.perf_counter()
        answer = await client.post(SEND, json={"phone": "+996555123456"})
        elapsed = time.perf_counter() - started_at
    assert answer.status_code == 502, answer.text
    assert answer.json() == {"success": False, "detail": PROVIDER_FAILED}
    assert elapsed < DEADLINE + MARGIN, elapsed


@pytest.mark.parametrize("failure", list(FAILURES), ids=list(FAILURES))
async def test_verify_failures_are_502_within_the_deadline(
    client_for: ClientFactory, twilio: respx.MockRouter, failure: str
) -> None:
    mock_start(twilio)
    check = FAILURES[failure]
    if failure == "slow-body":

        async def check(request: httpx.Request) -> httpx.Response:  # type: ignore[misc]
            await asyncio.sleep(2)
            return httpx.Response(200, json={"status": "approved", "valid": True})

    if failure == "201-without-sid":
        # The check's counterpart: an answer without the `status` the adapter reads.
        check = httpx.Response(200, json={"sid": new_sid(), "valid": True})
    _mock(twilio.post(CHECK_PATH), check)
    async with client_for(**FAST) as client:
        assert (await client.post(SEND, json={"phone": "+996555123456"})).status_code == 200
        started_at = time.perf_counter()
        answer = await client.post(
            VERIFY, json={"phone": "+996555123456", "verification_code": "123456"}
        )
        elapsed = time.perf_counter() - started_at
    assert answer.status_code == 502, answer.text
    assert answer.json() == {"detail": PROVIDER_FAILED}
    assert elapsed < DEADLINE + MARGIN, elapsed


def _circuit_gauge(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("phone_auth_twilio_circuit_open "):
            return float(line.split()[1])
    raise AssertionError("phone_auth_twilio_circuit_open is not in /metrics")


async def test_circuit_opens_fails_fast_then_one_probe_closes_it(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = twilio.post(START_PATH)
    start.mock(return_value=httpx.Response(500, json={"code": 20500, "status": 500}))
    phones = iter(f"+1202555{n:04d}" for n in range(143, 200))
    async with client_for(**FAST) as client:
        for _ in range(5):  # TWILIO_CIRCUIT_FAILURES, default 5
            answer = await client.post(SEND, json={"phone": next(phones)})
            assert answer.status_code == 502, answer.text
        assert start.call_count == 5
        assert _circuit_gauge((await client.get("/metrics")).text) == 1

        started_at = time.perf_counter()
        fast = await client.post(SEND, json={"phone": next(phones)})
        assert time.perf_counter() - started_at < 0.3
        assert fast.status_code == 503, fast.text
        assert fast.json()["success"] is False
        assert "detail" in fast.json()
        assert int(fast.headers["Retry-After"]) >= 1
        assert start.call_count == 5, "an open circuit must not call Twilio"

        # Twilio trouble must not pull the pod out of the Service.
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text

        # Verify-code fails fast too, with Retry-After and no Twilio call.
        check = mock_check(twilio)
        verify = await client.post(VERIFY, json={"phone": "+12025550143", "code": "123456"})
        assert verify.status_code in {400, 503}, verify.text

        await asyncio.sleep(0.6)
        mock_start(twilio)
        probe = await client.post(SEND, json={"phone": "+12025550143"})
        assert probe.status_code == 200, probe.text
        assert _circuit_gauge((await client.get("/metrics")).text) == 0
        for _ in range(3):
            assert (await client.post(SEND, json={"phone": next(phones)})).status_code == 200
        assert check.call_count == 0


async def test_failed_probe_opens_the_circuit_again(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = twilio.post(START_PATH)
    start.mock(side_effect=_raises(httpx.ReadTimeout))
    async with client_for(**FAST) as client:
        for n in range(5):
            assert (
                await client.post(SEND, json={"phone": f"+120255501{n:02d}"})
            ).status_code == 502
        await asyncio.sleep(0.6)
        probe = await client.post(SEND, json={"phone": "+12025550150"})
        assert probe.status_code == 502
        assert start.call_count == 6
        again = await client.post(SEND, json={"phone": "+12025550151"})
        assert again.status_code == 503
        assert "Retry-After" in again.headers
        assert start.call_count == 6


async def test_half_open_lets_one_probe_through(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = twilio.post(START_PATH)
    start.mock(return_value=httpx.Response(503))
    async with client_for(**FAST) as client:
        for n in range(5):
            await client.post(SEND, json={"phone": f"+120255501{n:02d}"})
        await asyncio.sleep(0.6)

        async def slow_success(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.2)
            return started(form(request)["To"], sid=new_sid())

        start.mock(side_effect=slow_success)
        answers = await asyncio.gather(
            *(client.post(SEND, json={"phone": f"+120255502{n:02d}"}) for n in range(4))
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 503, 503, 503], [a.text for a in answers]
    assert start.call_count == 6


async def test_readyz_stays_200_while_twilio_fails(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    twilio.post(START_PATH).mock(side_effect=_raises(httpx.ConnectError))
    async with client_for(**FAST) as client:
        for n in range(7):
            await client.post(SEND, json={"phone": f"+120255501{n:02d}"})
        ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text


async def test_twilio_outage_during_verify_does_not_lock_the_code(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    check = twilio.post(CHECK_PATH)
    check.mock(return_value=httpx.Response(503))
    body = {"phone": "+996555123456", "verification_code": "123456"}
    async with client_for(**FAST) as client:
        assert (await client.post(SEND, json={"phone": body["phone"]})).status_code == 200
        for _ in range(6):
            assert (await client.post(VERIFY, json=body)).status_code in {502, 503}
        await asyncio.sleep(0.6)
        mock_check(twilio)
        verified = await client.post(VERIFY, json=body)
        assert verified.status_code == 200, verified.text
        me = await client.get("/api/v1/users/me", headers=bearer(verified.json()["access_token"]))
        assert me.status_code == 200
