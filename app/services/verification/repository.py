"""Every statement on the `verifications` table but the login's own (which marks
an approved row used: `app.services.login.repository`).

Statements are built once: a statement object caches its compiled form, so
the hot paths pay neither construction nor compilation per request. Writes
on this table are committed at once, apart from the request's transaction:
a spent attempt must stay spent even when the request fails later, and no
connection is held while the provider answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import Connection, bindparam, delete, exists, insert, literal_column, select, update
from sqlalchemy.engine import CursorResult

from app.core.database import UnitOfWork
from app.models.base import table_of, utcnow
from app.models.verification import Verification, VerificationStatus

_V = table_of(Verification)
_PENDING = VerificationStatus.PENDING.value

_EXPIRE_OTHER_PENDING = (
    update(_V)
    .where(
        _V.c.phone == bindparam("b_phone"),
        _V.c.status == _PENDING,
        _V.c.provider_sid != bindparam("b_sid"),
    )
    .values(status=VerificationStatus.EXPIRED.value, updated_at=bindparam("b_now"))
)
_NEW_ROW_COLUMNS = (
    "phone",
    "market",
    "channel",
    "provider",
    "provider_sid",
    "code_hash",
    "status",
    "failed_attempts",
    "created_at",
    "expires_at",
    "updated_at",
)
# A new pending row, unless the provider answered with the sid of a pending one
# (a resend within its window): that row and its spent attempts stay.
_INSERT_UNLESS_PENDING = insert(_V).from_select(
    list(_NEW_ROW_COLUMNS),
    select(
        bindparam("b_phone", type_=_V.c.phone.type),
        bindparam("b_market", type_=_V.c.market.type),
        bindparam("b_channel", type_=_V.c.channel.type),
        bindparam("b_provider", type_=_V.c.provider.type),
        bindparam("b_sid", type_=_V.c.provider_sid.type),
        bindparam("b_code_hash", type_=_V.c.code_hash.type),
        literal_column(f"'{_PENDING}'", _V.c.status.type),
        literal_column("0", _V.c.failed_attempts.type),
        bindparam("b_now", type_=_V.c.created_at.type),
        bindparam("b_expires_at", type_=_V.c.expires_at.type),
        bindparam("b_now", type_=_V.c.updated_at.type),
    ).where(
        ~exists().where(
            _V.c.phone == bindparam("b_phone"),
            _V.c.provider_sid == bindparam("b_sid"),
            _V.c.status == _PENDING,
        )
    ),
)
# PostgreSQL does both in one statement (a data-modifying WITH), so that it
# can run as one autocommitted round trip; the WITH runs on the same snapshot.
_RECORD_STARTED_PG = _INSERT_UNLESS_PENDING.add_cte(
    _EXPIRE_OTHER_PENDING.returning(_V.c.id).cte("expired_other_pending")
)

_NEWEST_ID = (
    select(_V.c.id)
    .where(_V.c.phone == bindparam("b_phone"))
    .order_by(_V.c.created_at.desc(), _V.c.id.desc())
    .limit(1)
    .scalar_subquery()
)
# Take one attempt on the newest row when it is pending, unexpired and has
# attempts left.
_SPEND_ATTEMPT = (
    update(_V)
    .where(
        _V.c.id == _NEWEST_ID,
        _V.c.status == _PENDING,
        _V.c.failed_attempts < bindparam("b_max_attempts"),
        _V.c.expires_at > bindparam("b_now"),
    )
    .values(failed_attempts=_V.c.failed_attempts + 1, updated_at=bindparam("b_now"))
    .returning(
        _V.c.id,
        _V.c.channel,
        _V.c.provider,
        _V.c.provider_sid,
        _V.c.code_hash,
        _V.c.failed_attempts,
    )
)
_NEWEST = (
    select(_V.c.id, _V.c.status, _V.c.expires_at, _V.c.failed_attempts)
    .where(_V.c.phone == bindparam("b_phone"))
    .order_by(_V.c.created_at.desc(), _V.c.id.desc())
    .limit(1)
)
_REFUND_ATTEMPT = (
    update(_V)
    .where(
        _V.c.id == bindparam("b_id"),
        _V.c.status == _PENDING,
        _V.c.failed_attempts > 0,
    )
    .values(failed_attempts=_V.c.failed_attempts - 1, updated_at=bindparam("b_now"))
)
_FINISH = (
    update(_V)
    .where(_V.c.id == bindparam("b_id"), _V.c.status == _PENDING)
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)


@dataclass(slots=True)
class ReservedCheck:
    """A pending verification with one attempt taken for the check in flight."""

    id: int
    channel: str
    provider: str
    provider_sid: str
    code_hash: str | None
    failed_attempts: int


class NoAttempt(Enum):
    """Why no attempt could be taken on a number's newest verification."""

    NO_CODE = "no pending code"  # none, used, expired or failed
    LOCKED = "locked by wrong codes"
    IN_FLIGHT = "every attempt taken by checks still in flight"


