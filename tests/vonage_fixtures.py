"""Recorded Vonage Verify v2 answers (tests/fixtures/vonage/*.json), helpers to serve
them, and a stateful fake Vonage."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import respx

from app.core.config import DEFAULT_MARKETS, MarketSettings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "vonage"

API_KEY = "vonage-key-for-tests"
API_SECRET = "vonage-secret-for-tests"
BRAND = "Marketplace"
VONAGE_BASE_URL = "https://api.nexmo.com"
START_PATH = "/v2/verify"
REQUEST_PATH = r"^/v2/verify/(?P<request_id>[0-9a-f-]+)$"
REQUEST_ID = "c11236f4-00bf-4b89-84ba-88b25df97315"

# Settings that configure Vonage against the mock (`make_settings(**VONAGE)`).
VONAGE: dict[str, Any] = {
    "vonage_api_key": API_KEY,
    "vonage_api_secret": API_SECRET,
    "vonage_brand": BRAND,
    "vonage_base_url": VONAGE_BASE_URL,
}


def markets(kg: list[str], us: list[str]) -> dict[str, MarketSettings]:
    """The default markets with these provider orders and a price per provider."""
    return {
        "KG": DEFAULT_MARKETS["KG"].model_copy(
            update={"providers": kg, "price_usd": {"twilio": 0.15, "vonage": 0.09}}
        ),
        "US": DEFAULT_MARKETS["US"].model_copy(
            update={"providers": us, "price_usd": {"twilio": 0.0575, "vonage": 0.07}}
        ),
    }


def load(name: str, **changes: Any) -> dict[str, Any]:
    """A recorded body, with some fields changed."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    body.update(changes)
    return body


def answer(name: str, status: int, **changes: Any) -> httpx.Response:
    """A recorded answer with its status."""
    return httpx.Response(status, json=load(name, **changes))


def started(request_id: str = REQUEST_ID) -> httpx.Response:
    """Vonage's 202 for a started verification."""
    return answer("start_202", 202, request_id=request_id)


def completed(request_id: str = REQUEST_ID) -> httpx.Response:
    """Vonage's 200 for a right code."""
    return answer("check_200_completed", 200, request_id=request_id)


def new_request_id() -> str:
    """A fresh Vonage request id."""
    return str(uuid.uuid4())


def payload(request: httpx.Request) -> dict[str, Any]:
    """The JSON body of a request sent to Vonage."""
    assert request.headers["content-type"] == "application/json"
    body: dict[str, Any] = json.loads(request.content)
    return body


class StatefulVonage:
    """Vonage Verify v2 with its memory, on respx.

    Every verification's code is `code`. A start to a number with a verification in
    progress answers 409 naming it (Vonage allows one at a time); a cancel ends it.
    The right code completes a verification (a later check answers 404); a wrong one
    answers 400, and the `max_attempts`-th wrong one 410, after which it is over.
    `stopped = True` makes every answer a 503 (Vonage down); `starts`, `checks` and
    `cancels` count the calls that reached it.
    """

    def __init__(self, router: respx.MockRouter, code: str = "123456", max_attempts: int = 3):
        self.code = code
        self.max_attempts = max_attempts
        self.stopped = False
        self.status: dict[str, str] = {}
        self.numbers: dict[str, str] = {}
        self.wrong: dict[str, int] = {}
        self.start_route = router.post(START_PATH).mock(side_effect=self._start)
        self.check_route = router.post(path__regex=REQUEST_PATH).mock(side_effect=self._check)
        self.cancel_route = router.delete(path__regex=REQUEST_PATH).mock(side_effect=self._cancel)

    @property
    def starts(self) -> int:
        """Start calls that reached Vonage."""
        return self.start_route.call_count

    @property
    def checks(self) -> int:
        """Check calls that reached Vonage."""
        return self.check_route.call_count

    @property
    def cancels(self) -> int:
        """Cancel calls that reached Vonage."""
        return self.cancel_route.call_count

    def in_progress(self, to: str) -> str | None:
        """The request id of the number's verification in progress."""
        return next(
            (rid for rid, s in self.status.items() if s == "pending" and self.numbers[rid] == to),
            None,
        )

    def _down(self) -> httpx.Response:
        return httpx.Response(
            503,
            json={
                "type": "https://developer.nexmo.com/api-errors#service-unavailable",
                "title": "Service Unavailable",
                "detail": "The service is temporarily unavailable.",
                "instance": "fake",
            },
        )

    def _start(self, request: httpx.Request) -> httpx.Response:
        if self.stopped:
            return self._down()
        body = payload(request)
        to = body["workflow"][0]["to"]
        older = self.in_progress(to)
        if older is not None:
            return answer("error_409_conflict", 409, request_id=older)
        request_id = new_request_id()
        self.status[request_id] = "pending"
        self.numbers[request_id] = to
        self.wrong[request_id] = 0
        return started(request_id)

    def _check(self, request: httpx.Request, request_id: str) -> httpx.Response:
        if self.stopped:
            return self._down()
        if self.status.get(request_id) != "pending":
            return answer("error_404_not_found", 404)
        if payload(request)["code"] != self.code:
            self.wrong[request_id] += 1
            if self.wrong[request_id] >= self.max_attempts:
                self.status[request_id] = "failed"
                return answer("error_410_too_many_attempts", 410)
            return answer("error_400_invalid_code", 400)
        self.status[request_id] = "completed"
        return completed(request_id)

    def _cancel(self, request: httpx.Request, request_id: str) -> httpx.Response:
        if self.stopped:
            return self._down()
        if self.status.get(request_id) != "pending":
            return answer("error_404_not_found", 404)
        self.status[request_id] = "cancelled"
        return httpx.Response(204)
