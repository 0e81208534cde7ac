"""Every statement on `delivery_attempts` and `sync_watermarks`, and the lookup of the
verifications an attempt belongs to.

A sync's writes are committed page by page (`UnitOfWork.committed_now`), apart from
whatever else the unit holds: a page's attempts stand even when a later page fails.
The lookups run in short transactions of their own too, so that no connection (nor,
on SQLite, the write lock) is held while the provider answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from app.core.database import UnitOfWork
from app.models.base import table_of
from app.models.delivery_attempt import DeliveryAttempt, SyncWatermark
from app.models.verification import Verification

_A = table_of(DeliveryAttempt)
_W = table_of(SyncWatermark)
_V = table_of(Verification)


@dataclass(frozen=True, slots=True)
class AttemptValues:
    """What a sync stores of one attempt, beside its provider and sid."""

    verification_sid: str
    verification_id: int | None
    market: str | None
    channel: str
    delivery_status: str | None
    delivery_error_code: str | None
    converted: bool | None
    price_micros: int | None
    price_currency: str | None
    attempted_at: datetime
    provider_updated_at: datetime | None


_FIELDS = tuple(AttemptValues.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class StoredAttempt:
    """An attempt already stored: its row id and values."""

    id: int
    values: AttemptValues


@dataclass(frozen=True, slots=True)
class VerificationRef:
    """A verification row an attempt may belong to."""

    id: int
    provider_sid: str
    market: str
    created_at: datetime


_SELECT_STORED = select(_A.c.id, _A.c.attempt_sid, *(_A.c[name] for name in _FIELDS)).where(
    _A.c.provider == bindparam("b_provider"),
    _A.c.attempt_sid.in_(bindparam("b_sids", expanding=True)),
)
_SELECT_VERIFICATIONS = select(_V.c.id, _V.c.provider_sid, _V.c.market, _V.c.created_at).where(
    _V.c.provider_sid.in_(bindparam("b_sids", expanding=True))
)
_UPDATE_ATTEMPT = (
    update(_A)
    .where(_A.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in (*_FIELDS, "synced_at")})
)
_SELECT_WATERMARK = select(_W.c.watermark_at).where(_W.c.name == bindparam("b_name"))
_INSERT_WATERMARK = insert(_W)
# Never backwards: a run that saw only older attempts leaves it where it is.
_ADVANCE_WATERMARK = (
    update(_W)
    .where(_W.c.name == bindparam("b_name"), _W.c.watermark_at < bindparam("b_at"))
    .values(watermark_at=bindparam("b_at"), updated_at=bindparam("b_now"))
)


class DeliveryRepository:
    """The delivery attempts of one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def watermark(self, name: str) -> datetime | None:
        """The newest creation time the sync `name` has stored, if it ever ran."""
        row = await self._uow.commit_statement_now(_SELECT_WATERMARK, {"b_name": name})
        return None if row is None else row[0]

    async def lookup(
        self, provider: str, attempt_sids: Sequence[str], verification_sids: Sequence[str]
    ) -> tuple[dict[str, StoredAttempt], list[VerificationRef]]:
        """The stored attempts among `attempt_sids`, and every verification row whose
        provider sid is among `verification_sids`."""

        def work(connection: Connection) -> tuple[dict[str, StoredAttempt], list[VerificationRef]]:
            stored = {
                row.attempt_sid: StoredAttempt(
                    id=row.id,
                    values=AttemptValues(**{name: row._mapping[name] for name in _FIELDS}),
                )
                for row in connection.execute(
                    _SELECT_STORED, {"b_provider": provider, "b_sids": list(attempt_sids)}
                )
            }
            verifications = [
                VerificationRef(
                    id=row.id,
                    provider_sid=row.provider_sid,
                    market=row.market,
                    created_at=row.created_at,
                )
                for row in connection.execute(
                    _SELECT_VERIFICATIONS, {"b_sids": list(verification_sids)}
                )
            ]
            return stored, verifications

        return await self._uow.committed_now(work)

    async def save(
        self,
        provider: str,
        new: Iterable[tuple[str, AttemptValues]],
        changed: Iterable[tuple[int, AttemptValues]],
        now: datetime,
    ) -> None:
        """Insert the `new` (attempt sid, values) and rewrite the `changed` (row id,
        values), committed at once. An attempt another run inserted meanwhile is left
        as that run stored it."""
        inserts = [
            {"provider": provider, "attempt_sid": sid, "synced_at": now, **asdict(values)}
            for sid, values in new
        ]
        updates = [
            {"b_id": row_id, "b_synced_at": now}
            | {f"b_{name}": value for name, value in asdict(values).items()}
            for row_id, values in changed
        ]
        if not inserts and not updates:
            return

        def work(connection: Connection) -> None:
            if inserts:
                connection.execute(_insert_new(connection.dialect.name), inserts)
            if updates:
                connection.execute(_UPDATE_ATTEMPT, updates)

        await self._uow.committed_now(work)

    async def advance_watermark(self, name: str, at: datetime, now: datetime) -> None:
        """Move the sync `name`'s watermark to `at`, never backwards; committed at once."""

        def work(connection: Connection) -> None:
            if connection.execute(_SELECT_WATERMARK, {"b_name": name}).first() is None:
                connection.execute(
                    _INSERT_WATERMARK, {"name": name, "watermark_at": at, "updated_at": now}
                )
            else:
                connection.execute(_ADVANCE_WATERMARK, {"b_name": name, "b_at": at, "b_now": now})

        await self._uow.committed_now(work)

    async def purge_attempted_before(self, cutoff: datetime) -> int:
        """Delete the attempts made before `cutoff`, in the unit's transaction; how many."""
        result = await self._uow.session.execute(delete(_A).where(_A.c.attempted_at < cutoff))
        assert isinstance(result, CursorResult)
        return int(result.rowcount or 0)


def _insert_new(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """An insert that skips an attempt already stored (a concurrent run's)."""
    if dialect == "postgresql":
        return postgresql.insert(_A).on_conflict_do_nothing(
            index_elements=[_A.c.provider, _A.c.attempt_sid]
        )
    return sqlite.insert(_A).on_conflict_do_nothing(
        index_elements=[_A.c.provider, _A.c.attempt_sid]
    )
