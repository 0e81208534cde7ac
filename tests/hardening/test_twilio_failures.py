"""Twilio failing: every kind of failure → 502 within the deadline; the circuit breaker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import Clocks
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    ME,
    PROVIDER_FAILED,
    SEND,
    UNAVAILABLE,
    VERIFY,
    Records,
    bearer,
    new_phone,
    retry_after,
    too_many,
    verifications,
)
from tests.twilio_fixtures import (
    CHECK_PATH,
    START_PATH,
    form,
    mock_check,
    mock_start,
    new_sid,
    started,
    twilio_error,
)

DEADLINE = 0.5
# A deadline's worth of slack for scheduling on a busy CI machine.
MARGIN = 1.0
# The circuit's reset time, on the fake monotonic clock the circuit tests move.
RESET = 30
FAILURES = 5  # TWILIO_CIRCUIT_FAILURES, default 5
FAST: dict[str, Any] = {
    "twilio_deadline_seconds": DEADLINE,
    "twilio_circuit_reset_seconds": RESET,
    "rate_limit_enabled": False,
}


async def _slow_answer(request: httpx.Request) -> httpx.Response:
    await asyncio.sleep(2)
    return started(form(request)["To"], sid=new_sid())


def _raises(error: type[Exception]) -> Callable[[httpx.Request], httpx.Response]:
    def side_effect(request: httpx.Request) -> httpx.Response:
        raise error("boom", request=request)  # type: ignore[call-arg]

    return side_effect


TWILIO_FAILURES: dict[str, Any] = {
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


@pytest.mark.parametrize("failure", list(TWILIO_FAILURES), ids=list(TWILIO_FAILURES))
async def test_send_failures_are_502_within_the_deadline(
    client_for: ClientFactory, twilio: respx.MockRouter, failure: str
) -> None:
    _mock(twilio.post(START_PATH), TWILIO_FAILURES[failure])
    async with client_for(**FAST) as client:
        started_at = time.perf_counter()
        answer = await client.post(SEND, json={"phone": "+996555123456"})
        elapsed = time.perf_counter() - started_at
    assert answer.status_code == 502, answer.text
    assert answer.json() == {"success": False, "detail": PROVIDER_FAILED}
    assert elapsed < DEADLINE + MARGIN, elapsed


async def test_a_failed_send_still_counts_toward_the_cooldown(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """A provider that failed may still have texted the code (a timeout), so the send
    counts: the next one within the minute is refused and never reaches Twilio."""
    start = twilio.post(START_PATH)
    start.mock(side_effect=_raises(httpx.ReadTimeout))
    phone = new_phone()
    async with client_for(**{**FAST, "rate_limit_enabled": True}) as client:
        failed = await client.post(SEND, json={"phone": phone})
        start.mock(return_value=started(phone, sid=new_sid()))
        again = await client.post(SEND, json={"phone": phone})
    assert failed.status_code == 502, failed.text
    assert again.status_code == 429, again.text
    assert again.json() == too_many(retry_after(again, 60))
    assert [form(call.request)["To"] for call in start.calls] == [phone]


@pytest.mark.parametrize("failure", list(TWILIO_FAILURES), ids=list(TWILIO_FAILURES))
async def test_verify_failures_are_502_within_the_deadline(
    client_for: ClientFactory, twilio: respx.MockRouter, failure: str
) -> None:
    mock_start(twilio)
    check = TWILIO_FAILURES[failure]
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


def _open(answer: httpx.Response, retry_after: int, *, send: bool = True) -> None:
    """The open circuit's answer: 503, Retry-After, the contract's body."""
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == str(retry_after)
    body = {"detail": UNAVAILABLE}
    assert answer.json() == ({"success": False, **body} if send else body)


async def test_circuit_opens_fails_fast_then_one_probe_closes_it(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock, db_engine: AsyncEngine
) -> None:
    start = mock_start(twilio)
    check = mock_check(twilio)
    phones = iter(f"+1202555{n:04d}" for n in range(143, 200))
    pending = next(phones)
    async with client_for(clocks=Clocks(monotonic=clock), **FAST) as client:
        # A code on its way before Twilio fails: its check meets the open circuit later.
        assert (await client.post(SEND, json={"phone": pending})).status_code == 200
        start.mock(return_value=httpx.Response(500, json={"code": 20500, "status": 500}))
        for n in range(1, FAILURES + 1):
            answer = await client.post(SEND, json={"phone": next(phones)})
            assert answer.status_code == 502, answer.text
            assert answer.json() == {"success": False, "detail": PROVIDER_FAILED}
            assert start.call_count == 1 + n, "a closed circuit calls Twilio"
        assert _circuit_gauge((await client.get("/metrics")).text) == 1

        started_at = time.perf_counter()
        fast = await client.post(SEND, json={"phone": next(phones)})
        assert time.perf_counter() - started_at < 0.3
        _open(fast, RESET)
        clock.advance(RESET - 10)
        _open(await client.post(SEND, json={"phone": next(phones)}), 10)
        assert start.call_count == 1 + FAILURES, "an open circuit must not call Twilio"

        # Twilio trouble must not pull the pod out of the Service.
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text

        # Verify-code fails fast too, with Retry-After and no Twilio call; the attempt
        # is not the person's to lose.
        body = {"phone": pending, "verification_code": "123456"}
        _open(await client.post(VERIFY, json=body), 10, send=False)
        assert check.call_count == 0
        [row] = await verifications(db_engine)
        assert (row.phone, row.status, row.failed_attempts) == (pending, "pending", 0)

        clock.advance(10)  # the reset time: one probe goes through, and succeeds
        mock_start(twilio)
        probe = await client.post(SEND, json={"phone": next(phones)})
        assert probe.status_code == 200, probe.text
        assert start.call_count == 2 + FAILURES
        assert _circuit_gauge((await client.get("/metrics")).text) == 0
        for _ in range(3):
            assert (await client.post(SEND, json={"phone": next(phones)})).status_code == 200
        assert start.call_count == 5 + FAILURES
        verified = await client.post(VERIFY, json=body)
        assert verified.status_code == 200, verified.text
        assert check.call_count == 1


async def test_the_circuit_stays_closed_below_the_threshold(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock
) -> None:
    start = twilio.post(START_PATH)
    start.mock(return_value=httpx.Response(500, json={"code": 20500, "status": 500}))
    async with client_for(clocks=Clocks(monotonic=clock), **FAST) as client:
        for n in range(FAILURES - 1):
            answer = await client.post(SEND, json={"phone": f"+120255501{n:02d}"})
            assert answer.status_code == 502, answer.text
        # A success in between starts the count again.
        mock_start(twilio)
        assert (await client.post(SEND, json={"phone": "+12025550150"})).status_code == 200
        start.mock(return_value=httpx.Response(500, json={"code": 20500, "status": 500}))
        for n in range(FAILURES - 1):
            answer = await client.post(SEND, json={"phone": f"+120255502{n:02d}"})
            assert answer.status_code == 502, answer.text
        assert start.call_count == 2 * (FAILURES - 1) + 1
        assert _circuit_gauge((await client.get("/metrics")).text) == 0


async def test_failed_probe_opens_the_circuit_again(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock
) -> None:
    start = twilio.post(START_PATH)
    start.mock(side_effect=_raises(httpx.ReadTimeout))
    async with client_for(clocks=Clocks(monotonic=clock), **FAST) as client:
        for n in range(FAILURES):
            assert (
                await client.post(SEND, json={"phone": f"+120255501{n:02d}"})
            ).status_code == 502
        clock.advance(RESET)
        probe = await client.post(SEND, json={"phone": "+12025550150"})
        assert probe.status_code == 502
        assert start.call_count == FAILURES + 1
        # Opened again at the probe's failure, for a whole reset time.
        _open(await client.post(SEND, json={"phone": "+12025550151"}), RESET)
        assert start.call_count == FAILURES + 1


async def test_half_open_lets_one_probe_through(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock
) -> None:
    start = twilio.post(START_PATH)
    start.mock(return_value=httpx.Response(503))
    async with client_for(clocks=Clocks(monotonic=clock), **FAST) as client:
        for n in range(FAILURES):
            await client.post(SEND, json={"phone": f"+120255501{n:02d}"})
        clock.advance(RESET)

        async def slow_success(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.2)  # Twilio's latency, so that the requests overlap
            return started(form(request)["To"], sid=new_sid())

        start.mock(side_effect=slow_success)
        answers = await asyncio.gather(
            *(client.post(SEND, json={"phone": f"+120255502{n:02d}"}) for n in range(4))
        )
    [probe] = [answer for answer in answers if answer.status_code == 200]
    refused = [answer for answer in answers if answer is not probe]
    assert len(refused) == 3, [a.text for a in answers]
    for answer in refused:
        _open(answer, 1)  # while the probe is out
    assert start.call_count == FAILURES + 1


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
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    mock_start(twilio)
    check = twilio.post(CHECK_PATH)
    check.mock(return_value=httpx.Response(503))
    body = {"phone": "+996555123456", "verification_code": "123456"}
    async with client_for(clocks=Clocks(monotonic=clock), **FAST) as client:
        assert (await client.post(SEND, json={"phone": body["phone"]})).status_code == 200
        answers = [await client.post(VERIFY, json=body) for _ in range(FAILURES + 1)]
        assert [a.status_code for a in answers] == [502] * FAILURES + [503]
        _open(answers[-1], RESET, send=False)
        assert check.call_count == FAILURES
        clock.advance(RESET)
        mock_check(twilio)
        verified = await client.post(VERIFY, json=body)
        assert verified.status_code == 200, verified.text
        me = await client.get(ME, headers=bearer(verified.json()["access_token"]))
        assert me.status_code == 200


UNMAPPED_4XX = {
    "400-json": twilio_error(21610, 400),
    "403-json": twilio_error(60999, 403),
    "404-html": httpx.Response(404, html="<html><body>Not Found</body></html>"),
}


@pytest.mark.parametrize("answer", list(UNMAPPED_4XX), ids=list(UNMAPPED_4XX))
async def test_unmapped_4xx_answers_502_and_never_opens_the_circuit(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    clock: FakeClock,
    app_logs: Records,
    answer: str,
) -> None:
    """One odd number must not fail fast for everyone: Twilio answered, so it is up."""
    start = twilio.post(START_PATH).mock(return_value=UNMAPPED_4XX[answer])
    async with client_for(clocks=Clocks(monotonic=clock), **FAST) as client:
        for n in range(2 * FAILURES):
            refused = await client.post(SEND, json={"phone": f"+120255501{n:02d}"})
            assert refused.status_code == 502, refused.text
            assert refused.json() == {"success": False, "detail": PROVIDER_FAILED}
        assert start.call_count == 2 * FAILURES, "every request reached Twilio"
        assert _circuit_gauge((await client.get("/metrics")).text) == 0
        mock_start(twilio)
        after = await client.post(SEND, json={"phone": "+12025550150"})
        assert after.status_code == 200, after.text
    code = UNMAPPED_4XX[answer].json()["code"] if answer.endswith("json") else None
    logged = [m for m in app_logs.at(logging.WARNING) if "does not map" in m]
    assert len(logged) == 2 * FAILURES
    assert f"Twilio code {code}" in logged[0]
    assert "+12025550100" not in logged[0]


async def test_unmapped_4xx_on_check_leaves_the_circuit_closed_and_the_attempt(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    check = twilio.post(CHECK_PATH).mock(return_value=twilio_error(60999, 400))
    body = {"phone": "+996555123456", "verification_code": "123456"}
    async with client_for(clocks=Clocks(monotonic=clock), **FAST) as client:
        assert (await client.post(SEND, json={"phone": body["phone"]})).status_code == 200
        for _ in range(FAILURES + 1):
            refused = await client.post(VERIFY, json=body)
            assert refused.status_code == 502, refused.text
            assert refused.json() == {"detail": PROVIDER_FAILED}
        assert check.call_count == FAILURES + 1
        mock_check(twilio)
        verified = await client.post(VERIFY, json=body)
        assert verified.status_code == 200, verified.text


async def test_as_many_5xx_as_unmapped_4xx_open_the_circuit(
    client_for: ClientFactory, twilio: respx.MockRouter, clock: FakeClock
) -> None:
    """The counterpart of the 4xx tests: the same run of 5xx opens the circuit."""
    start = twilio.post(START_PATH).mock(return_value=twilio_error(20500, 500))
    async with client_for(clocks=Clocks(monotonic=clock), **FAST) as client:
        for n in range(FAILURES):
            assert (
                await client.post(SEND, json={"phone": f"+120255501{n:02d}"})
            ).status_code == 502
        mock_start(twilio)
        _open(await client.post(SEND, json={"phone": "+12025550150"}), RESET)
        assert start.call_count == FAILURES
        assert _circuit_gauge((await client.get("/metrics")).text) == 1
