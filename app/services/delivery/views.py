"""What support staff see of a verification's delivery: the verification row with its
provider's attempts (delivery status, conversion, price), newest attempt first.

The entry point of the delivery domain's read side for other domains (the admin API);
the sync that fills the attempts is `service.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from app.core.database import UnitOfWork
from app.models.delivery_attempt import DeliveryAttempt
from app.models.verification import Verification
from app.services.delivery.reporting import DeliveryReporting

__all__ = ["AttemptView", "VerificationDelivery", "format_micros", "verification_page"]

MICROS = Decimal(1_000_000)
# Prices read like the providers write them ("0.0050"): at least four decimals, and
# more only where a millionth needs them.
MIN_DECIMALS = 4


def format_micros(micros: int | None) -> str | None:
    """`5000` → `"0.0050"`, `1234567` → `"1.234567"`; None stays None."""
    if micros is None:
        return None
    text = f"{Decimal(micros) / MICROS:.6f}"
    whole, _, decimals = text.partition(".")
    decimals = decimals.rstrip("0").ljust(MIN_DECIMALS, "0")
    return f"{whole}.{decimals}"


def _currency(code: str | None) -> str | None:
    """ISO 4217 in capitals, as `/metrics` labels it (Twilio writes `usd`)."""
    return code.upper() if code else None


@dataclass(frozen=True, slots=True)
class AttemptView:
    """One attempt as its provider last reported it."""

    attempt_sid: str
    channel: str
    delivery_status: str | None
    delivery_error_code: str | None
    converted: bool | None
    price: str | None
    price_currency: str | None
    attempted_at: datetime

    @classmethod
    def of(cls, attempt: DeliveryAttempt) -> AttemptView:
        """The view of a stored attempt."""
        return cls(
            attempt_sid=attempt.attempt_sid,
            channel=attempt.channel,
            delivery_status=attempt.delivery_status,
            delivery_error_code=attempt.delivery_error_code,
            converted=attempt.converted,
            price=format_micros(attempt.price_micros),
            price_currency=_currency(attempt.price_currency),
            attempted_at=attempt.attempted_at,
        )


@dataclass(frozen=True, slots=True)
class VerificationDelivery:
    """A verification and its delivery: the summary comes from the newest attempt, the
    price is the sum of the attempts' prices when they share one currency."""

    verification: Verification
    attempts: list[AttemptView]
    delivery_status: str | None
    delivery_error_code: str | None
    converted: bool | None
    price: str | None
    price_currency: str | None
    synced_at: datetime | None


def _summary(verification: Verification, attempts: list[DeliveryAttempt]) -> VerificationDelivery:
    views = [AttemptView.of(attempt) for attempt in attempts]
    if not attempts:
        return VerificationDelivery(verification, views, None, None, None, None, None, None)
    newest = attempts[0]
    priced = [attempt for attempt in attempts if attempt.price_micros is not None]
    currencies = {(attempt.price_currency or "").upper() for attempt in priced}
    price = currency = None
    if priced and len(currencies) == 1 and "" not in currencies:
        price = format_micros(sum(attempt.price_micros or 0 for attempt in priced))
        currency = _currency(priced[0].price_currency)
    return VerificationDelivery(
        verification=verification,
        attempts=views,
        delivery_status=newest.delivery_status,
        delivery_error_code=newest.delivery_error_code,
        converted=newest.converted,
        price=price,
        price_currency=currency,
        synced_at=max(attempt.synced_at for attempt in attempts),
    )


def _belongs(attempt: DeliveryAttempt, verification: Verification) -> bool:
    if attempt.verification_id is not None:
        return attempt.verification_id == verification.id
    return bool(verification.provider_sid) and attempt.verification_sid == verification.provider_sid


async def with_delivery(
    uow: UnitOfWork, verifications: Sequence[Verification]
) -> list[VerificationDelivery]:
    """Each verification with its attempts (one statement for all of them)."""
    attempts = await DeliveryReporting(uow).attempts_of(verifications)
    return [
        _summary(row, [attempt for attempt in attempts if _belongs(attempt, row)])
        for row in verifications
    ]


async def verification_page(
    uow: UnitOfWork, phone: str | None, user_id: int | None, before_id: int | None, limit: int
) -> list[VerificationDelivery]:
    """Up to `limit` verifications with their delivery, newest first (see
    `DeliveryReporting.verifications` for which)."""
    rows = await DeliveryReporting(uow).verifications(phone, user_id, before_id, limit)
    return await with_delivery(uow, rows)
