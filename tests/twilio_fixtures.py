"""Recorded Twilio Verify answers (tests/fixtures/twilio/*.json) and helpers to serve them."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import respx

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "twilio"

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "twilio-auth-token-for-tests"
SERVICE_SID = "VA" + "a" * 32
VERIFICATION_SID = "VE" + "b" * 32
TWILIO_BASE_URL = "https://verify.twilio.com"
START_PATH = f"/v2/Services/{SERVICE_SID}/Verifications"
CHECK_PATH = f"/v2/Services/{SERVICE_SID}/VerificationCheck"


def load(name: str, **changes: Any) -> dict[str, Any]:
    """A recorded body, with some fields changed."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    body.update(changes)
    return body


def started(to: str, sid: str = VERIFICATION_SID, channel: str = "sms") -> httpx.Response:
    """Twilio's 201 for a started verification."""
    return httpx.Response(201, json=load("verification_pending", to=to, sid=sid, channel=channel))


def checked(status: str, to: str, sid: str = VERIFICATION_SID) -> httpx.Response:
    """Twilio's 200 for a check: `approved` or `pending` (a wrong code)."""
    return httpx.Response(
        200,
        json=load(
            "verification_check_approved", to=to, sid=sid, status=status, valid=status == "approved"
        ),
    )


def twilio_error(code: int, status: int, message: str = "error") -> httpx.Response:
    """Twilio's error body."""
    return httpx.Response(
        status,
        json={
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def form(request: httpx.Request) -> dict[str, str]:
    """The form fields of a request sent to Twilio."""
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return {key: values[0] for key, values in parse_qs(request.content.decode()).items()}


def basic_auth(request: httpx.Request) -> tuple[str, str]:
    """The Basic credentials a request carried."""
    scheme, _, value = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(value).decode().partition(":")
    return user, password


def new_sid() -> str:
    """A fresh Twilio verification sid."""
    return "VE" + uuid.uuid4().hex


def mock_start(twilio: respx.MockRouter) -> respx.Route:
    """Twilio's start endpoint: 201 with a fresh sid for any number."""

    def answer(request: httpx.Request) -> httpx.Response:
        fields = form(request)
        return started(fields["To"], sid=new_sid(), channel=fields.get("Channel", "sms"))

    return twilio.post(START_PATH).mock(side_effect=answer)


def mock_check(twilio: respx.MockRouter, status: str = "approved") -> respx.Route:
    """Twilio's check endpoint: `approved`, or `pending` for a wrong code."""

    def answer(request: httpx.Request) -> httpx.Response:
        return checked(status, "+10000000000", sid=form(request)["VerificationSid"])

    return twilio.post(CHECK_PATH).mock(side_effect=answer)


def mock_check_accepting(twilio: respx.MockRouter, code: str) -> respx.Route:
    """Twilio's check endpoint: `approved` for `code`, `pending` (wrong) for any other."""

    def answer(request: httpx.Request) -> httpx.Response:
        fields = form(request)
        status = "approved" if fields["Code"] == code else "pending"
        return checked(status, "+10000000000", sid=fields["VerificationSid"])

    return twilio.post(CHECK_PATH).mock(side_effect=answer)


def mock_approving(twilio: respx.MockRouter) -> tuple[respx.Route, respx.Route]:
    """Twilio's start and check endpoints: a verification for any number, whose check
    approves any code and names the number it was started for."""
    numbers: dict[str, str] = {}

    def start(request: httpx.Request) -> httpx.Response:
        to = form(request)["To"]
        sid = new_sid()
        numbers[sid] = to
        return started(to, sid=sid)

    def check(request: httpx.Request) -> httpx.Response:
        sid = form(request)["VerificationSid"]
        return checked("approved", numbers[sid], sid=sid)

    start_route = twilio.post(START_PATH).mock(side_effect=start)
    check_route = twilio.post(CHECK_PATH).mock(side_effect=check)
    return start_route, check_route


class StatefulTwilio:
    """Twilio Verify with its memory: every verification's code is `code`; the first
    correct check approves it, and every later check of it (or of a sid Twilio never
    made) answers 404 with 20404; a wrong code answers `pending`.

    A check without `VerificationSid` checks the number's newest pending verification,
    as Twilio does with `To`. The verdict is made when a check arrives; an approval's
    answer comes back after `approval_latency` seconds, the others at once (the order
    in which a double tap's requests can come back). `approved` is set at the first
    approval, so that a test can send a request while that answer is on its way.
    `stopped = True` makes every answer a 500 (Twilio down).
    """

    def __init__(self, twilio: respx.MockRouter, code: str, approval_latency: float = 0.0):
        self.code = code
        self.approval_latency = approval_latency
        self.status: dict[str, str] = {}
        self.numbers: dict[str, str] = {}
        self.approved = asyncio.Event()
        self.stopped = False
        self.start_route = twilio.post(START_PATH).mock(side_effect=self._start)
        self.check_route = twilio.post(CHECK_PATH).mock(side_effect=self._check)

    def approvals(self) -> int:
        """How many verifications Twilio approved."""
        return sum(status == "approved" for status in self.status.values())

    def _start(self, request: httpx.Request) -> httpx.Response:
        if self.stopped:
            return twilio_error(20500, 500, "Internal Server Error")
        fields = form(request)
        sid = new_sid()
        self.status[sid] = "pending"
        self.numbers[sid] = fields["To"]
        return started(fields["To"], sid=sid, channel=fields.get("Channel", "sms"))

    async def _check(self, request: httpx.Request) -> httpx.Response:
        if self.stopped:
            return twilio_error(20500, 500, "Internal Server Error")
        fields = form(request)
        sid = fields.get("VerificationSid") or self._newest_pending(fields.get("To", ""))
        if sid is None or self.status.get(sid) != "pending":
            return twilio_error(20404, 404, "The requested resource was not found")
        if fields["Code"] != self.code:
            return checked("pending", self.numbers[sid], sid=sid)
        self.status[sid] = "approved"
        self.approved.set()
        await asyncio.sleep(self.approval_latency)
        return checked("approved", self.numbers[sid], sid=sid)

    def _newest_pending(self, to: str) -> str | None:
        pending = [sid for sid, status in self.status.items() if status == "pending"]
        return next((sid for sid in reversed(pending) if self.numbers[sid] == to), None)
