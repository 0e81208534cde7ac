"""What can go wrong while sending and checking codes, and what the client is told.

Every error here is an `AppError`: the one handler renders it. Provider
failures carry the provider's own code and reason for the log; the client
sees only the message.
"""

from __future__ import annotations

from typing import Any

from app.core.errors import AppError, FieldErrors, ServiceUnavailable, TooManyRequests
from app.core.phone import MSG_INVALID, MSG_NO_SMS, MSG_UNSUPPORTED_COUNTRY

MSG_INVALID_CODE = "Invalid or expired verification code"
MSG_LOCKED = "Too many failed attempts. Please request a new code."
MSG_PROVIDER_FAILED = "Could not reach the SMS provider. Please try again later."
MSG_BLOCKED = "We cannot send a verification code to this phone number. Please contact support."
LOCKED_RETRY_AFTER_SECONDS = 60


class InvalidCode(AppError):
    """A wrong, expired or unknown code, or one another request used first."""

    status_code = 400
    default_message = MSG_INVALID_CODE
    outcome = "invalid_code"


class CodeLocked(TooManyRequests):
    """Every attempt on the pending code is spent."""

    def __init__(self) -> None:
        super().__init__(LOCKED_RETRY_AFTER_SECONDS, MSG_LOCKED)


class ChannelNotAvailable(FieldErrors):
    """The number's market does not deliver codes over this channel."""

    def __init__(self, channel: str, market: str) -> None:
        super().__init__({"channel": [f'"{channel}" is not available for {market} numbers.']})


MSG_APP_HASH_CHANNEL = "An app hash can only be used with the sms channel."


class AppHashNotAvailable(FieldErrors):
    """An app hash sent with a channel other than SMS: only an SMS carries it."""

    def __init__(self) -> None:
        super().__init__({"app_hash": [MSG_APP_HASH_CHANNEL]})


class ProviderNotConfigured(ServiceUnavailable):
    """The provider has no credentials; an operator must configure it."""


class ProviderError(AppError):
    """Base of every provider failure: 502 unless a subclass says otherwise.

    `reason` and `provider_code` (the provider's own error code) are for the
    log; `str()` of the error is what the client is told.
    """

    status_code = 502
    default_message = MSG_PROVIDER_FAILED
    outcome = "provider_error"
    # The provider that failed, when a failover order tried more than one.
    provider: str | None = None

    def __init__(
        self,
        reason: str,
        *,
        provider_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(headers=headers)
        self.reason = reason
        self.provider_code = provider_code


class ProviderUnavailable(ProviderError):
    """The provider failed: a 5xx, a timeout, a connection error, or a 2xx it could not
    read. The only failure the circuit breaker counts."""


class ProviderRefusedRequest(ProviderError):
    """A 4xx the service does not map: about this request, not an outage (502; the
    circuit breaker does not count it, and the log names the provider's code)."""


class ProviderMisconfigured(ProviderError):
    """Our account or service at the provider is set up wrong; an operator must act."""

    status_code = 503
    default_message = ServiceUnavailable.default_message
    outcome = "unavailable"


class NumberProblem:
    """Why a provider refused a destination number: the message the person sees."""

    INVALID = MSG_INVALID
    CANNOT_RECEIVE_SMS = MSG_NO_SMS
    COUNTRY_NOT_ALLOWED = MSG_UNSUPPORTED_COUNTRY


class ProviderRejectedNumber(ProviderError):
    """The provider refused the destination number: 400 on `phone`."""

    status_code = 400
    outcome = "number_refused"

    def __init__(self, reason: str, problem: str, *, provider_code: int | None) -> None:
        super().__init__(reason, provider_code=provider_code)
        self.problem = problem
        self.message = problem

    def body(self) -> dict[str, Any]:
        """The field map, as for any invalid number."""
        return {"phone": [self.problem]}


class ProviderBlocked(ProviderError):
    """The provider's fraud protection refused the request; final, never retried."""

    status_code = 403
    default_message = MSG_BLOCKED
    outcome = "blocked"


class ProviderRateLimited(ProviderError):
    """The provider refused because of too many attempts for this number."""

    status_code = 429
    outcome = "too_many_attempts"

    def __init__(self, reason: str, retry_after: int, *, provider_code: int | None) -> None:
        limited = TooManyRequests(retry_after)
        super().__init__(reason, provider_code=provider_code, headers=limited.headers)
        self.retry_after = limited.retry_after
        self.message = limited.message

    def body(self) -> dict[str, Any]:
        """The detail and the wait in seconds."""
        return {"detail": self.message, "retry_after": self.retry_after}


class ProviderCircuitOpen(ProviderError):
    """The provider failed repeatedly; calls fail fast for `retry_after` seconds."""

    status_code = 503
    default_message = ServiceUnavailable.default_message
    outcome = "unavailable"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"circuit open for {retry_after}s", headers={"Retry-After": str(retry_after)}
        )
        self.retry_after = retry_after


class UnknownTestNumber(ProviderError):
    """A test number stopped being one between choosing its provider and sending."""

    status_code = 503
    default_message = ServiceUnavailable.default_message
    outcome = "unavailable"