@dataclass(frozen=True, slots=True)
class NewVerification:
    """A verification the provider started."""

    phone: str
    market: str
    channel: str
    provider: str
    provider_sid: str
    code_hash: str | None
    ttl: timedelta


class VerificationRepository:
    """The verifications of phone numbers."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def record_started(self, new: NewVerification) -> None:
        """Store a started verification; it replaces the pending ones of the number.

        PostgreSQL: one statement. SQLite: two statements in one transaction.
        """
        now = utcnow()
        params = {
            "b_phone": new.phone,
            "b_market": new.market,
            "b_channel": new.channel,
            "b_provider": new.provider,
            "b_sid": new.provider_sid,
            "b_code_hash": new.code_hash,
            "b_now": now,
            "b_expires_at": now + new.ttl,
        }
        if self._uow.dialect == "postgresql":
            await self._uow.commit_statement_now(_RECORD_STARTED_PG, params)
            return

        def record(connection: Connection) -> None:
            connection.execute(_EXPIRE_OTHER_PENDING, params)
            connection.execute(_INSERT_UNLESS_PENDING, params)

        await self._uow.committed_now(record)

    async def spend_attempt(self, phone: str, max_attempts: int) -> ReservedCheck | NoAttempt:
        """Take one attempt on the newest verification of `phone`, committed at once.

        Counting the attempt before asking the provider bounds the checks per
        code even when many requests arrive at the same moment. When none can
        be taken, say why. Nothing is written then: a late request must not
        finish a row whose approval another request is storing.
        """
        now = utcnow()
        params = {"b_phone": phone, "b_max_attempts": max_attempts, "b_now": now}
        reserved = await self._uow.commit_statement_now(_SPEND_ATTEMPT, params)
        if reserved is not None:
            return ReservedCheck(*reserved)
        newest = await self._uow.commit_statement_now(_NEWEST, {"b_phone": phone})
        if newest is None:
            return NoAttempt.NO_CODE
        _, status, expires_at, failed_attempts = newest
        if status == VerificationStatus.LOCKED:
            return NoAttempt.LOCKED
        if status != VerificationStatus.PENDING or expires_at <= now:
            return NoAttempt.NO_CODE
        if failed_attempts >= max_attempts:
            # The row is locked by the check that fails last, not here: one in
            # flight may still be the right code.
            return NoAttempt.IN_FLIGHT
        # The newest row changed between the two statements (a new code was sent):
        # try once more on the new one.
        reserved = await self._uow.commit_statement_now(_SPEND_ATTEMPT, params)
        return ReservedCheck(*reserved) if reserved is not None else NoAttempt.NO_CODE

    async def refund_attempt(self, verification_id: int) -> None:
        """Give back an attempt the provider gave no verdict on."""
        await self._uow.commit_statement_now(
            _REFUND_ATTEMPT, {"b_id": verification_id, "b_now": utcnow()}
        )

    async def finish(self, verification_id: int, status: VerificationStatus) -> None:
        """Move a pending row to `status`, unless another request got there first."""
        await self._uow.commit_statement_now(
            _FINISH, {"b_id": verification_id, "b_status": status.value, "b_now": utcnow()}
        )

    async def purge_created_before(self, cutoff: datetime) -> int:
        """Delete the rows created before `cutoff`, in the unit's transaction; how many."""
        result = await self._uow.session.execute(delete(_V).where(_V.c.created_at < cutoff))
        assert isinstance(result, CursorResult)
        return int(result.rowcount or 0)
