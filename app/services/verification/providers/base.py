"""What the service needs from a verification provider (its errors are in
`app.services.verification.exceptions`)."""

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
    # Android SMS Retriever's app signature hash, appended to the SMS (sms only).
    app_hash: str | None = None


@dataclass(frozen=True, slots=True)
class StartResult:
    """A started verification. `code_hash` is only set by providers that keep it locally;
    `provider` names the provider that sent the code when it is not the one asked (a
    failover), so that the check goes there."""

    sid: str
    code_hash: str | None = None
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """A code to check against a started verification: the one named `sid`, or when
    the sid is empty (never stored), the newest pending one of `phone`."""

    sid: str
    code: str
    code_hash: str | None = None
    phone: str | None = None


class VerifyProvider(Protocol):
    """Sends codes and checks them."""

    name: str

    async def start(self, request: StartRequest) -> StartResult:
        """Send a code; raise a `ProviderError` when it cannot."""
        ...

    async def check(self, request: CheckRequest) -> CheckOutcome:
        """Check a code; raise a `ProviderError` when the provider cannot answer."""
        ...
