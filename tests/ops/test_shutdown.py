"""SIGTERM on the real server: in-flight requests finish, then the pool and client close."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx

from tests.helpers import SEND
from tests.ops.conftest import FakeTwilio, ServerFactory, twilio_env

STOPPED = "Stopped: HTTP client and database pool closed"


def test_sigterm_finishes_in_flight_requests_then_exits(
    start_server: ServerFactory, fake_twilio: FakeTwilio, migrated_sqlite: str
) -> None:
    fake_twilio.start_delay = 2.0
    server = start_server(**twilio_env(fake_twilio, migrated_sqlite), LOG_FORMAT="json")

    result: dict[str, httpx.Response | BaseException] = {}

    def send() -> None:
        try:
            result["answer"] = httpx.post(
                f"{server.base_url}{SEND}", json={"phone": "+996555123456"}, timeout=30
            )
        except BaseException as exc:  # reported by the assertion below
            result["answer"] = exc

    request = threading.Thread(target=send)
    request.start()
    assert fake_twilio.start_received.wait(timeout=20), server.output()
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()

    # New connections are refused while the in-flight request is still running.
    refused = False
    while request.is_alive() and time.monotonic() - signalled < 20:
        try:
            httpx.get(f"{server.base_url}/healthz", timeout=1)
        except httpx.ConnectError:
            refused = True
            break
        except httpx.TransportError:
            pass
        time.sleep(0.05)

    request.join(timeout=30)
    assert not request.is_alive()
    answer = result["answer"]
    assert isinstance(answer, httpx.Response), repr(answer)
    assert answer.status_code == 200, answer.text
    assert answer.json()["phone"] == "+996555123456"
    assert refused, "a new connection was accepted after SIGTERM"

    # uvicorn re-raises the signal once it has shut down gracefully, so the process
    # ends "killed by SIGTERM" (exit 143 in a container) after its last line; 0 is
    # fine too. Anything else (a crash, a forced quit) is not.
    code = server.process.wait(timeout=30)
    assert code in (0, -signal.SIGTERM), server.output()
    records = [json.loads(line) for line in server.lines if line.startswith("{")]
    messages = [record["message"] for record in records]
    assert STOPPED in messages, server.output()
    assert messages[-1].startswith("Finished server process"), server.output()
    # The in-flight request was logged before the pool closed.
    access = next(
        i for i, r in enumerate(records) if r.get("route") == SEND and r.get("status") == 200
    )
    assert access < messages.index(STOPPED)
