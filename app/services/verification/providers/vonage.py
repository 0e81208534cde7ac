"""Vonage Verify v2 over httpx: start a verification, check a code, cancel one.

Statuses and error bodies (RFC 7807: `type`, `title`, `detail`, `instance`) follow
Vonage's API reference and SDKs; the recorded examples are in
`tests/fixtures/vonage/`. In short:

- `POST /v2/verify` answers 202 `{"request_id"}`; 409 when a verification to the
  number is in progress (its `request_id` in the body), 422 for invalid parameters
  (the number among them), 401/402/403 for the account, 429 when throttled. A
  WhatsApp step must name the account's WhatsApp Business number in `from`.
- `POST /v2/verify/{request_id}` with `{"code"}` answers 200 `{"status":
  "completed"}`; 400 a wrong code, 404 unknown, expired or already verified, 409 no
  code expected at this step, 410 too many wrong codes.
- `DELETE /v2/verify/{request_id}` answers 204, or 404 when it is already over.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx

from app.core.metrics import Metrics
from app.core.phone import mask_phone
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

logger = logging.getLogger(__name__)

NAME = "vonage"
# The service's channels and Vonage's names for them.
_CHANNELS = {"sms": "sms", "whatsapp": "whatsapp", "call": "voice"}
# Vonage's locales are language-region; a market names only its language.
_LOCALES = {
    "ar": "ar-xa",
    "de": "de-de",
    "en": "en-us",
    "es": "es-es",
    "fr": "fr-fr",
    "hi": "hi-in",
    "id": "id-id",
    "it": "it-it",
    "ja": "ja-jp",
    "ko": "ko-kr",
    "pt": "pt-br",
    "ru": "ru-ru",
    "tr": "tr-tr",
    "uk": "uk-ua",
    "zh": "zh-cn",
}
# Statuses about our account rather than a request: an operator must act.
_ACCOUNT_STATUSES = frozenset({401, 402, 403})
CONCURRENT_RETRY_AFTER_SECONDS = 5
RETRY_BASE_DELAY_SECONDS = 0.2


def vonage_locale(language: str) -> str | None:
    """Vonage's locale for a market's language (`ru` → `ru-ru`); None lets Vonage pick
    one from the number's prefix."""
    lowered = language.lower()
    if "-" in lowered:
        return lowered
    return _LOCALES.get(lowered)


@dataclass(frozen=True, slots=True)
class VonageCredentials:
    """What Vonage needs to know who we are."""

    api_key: str
    api_secret: str


class _Throttled(Exception):
    """Vonage answered 429: it did not act, so the request may be sent again."""


