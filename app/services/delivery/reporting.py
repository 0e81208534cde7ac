"""The read side's statements on `delivery_attempts`: a number's or a user's recent
verifications with their attempts, and the per-market figures of `/metrics`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, bindparam, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import UnitOfWork
from app.models.base import table_of
from app.models.delivery_attempt import DeliveryAttempt
from app.models.verification import Verification


@dataclass(frozen=True, slots=True)
class MarketWindow:
    """What one market's attempts since `since` add up to."""

    market: str
    attempts: int
    delivered: int
    undelivered: int
    failed: int
    converted: int
    conversion_known: int


@dataclass(frozen=True, slots=True)
class MarketSpend:
    """A market's reported spend in one currency since a moment, in millionths."""

    market: str
    provider: str
    currency: str
    micros: int


class DeliveryReporting:
    """Reads verifications and their delivery attempts."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def verifications(
        self,
        phone: str | None,
        user_id: int | None,
        before_id: int | None,
        limit: int,
    ) -> list[Verification]:
        """Up to `limit` verifications, newest first, older than `before_id` when given:
        to `phone`, or to `phone` and bound to `user_id` (a user's current number and
        their number changes), or every one when neither is given."""
        query = select(Verification).order_by(Verification.id.desc()).limit(limit)
        if user_id is not None:
            bound = Verification.user_id == user_id
            query = query.where(or_(bound, Verification.phone == phone) if phone else bound)
        elif phone is not None:
            query = query.where(Verification.phone == phone)
        if before_id is not None:
            query = query.where(Verification.id < before_id)
        return list((await self._uow.session.scalars(query)).all())

    async def attempts_of(self, verifications: Sequence[Verification]) -> list[DeliveryAttempt]:
        """The attempts of `verifications`, newest first: those matched to a row by its
        id, and those of its provider's sid not yet matched."""
        if not verifications:
            return []
        ids = [row.id for row in verifications]
        sids = [row.provider_sid for row in verifications if row.provider_sid]
        matches: ColumnElement[bool] = DeliveryAttempt.verification_id.in_(ids)
        if sids:
            matches = or_(matches, DeliveryAttempt.verification_sid.in_(sids))
        query = (
            select(DeliveryAttempt)
            .where(matches)
            .order_by(DeliveryAttempt.attempted_at.desc(), DeliveryAttempt.id.desc())
        )
        return list((await self._uow.session.scalars(query)).all())


_A = table_of(DeliveryAttempt)
_MARKET = func.coalesce(_A.c.market, "unknown")


def _count_when(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


_WINDOW = (
    select(
        _MARKET,
        func.count(),
        _count_when(_A.c.delivery_status == "delivered"),
        _count_when(_A.c.delivery_status == "undelivered"),
        _count_when(_A.c.delivery_status == "failed"),
        _count_when(_A.c.converted.is_(True)),
        _count_when(_A.c.converted.is_not(None)),
    )
    .where(_A.c.attempted_at >= bindparam("b_since", type_=_A.c.attempted_at.type))
    .group_by(_MARKET)
)
_CURRENCY = func.upper(_A.c.price_currency)
_SPEND = (
    select(_MARKET, _A.c.provider, _CURRENCY, func.sum(_A.c.price_micros))
    .where(
        _A.c.attempted_at >= bindparam("b_since", type_=_A.c.attempted_at.type),
        _A.c.price_micros.is_not(None),
        _A.c.price_currency.is_not(None),
    )
    .group_by(_MARKET, _A.c.provider, _CURRENCY)
)


class DeliveryFigures:
    """The per-market figures of `/metrics`, read on the engine outside any request."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def read(
        self, since: Sequence[datetime]
    ) -> list[tuple[list[MarketWindow], list[MarketSpend]]]:
        """For each moment of `since`, the attempts made since then per market (sent, by
        message status, converted of those with a known conversion) and their reported
        spend per market, provider and currency. One connection, two statements each."""
        figures = []
        async with self._engine.connect() as connection:
            for moment in since:
                params = {"b_since": moment}
                windows = (await connection.execute(_WINDOW, params)).all()
                spend = (await connection.execute(_SPEND, params)).all()
                figures.append(
                    (
                        [
                            MarketWindow(str(row[0]), *(int(value) for value in row[1:]))
                            for row in windows
                        ],
                        [MarketSpend(str(m), str(p), str(c), int(s or 0)) for m, p, c, s in spend],
                    )
                )
        return figures
