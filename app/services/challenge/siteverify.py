"""Server-side checks of challenge tokens: one form POST to the provider's siteverify.

Turnstile, hCaptcha and reCAPTCHA share the call: `secret`, `response` and
`remoteip` in, JSON with `success`, `hostname` and `error-codes` out. Turnstile
also takes `idempotency_key`, which makes a retry of the same check safe (a
token is otherwise valid for one check only); hCaptcha takes the expected
`sitekey`. The check goes through the service's shared HTTP client with a
short timeout of its own.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from app.core.config import CaptchaProvider

logger = logging.getLogger(__name__)

# One attempt's bounds, and the whole check's (a retry included).
SITEVERIFY_CONNECT_TIMEOUT_SECONDS = 2.0
SITEVERIFY_TIMEOUT_SECONDS = 3.0
SITEVERIFY_DEADLINE_SECONDS = 5.0

# Error codes about the service's own request or the provider itself, not the person's
# token: a check that meets one has no verdict on the token.
SERVICE_ERROR_CODES = frozenset(
    {
        "missing-input-secret",
        "invalid-input-secret",
        "sitekey-secret-mismatch",
        "bad-request",
        "internal-error",
        "missing-remoteip",
        "invalid-remoteip",
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The provider's answer on a token."""

    success: bool
    hostname: str | None
    error_codes: tuple[str, ...]
    # reCAPTCHA v3's score, from 0.0 (a bot) to 1.0 (a person); None without one.
    score: float | None = None


class NoVerdict(Exception):
    """The provider could not be asked, or answered without judging the token;
    `reason` is for the log."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class SiteverifyClient:
    """Checks tokens with one provider's siteverify endpoint."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        provider: CaptchaProvider,
        url: str,
        secret: str,
        site_key: str | None = None,
        deadline_seconds: float = SITEVERIFY_DEADLINE_SECONDS,
    ) -> None:
        self._client = client
        self._provider = provider
        self._url = url
        self._secret = secret
        self._site_key = site_key
        self._deadline = deadline_seconds
        self._timeout = httpx.Timeout(
            SITEVERIFY_TIMEOUT_SECONDS, connect=SITEVERIFY_CONNECT_TIMEOUT_SECONDS
        )

    async def verify(self, token: str, remote_ip: str | None) -> Verdict:
        """The provider's verdict on `token`, or `NoVerdict`.

        A check is sent again once when the first surely did not reach the provider,
        or, with Turnstile's `idempotency_key`, after any failure: another provider
        would answer the second check of a token "already seen"."""
        form = {"secret": self._secret, "response": token}
        if remote_ip:
            form["remoteip"] = remote_ip
        idempotent = self._provider is CaptchaProvider.TURNSTILE
        if idempotent:
            form["idempotency_key"] = str(uuid.uuid4())
        if self._provider is CaptchaProvider.HCAPTCHA and self._site_key:
            form["sitekey"] = self._site_key
        try:
            async with asyncio.timeout(self._deadline):
                try:
                    return await self._post(form)
                except NoVerdict as exc:
                    if not (exc.retryable or idempotent):
                        raise
                    logger.warning("Challenge check failed (%s); asking once more", exc.reason)
                return await self._post(form)
        except TimeoutError as exc:
            raise NoVerdict(f"no answer within {self._deadline:g}s") from exc

    async def _post(self, form: dict[str, str]) -> Verdict:
        try:
            response = await self._client.post(self._url, data=form, timeout=self._timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NoVerdict(f"connection not made ({type(exc).__name__})", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise NoVerdict(type(exc).__name__) from exc
        if response.status_code != 200:
            raise NoVerdict(f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise NoVerdict("an answer that is not JSON") from exc
        return _verdict(body)


def _verdict(body: Any) -> Verdict:
    """Read `success`, `hostname`, `error-codes` and `score`; an answer without a
    verdict, or one naming a problem of the service's own request, is `NoVerdict`."""
    if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
        raise NoVerdict("an answer without a boolean success")
    raw_codes = body.get("error-codes")
    codes = tuple(
        code for code in (raw_codes if isinstance(raw_codes, list) else []) if isinstance(code, str)
    )
    service_errors = SERVICE_ERROR_CODES.intersection(codes)
    if service_errors:
        raise NoVerdict(f"error codes {', '.join(sorted(service_errors))}")
    hostname = body.get("hostname")
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        score = None
    return Verdict(
        success=body["success"],
        hostname=hostname.lower().rstrip(".") if isinstance(hostname, str) else None,
        error_codes=codes,
        score=None if score is None else float(score),
    )
