"""Twilio Verify v2 over httpx: start a verification, check a code, list the delivery
attempts.

Parameter names and error codes follow Twilio's OpenAPI description
(`tests/contract/twilio_verify_v2.yaml`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import urlencode

import httpx

from app.core.config import Settings
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
from app.services.verification.providers.attempts import AttemptsPage
from app.services.verification.providers.base import (
    CheckOutcome,
    CheckRequest,
    StartRequest,
    StartResult,
)
from app.services.verification.providers.twilio_attempts import (
    next_page,
    page_parameters,
    parse_attempts,
)

logger = logging.getLogger(__name__)

# Twilio error codes (see Twilio's error reference).
AUTH_FAILED = 20003
NOT_FOUND = 20404
TOO_MANY_CONCURRENT = 20429
INVALID_TO = 21211
GEO_NOT_ENABLED = 21408
TRIAL_UNVERIFIED_TO = 21608
NOT_MOBILE = 21614
INVALID_PARAMETER = 60200
MAX_CHECK_ATTEMPTS = 60202
MAX_SEND_ATTEMPTS = 60203
LANDLINE = 60205
CONCURRENT_FOR_NUMBER = 60212
CHANNEL_DISABLED = 60223
FRAUD_GUARD_BLOCKED = 60410
SUSPECTED_FRAUD = 60412
VERIFY_GEO_BLOCKED = 60605

_START_MISCONFIGURED = frozenset({AUTH_FAILED, CHANNEL_DISABLED, TRIAL_UNVERIFIED_TO, NOT_FOUND})
_START_NUMBER_PROBLEMS: dict[int | None, str] = {
    INVALID_TO: NumberProblem.INVALID,
    INVALID_PARAMETER: NumberProblem.INVALID,
    NOT_MOBILE: NumberProblem.CANNOT_RECEIVE_SMS,
    LANDLINE: NumberProblem.CANNOT_RECEIVE_SMS,
    GEO_NOT_ENABLED: NumberProblem.COUNTRY_NOT_ALLOWED,
    VERIFY_GEO_BLOCKED: NumberProblem.COUNTRY_NOT_ALLOWED,
}
_FRAUD = frozenset({FRAUD_GUARD_BLOCKED, SUSPECTED_FRAUD})
# Twilio's send limit is 5 starts per number in 10 minutes.
SEND_LIMIT_RETRY_AFTER_SECONDS = 600
CONCURRENT_RETRY_AFTER_SECONDS = 5
RETRY_BASE_DELAY_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class TwilioCredentials:
    """What Twilio needs to know who we are."""

    account_sid: str
    auth_token: str
    service_sid: str


def credentials_from(settings: Settings) -> TwilioCredentials | None:
    """Twilio's three credentials from the settings, when all are set."""
    sid, token, service = (
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_verify_service_sid,
    )
    if not (sid and token and token.get_secret_value() and service):
        return None
    return TwilioCredentials(
        account_sid=sid, auth_token=token.get_secret_value(), service_sid=service
    )


class _Retryable(Exception):
    """Twilio surely did not act on the request, so sending it again is safe."""

    def __init__(
        self, cause: Exception | None, reason: str, provider_code: int | None = None
    ) -> None:
        super().__init__(reason)
        self.cause = cause
        self.reason = reason
        self.provider_code = provider_code


