"""The statement that stores what Vonage's callbacks report on a Vonage attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, String, bindparam, func, update

from app.core.database import UnitOfWork
from app.models.base import table_of
from app.models.delivery_attempt import DeliveryAttempt

_A = table_of(DeliveryAttempt)
# A value the callback does not carry leaves the stored one as it is.
_STORE = (
    update(_A)
    .where(_A.c.provider == "vonage", _A.c.attempt_sid == bindparam("b_sid"))
    .values(
        converted=func.coalesce(bindparam("b_converted", type_=Boolean), _A.c.converted),
        price_micros=func.coalesce(bindparam("b_price", type_=BigInteger), _A.c.price_micros),
        price_currency=func.coalesce(bindparam("b_currency", type_=String), _A.c.price_currency),
        provider_updated_at=bindparam("b_at"),
        synced_at=bindparam("b_now"),
    )
)


@dataclass(frozen=True, slots=True)
class VonageReport:
    """What one callback says of the request `request_id`."""

    request_id: str
    converted: bool | None
    price_micros: int | None
    currency: str | None
    at: datetime


class VonageReports:
    """Vonage attempts, updated from its callbacks in the request's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def store(self, report: VonageReport, now: datetime) -> bool:
        """Store `report` on its attempt; False when no attempt has that request id."""
        result = await self._uow.session.execute(
            _STORE,
            {
                "b_sid": report.request_id,
                "b_converted": report.converted,
                "b_price": report.price_micros,
                "b_currency": report.currency,
                "b_at": report.at,
                "b_now": now,
            },
        )
        return bool(getattr(result, "rowcount", 0))