class VonageVerifyClient:
    """The `vonage` provider: a thin adapter over Vonage Verify v2's REST API."""

    name = NAME

    def __init__(
        self,
        client: httpx.AsyncClient,
        credentials: VonageCredentials,
        *,
        brand: str,
        code_length: int,
        base_url: str,
        max_retries: int = 2,
        retry_base_delay: float = RETRY_BASE_DELAY_SECONDS,
        whatsapp_from: str | None = None,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._brand = brand
        self._code_length = code_length
        self._whatsapp_from = whatsapp_from.removeprefix("+") if whatsapp_from else None
        self._metrics = metrics
        self._sleep = sleep
        self._jitter = jitter
        self._max_retries = max_retries
        self._retry_base_delay = retry_base_delay
        basic = base64.b64encode(f"{credentials.api_key}:{credentials.api_secret}".encode())
        self._headers = httpx.Headers(
            {
                **client.headers,
                "Authorization": f"Basic {basic.decode()}",
                "Content-Type": "application/json",
            }
        )
        self._timeout = client.timeout.as_dict()
        self._base = f"{base_url.rstrip('/')}/v2/verify"
        self._start_url = httpx.URL(self._base)

    async def start(self, request: StartRequest) -> StartResult:
        """Create a verification: Vonage sends the code. A verification already in
        progress for the number (409) is cancelled and the start made once more."""
        step: dict[str, str] = {
            "channel": _CHANNELS.get(request.channel, request.channel),
            "to": request.phone.removeprefix("+"),
        }
        if request.app_hash and step["channel"] == "sms":
            step["app_hash"] = request.app_hash  # Android's SMS Retriever reads the code
        if step["channel"] == "whatsapp" and self._whatsapp_from:
            step["from"] = self._whatsapp_from  # the account's WhatsApp Business number
        body: dict[str, Any] = {
            "brand": self._brand,
            "code_length": self._code_length,
            "workflow": [step],
        }
        locale = vonage_locale(request.locale)
        if locale is not None:
            body["locale"] = locale
        status, answer = await self._call("POST", self._start_url, body, "start")
        if status == 409:
            older = answer.get("request_id")
            if isinstance(older, str) and older:
                logger.info(
                    "Vonage has a verification in progress for %s: cancelling it",
                    mask_phone(request.phone),
                )
                await self.cancel(older)
                status, answer = await self._call("POST", self._start_url, body, "start")
        if status in (200, 202):
            request_id = answer.get("request_id")
            if not isinstance(request_id, str) or not request_id:
                raise ProviderUnavailable("start answer has no request_id")
            return StartResult(sid=request_id, provider=NAME)
        self._raise_start_error(status, answer, request.phone)

    async def check(self, request: CheckRequest) -> CheckOutcome:
        """Check a code against the verification `request.sid`."""
        if not request.sid:
            # Vonage checks by request id only; a code whose id was never stored is lost.
            return CheckOutcome.NOT_FOUND
        status, answer = await self._call(
            "POST", self._url_of(request.sid), {"code": request.code}, "check"
        )
        if status == 200:
            if answer.get("status") == "completed":
                return CheckOutcome.APPROVED
            raise ProviderUnavailable(f"check: HTTP 200 with status {answer.get('status')!r}")
        if status == 400:
            return CheckOutcome.WRONG_CODE
        if status in (404, 409):
            # 404: unknown, expired or already verified; 409: no code expected now.
            return CheckOutcome.NOT_FOUND
        if status == 410:
            return CheckOutcome.MAX_ATTEMPTS
        _raise_common_error(status, answer, "check")

    async def cancel(self, request_id: str) -> None:
        """End a verification in progress; one already over is fine."""
        status, answer = await self._call("DELETE", self._url_of(request_id), None, "cancel")
        if status in (200, 204, 404):
            return
        _raise_common_error(status, answer, "cancel")

    def _url_of(self, request_id: str) -> httpx.URL:
        return httpx.URL(f"{self._base}/{request_id}")

    async def _call(
        self, method: str, url: httpx.URL, body: dict[str, Any] | None, operation: str
    ) -> tuple[int, dict[str, Any]]:
        """Send, retrying a throttled (429) request; still throttled after the retries
        is Vonage failing (502, and a reason to fail over)."""
        attempt = 0
        while True:
            try:
                return await self._send(method, url, body, operation)
            except _Throttled as exc:
                if attempt >= self._max_retries:
                    raise ProviderUnavailable(
                        f"{operation}: Vonage throttled after {attempt + 1} attempts",
                        provider_code=429,
                    ) from exc
                delay = self._retry_base_delay * (2**attempt) * (0.5 + self._jitter())
                logger.warning("Vonage %s: throttled (429); retrying in %.2fs", operation, delay)
                attempt += 1
                await self._sleep(delay)

    async def _send(
        self, method: str, url: httpx.URL, body: dict[str, Any] | None, operation: str
    ) -> tuple[int, dict[str, Any]]:
        """Send one request; turn every transport failure into a provider error."""
        started = time.perf_counter()
        try:
            request = httpx.Request(
                method,
                url,
                headers=self._headers,
                content=None if body is None else json.dumps(body).encode(),
                extensions={"timeout": self._timeout},
            )
            response = await self._client.send(request)
        except httpx.TimeoutException as exc:
            self._observe(operation, started, "error", type(exc).__name__)
            raise ProviderUnavailable(f"{operation}: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            self._observe(operation, started, "error", type(exc).__name__)
            raise ProviderUnavailable(f"{operation}: {type(exc).__name__}") from exc
        status = response.status_code
        if status == 204 or not response.content:
            self._observe(operation, started, str(status), None if status < 400 else str(status))
            if status >= 500:
                raise ProviderUnavailable(f"{operation}: HTTP {status} without a body")
            return status, {}
        try:
            answer = response.json()
        except ValueError as exc:
            self._observe(operation, started, str(status), "not_json")
            raise _unusable(
                status, f"{operation}: HTTP {status} with a body that is not JSON"
            ) from exc
        if not isinstance(answer, dict):
            self._observe(operation, started, str(status), "not_json")
            raise _unusable(status, f"{operation}: HTTP {status} with a JSON body not an object")
        self._observe(operation, started, str(status), None if status < 400 else str(status))
        if status == 429:
            raise _Throttled(_describe(status, answer))
        if status >= 500:
            raise ProviderUnavailable(f"{operation}: {_describe(status, answer)}")
        return status, answer

    def _observe(self, operation: str, started: float, status: str, error: str | None) -> None:
        if self._metrics is None:
            return
        self._metrics.provider_latency.labels(NAME, operation, status).observe(
            time.perf_counter() - started
        )
        if error is not None:
            self._metrics.provider_errors.labels(NAME, operation, error).inc()

    @staticmethod
    def _raise_start_error(status: int, answer: dict[str, Any], phone: str) -> NoReturn:
        reason = f"start: {_describe(status, answer)}"
        if status == 409:
            # Still in progress after the older one was cancelled: a race on the number.
            raise ProviderRateLimited(reason, CONCURRENT_RETRY_AFTER_SECONDS, provider_code=status)
        if status == 403 and "fraud" in _text(answer):
            raise ProviderBlocked(reason, provider_code=status)
        if status == 422:
            if _about_the_number(answer):
                logger.info("Vonage refused %s: %s", mask_phone(phone), reason)
                raise ProviderRejectedNumber(reason, NumberProblem.INVALID, provider_code=status)
            # Every other parameter is the deployment's (brand, locale, code length, the
            # WhatsApp sender): our setup at Vonage is wrong, as a disabled channel at
            # Twilio is, and the next provider may send.
            raise ProviderMisconfigured(reason, provider_code=status)
        _raise_common_error(status, answer, "start")


def _raise_common_error(status: int, answer: dict[str, Any], operation: str) -> NoReturn:
    reason = f"{operation}: {_describe(status, answer)}"
    if status in _ACCOUNT_STATUSES:
        raise ProviderMisconfigured(reason, provider_code=status)
    raise _unusable(status, reason, status)


def _unusable(
    status: int, reason: str, code: int | None = None
) -> ProviderRefusedRequest | ProviderUnavailable:
    """A 4xx is about this request; anything else unusable is Vonage failing."""
    if 400 <= status < 500:
        return ProviderRefusedRequest(reason, provider_code=code)
    return ProviderUnavailable(reason, provider_code=code)


def _about_the_number(answer: dict[str, Any]) -> bool:
    """Whether a 422 names the destination among its invalid parameters."""
    parameters = answer.get("invalid_parameters")
    if isinstance(parameters, list):
        for parameter in parameters:
            if not isinstance(parameter, dict):
                continue
            name = str(parameter.get("name", ""))
            reason = str(parameter.get("reason", ""))
            if name.endswith(".to") or name == "to" or "`to`" in reason:
                return True
    detail = str(answer.get("detail", "")).lower()
    return "phone number" in detail or "`to`" in detail


def _text(answer: dict[str, Any]) -> str:
    return f"{answer.get('title', '')} {answer.get('detail', '')} {answer.get('type', '')}".lower()


def _describe(status: int, answer: dict[str, Any]) -> str:
    # Vonage's `detail` can quote the destination number, so only the title and
    # the error type (a URL fragment) are logged.
    kind = str(answer.get("type", "")).rpartition("#")[2] or "-"
    title = str(answer.get("title", "")) or "-"
    return f"HTTP {status}, Vonage {kind} ({title[:60]})"