class TwilioVerifyClient:
    """The `twilio` provider: a thin adapter over Twilio Verify's REST API."""

    name = "twilio"

    def __init__(
        self,
        client: httpx.AsyncClient,
        credentials: TwilioCredentials,
        *,
        base_url: str,
        max_retries: int = 2,
        retry_base_delay: float = RETRY_BASE_DELAY_SECONDS,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._jitter = jitter
        self._metrics = metrics
        # Requests are built here from ready parts rather than by the client's
        # `post`, which merges headers, cookies, URL and timeout on every call;
        # Basic auth is a ready header too (httpx's auth flow costs more per call).
        basic = base64.b64encode(f"{credentials.account_sid}:{credentials.auth_token}".encode())
        self._headers = httpx.Headers(
            {
                **client.headers,
                "Authorization": f"Basic {basic.decode()}",
                "Content-Type": "application/x-www-form-urlencoded",
            }
        )
        self._get_headers = httpx.Headers(
            {**client.headers, "Authorization": f"Basic {basic.decode()}"}
        )
        self._timeout = client.timeout.as_dict()
        self._service_sid = credentials.service_sid
        service = f"{base_url.rstrip('/')}/v2/Services/{credentials.service_sid}"
        # Parsed once: httpx would parse a string URL on every call.
        self._start_url = httpx.URL(f"{service}/Verifications")
        self._check_url = httpx.URL(f"{service}/VerificationCheck")
        self._attempts_url = httpx.URL(f"{base_url.rstrip('/')}/v2/Attempts")
        self._max_retries = max_retries
        self._retry_base_delay = retry_base_delay

    async def start(self, request: StartRequest) -> StartResult:
        """Create a verification: Twilio sends the code."""
        form = {"To": request.phone, "Channel": request.channel, "Locale": request.locale}
        if request.device_ip:
            form["DeviceIp"] = request.device_ip
        if request.app_hash:
            form["AppHash"] = request.app_hash
        status, body = await self._with_retries(self._start_url, form, "start")
        if status in (200, 201):
            sid = body.get("sid")
            if not isinstance(sid, str) or not sid:
                raise ProviderUnavailable("start answer has no verification sid")
            return StartResult(sid=sid)
        self._raise_start_error(status, body, request.phone)

    async def list_attempts(
        self, created_after: datetime, *, page_size: int, page: str | None = None
    ) -> AttemptsPage:
        """One page of our service's delivery attempts created after `created_after`
        (GET /v2/Attempts). A GET changes nothing at Twilio, so 5xx answers and
        timeouts are retried too."""
        params = {
            "VerifyServiceSid": self._service_sid,
            "DateCreatedAfter": twilio_time(created_after),
            "PageSize": str(page_size),
        }
        if page:
            params.update(page_parameters(page))
        url = self._attempts_url.copy_with(query=urlencode(params).encode())
        status, body = await self._with_retries(url, None, "list_attempts")
        if status != 200:
            _raise_common_error(status, _error_code(body), "list_attempts")
        items = body.get("attempts")
        if not isinstance(items, list):
            raise ProviderUnavailable("list_attempts answer has no attempts list")
        return AttemptsPage(attempts=parse_attempts(items), next_page=next_page(body.get("meta")))

    async def check(self, request: CheckRequest) -> CheckOutcome:
        """Check a code against the verification `request.sid`."""
        if request.sid:
            form = {"VerificationSid": request.sid, "Code": request.code}
        elif request.phone:
            form = {"To": request.phone, "Code": request.code}
        else:
            return CheckOutcome.NOT_FOUND
        status, body = await self._with_retries(self._check_url, form, "check")
        if status in (200, 201):
            verdict = body.get("status")
            if not isinstance(verdict, str):
                raise ProviderUnavailable("check answer has no status")
            if verdict == "approved" and body.get("valid") is not False:
                return CheckOutcome.APPROVED
            if verdict == "pending":
                return CheckOutcome.WRONG_CODE
            # canceled, expired, failed, max_attempts_reached, deleted
            return (
                CheckOutcome.MAX_ATTEMPTS
                if verdict == "max_attempts_reached"
                else CheckOutcome.NOT_FOUND
            )
        code = _error_code(body)
        if code == NOT_FOUND:
            return CheckOutcome.NOT_FOUND
        if code == MAX_CHECK_ATTEMPTS:
            return CheckOutcome.MAX_ATTEMPTS
        if code == INVALID_PARAMETER:
            # A code of the wrong length for the Twilio service: treat as a wrong code.
            return CheckOutcome.WRONG_CODE
        _raise_common_error(status, code, "check")

    async def _with_retries(
        self, url: httpx.URL, form: dict[str, str] | None, operation: str
    ) -> tuple[int, dict[str, Any]]:
        """POST `form` (or GET `url` when there is no form), retried while Twilio surely
        did not act, or, for a GET, on any failure."""
        attempt = 0
        while True:
            try:
                return await self._send(url, form, operation)
            except _Retryable as exc:
                if attempt >= self._max_retries:
                    raise ProviderUnavailable(
                        f"{operation}: {exc.reason} after {attempt + 1} attempts",
                        provider_code=exc.provider_code,
                    ) from exc.cause
                delay = self._retry_base_delay * (2**attempt) * (0.5 + self._jitter())
                logger.warning("Twilio %s: %s; retrying in %.2fs", operation, exc.reason, delay)
                attempt += 1
                await self._sleep(delay)

    async def _send(
        self, url: httpx.URL, form: dict[str, str] | None, operation: str
    ) -> tuple[int, dict[str, Any]]:
        """POST `form`, or GET `url` without one; turn every transport failure into a
        provider error. A GET is idempotent: its failures are all retryable."""
        idempotent = form is None
        started = time.perf_counter()
        try:
            request = (
                httpx.Request(
                    "GET", url, headers=self._get_headers, extensions={"timeout": self._timeout}
                )
                if form is None
                else httpx.Request(
                    "POST",
                    url,
                    headers=self._headers,
                    content=urlencode(form).encode(),
                    extensions={"timeout": self._timeout},
                )
            )
            response = await self._client.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self._observe(operation, started, "error", type(exc).__name__)
            raise _Retryable(exc, f"connection not made ({type(exc).__name__})") from exc
        except httpx.TimeoutException as exc:
            self._observe(operation, started, "error", type(exc).__name__)
            if idempotent:
                raise _Retryable(exc, f"timed out ({type(exc).__name__})") from exc
            raise ProviderUnavailable(f"{operation}: timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            self._observe(operation, started, "error", type(exc).__name__)
            if idempotent:
                raise _Retryable(exc, type(exc).__name__) from exc
            raise ProviderUnavailable(f"{operation}: {type(exc).__name__}") from exc
        status = response.status_code
        try:
            body = response.json()
        except ValueError as exc:
            self._observe(operation, started, str(status), "not_json")
            if idempotent and status >= 500:
                raise _Retryable(exc, f"HTTP {status} with a body that is not JSON") from exc
            raise _unusable(
                status, f"{operation}: HTTP {status} with a body that is not JSON"
            ) from exc
        if not isinstance(body, dict):
            self._observe(operation, started, str(status), "not_json")
            raise _unusable(status, f"{operation}: HTTP {status} with a JSON body not an object")
        code = _error_code(body)
        self._observe(
            operation, started, str(status), None if status < 400 else str(code or status)
        )
        if status == 429 and code == TOO_MANY_CONCURRENT:
            raise _Retryable(None, "Twilio 20429 too many concurrent requests", TOO_MANY_CONCURRENT)
        if idempotent and status >= 500:
            raise _Retryable(None, f"HTTP {status}, Twilio code {code}", code)
        return status, body

    def _observe(self, operation: str, started: float, status: str, error: str | None) -> None:
        if self._metrics is None:
            return
        elapsed = time.perf_counter() - started
        self._metrics.twilio_latency.labels(operation, status).observe(elapsed)
        self._metrics.provider_latency.labels(self.name, operation, status).observe(elapsed)
        if error is not None:
            self._metrics.twilio_errors.labels(operation, error).inc()
            self._metrics.provider_errors.labels(self.name, operation, error).inc()

    @staticmethod
    def _raise_start_error(status: int, body: dict[str, Any], phone: str) -> NoReturn:
        code = _error_code(body)
        reason = _describe(status, body)
        if code in _START_MISCONFIGURED:
            raise ProviderMisconfigured(reason, provider_code=code)
        if code in _START_NUMBER_PROBLEMS:
            logger.info("Twilio refused %s: %s", mask_phone(phone), reason)
            raise ProviderRejectedNumber(reason, _START_NUMBER_PROBLEMS[code], provider_code=code)
        if code in _FRAUD:
            raise ProviderBlocked(reason, provider_code=code)
        if code == MAX_SEND_ATTEMPTS:
            raise ProviderRateLimited(reason, SEND_LIMIT_RETRY_AFTER_SECONDS, provider_code=code)
        if code == CONCURRENT_FOR_NUMBER:
            raise ProviderRateLimited(reason, CONCURRENT_RETRY_AFTER_SECONDS, provider_code=code)
        _raise_common_error(status, code, "start")


def _raise_common_error(status: int, code: int | None, operation: str) -> NoReturn:
    reason = f"{operation}: HTTP {status}, Twilio code {code}"
    if code in (AUTH_FAILED, CHANNEL_DISABLED, TRIAL_UNVERIFIED_TO) or status == 401:
        raise ProviderMisconfigured(reason, provider_code=code)
    raise _unusable(status, reason, code)


def _unusable(
    status: int, reason: str, code: int | None = None
) -> ProviderRefusedRequest | ProviderUnavailable:
    """A 4xx is about this request; anything else unusable is Twilio failing."""
    if 400 <= status < 500:
        return ProviderRefusedRequest(reason, provider_code=code)
    return ProviderUnavailable(reason, provider_code=code)


def twilio_time(moment: datetime) -> str:
    """`moment` as Twilio's date filters take it: GMT, `YYYY-MM-DDTHH:MM:SSZ`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_code(body: dict[str, Any]) -> int | None:
    code = body.get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _describe(status: int, body: dict[str, Any]) -> str:
    # Twilio's message text can quote the destination number, so it is not logged.
    return f"HTTP {status}, Twilio code {_error_code(body)}"
