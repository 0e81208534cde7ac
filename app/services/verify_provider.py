"""What the service needs from a verification provider, and how providers fail."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class CheckOutcome(StrEnum):
    """The provider's verdict on a code."""

    APPROVED = "approved"
    WRONG_CODE = "wrong_code"
    NOT_FOUND = "not_found"
    MAX_ATTEMPTS = "max_attempts"


@dataclass(frozen=True, slots=True)
class StartRequest:
    """A code to send."""

    phone: str
    channel: str
    locale: str
    device_ip: str | None = None


@dataclass(frozen=True, slots=True)
class StartResult:
    """A started verification. `code_hash` is only set by providers that keep it locally."""

    sid: str
    code_hash: str | None = None


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """A code to check against a started verification."""

    sid: str
    code: str
    code_hash: str | None = None


class NumberProblem(StrEnum):
    """Why a provider refused a destination number."""

    INVALID = "invalid"
    CANNOT_RECEIVE_SMS = "cannot_receive_sms"
    COUNTRY_NOT_ALLOWED = "country_not_allowed"


class ProviderError(Exception):
    """Base of every provider failure; `provider_code` is the provider's own error code."""

    def __init__(self, reason: str, *, provider_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.provider_code = provider_code


class ProviderUnavailable(ProviderError):
    """The provider failed or answered something unusable: 5xx, timeout, bad body."""


class ProviderMisconfigured(ProviderError):
    """Our account or service at the provider is set up wrong; an operator must act."""


class ProviderRejectedNumber(ProviderError):
    """The provider refused the destination number."""

    def __init__(self, reason: str, problem: NumberProblem, *, provider_code: int | None) -> None:
        super().__init__(reason, provider_code=provider_code)
        self.problem = problem


class ProviderBlocked(ProviderError):
    """The provider's fraud protection refused the request; final, never retried."""


class ProviderRateLimited(ProviderError):
    """The provider refused because of too many attempts for this number."""

    def __init__(self, reason: str, retry_after: int, *, provider_code: int | None) -> None:
        super().__init__(reason, provider_code=provider_code)
        self.retry_after = retry_after


class VerifyProvider(Protocol):
    """Sends codes and checks them."""

    name: str

    async def start(self, request: StartRequest) -> StartResult:
        """Send a code; raise a `ProviderError` when it cannot."""
        ...

    async def check(self, request: CheckRequest) -> CheckOutcome:
        """Check a code; raise a `ProviderError` when the provider cannot answer."""
        ...
