"""What a provider reports of the codes it sent: its delivery attempts, read page by page.

Provider-neutral: the Twilio adapter fills these from Verify's Attempts API; a
provider without a list API has no `AttemptsSource`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ReportedAttempt:
    """One attempt to deliver a code, as the provider reports it now.

    `price_micros` is the charge in millionths of `price_currency` (upper case),
    None until the provider knows it; `converted` is None when the provider does
    not say; `country` is the destination's ISO region, when given.
    """

    sid: str
    verification_sid: str
    channel: str
    created_at: datetime
    updated_at: datetime | None = None
    converted: bool | None = None
    delivery_status: str | None = None
    delivery_error_code: str | None = None
    price_micros: int | None = None
    price_currency: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptsPage:
    """One page of attempts; `next_page` is the provider's opaque cursor to the next
    one (None on the last page)."""

    attempts: tuple[ReportedAttempt, ...]
    next_page: str | None = None


class AttemptsSource(Protocol):
    """A provider that lists its delivery attempts."""

    name: str

    async def list_attempts(
        self, created_after: datetime, *, page_size: int, page: str | None = None
    ) -> AttemptsPage:
        """The attempts created after `created_after`, one page at a time (`page`: a
        previous page's `next_page`); raise a `ProviderError` when the provider cannot
        answer."""
        ...
