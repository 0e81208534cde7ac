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

from sqlalchemy import (
    Connection,
    String,
    Update,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from app.core.database import UnitOfWork
from app.models.base import table_of, utcnow
from app.models.delivery_attempt import DeliveryAttempt
from app.models.verification import Verification, VerificationPurpose, VerificationStatus

_V = table_of(Verification)
_PENDING = VerificationStatus.PENDING.value
# A code is bound to its purpose and user (None for a login): every statement that
# picks a number's codes picks only those of one purpose and user.
_SAME_OWNER = (
    _V.c.purpose == bindparam("b_purpose"),
    _V.c.user_id.is_not_distinct_from(bindparam("b_user_id", type_=_V.c.user_id.type)),
)

# The sid of a row stored before the provider answered: its code, if one went out,
# is checked by number (`VerificationRepository.reserve`).
UNSENT_SID = ""

_INSERT_RESERVED = insert(_V).returning(_V.c.id)
# A pending row with the sid the provider answered, other than the reserved one: a
# resend within its window, whose row and spent attempts stay.
_PENDING_WITH_SID = select(_V.c.id).where(
    _V.c.phone == bindparam("b_phone"),
    _V.c.provider_sid == bindparam("b_sid"),
    _V.c.status == _PENDING,
    _V.c.id != bindparam("b_id"),
    *_SAME_OWNER,
)
_EXPIRE_OTHER_PENDING = (
    update(_V)
    .where(
        _V.c.phone == bindparam("b_phone"),
        _V.c.status == _PENDING,
        _V.c.provider_sid != bindparam("b_sid"),
        _V.c.id != bindparam("b_id"),
        *_SAME_OWNER,
    )
    .values(status=VerificationStatus.EXPIRED.value, updated_at=bindparam("b_now"))
)
_SET_SID = (
    update(_V)
    .where(_V.c.id == bindparam("b_id"))
    .values(
        provider=func.coalesce(bindparam("b_provider", type_=String), _V.c.provider),
        provider_sid=bindparam("b_sid"),
        code_hash=bindparam("b_code_hash"),
        updated_at=bindparam("b_now"),
    )
)
_DELETE_RESERVED = delete(_V).where(_V.c.id == bindparam("b_id"), _V.c.provider_sid == UNSENT_SID)


def _build_record_started_pg() -> Update:
    """The three writes of `record_started` as one statement: PostgreSQL runs a
    data-modifying WITH on one snapshot, in one autocommitted round trip."""
    kept = _PENDING_WITH_SID.cte("kept_verification")
    expired = _EXPIRE_OTHER_PENDING.returning(_V.c.id).cte("expired_other_pending")
    dropped = (
        _DELETE_RESERVED.where(exists(select(kept.c.id))).returning(_V.c.id).cte("dropped_reserved")
    )
    return _SET_SID.where(~exists(select(kept.c.id))).add_cte(expired, dropped)


_RECORD_STARTED_PG = _build_record_started_pg()

_NEWEST_ID = (
    select(_V.c.id)
    .where(_V.c.phone == bindparam("b_phone"), *_SAME_OWNER)
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
    .where(_V.c.phone == bindparam("b_phone"), *_SAME_OWNER)
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


# Attempts of providers that report through the login path itself (Vonage: its
# request id is the attempt's and the verification's sid). Inserted once: a second
# insert of the same attempt changes nothing.
_DA = table_of(DeliveryAttempt)
_INSERT_ATTEMPT = {
    "postgresql": postgresql.insert(_DA).on_conflict_do_nothing(
        index_elements=[_DA.c.provider, _DA.c.attempt_sid]
    ),
    "sqlite": sqlite.insert(_DA).on_conflict_do_nothing(
        index_elements=[_DA.c.provider, _DA.c.attempt_sid]
    ),
}
_ATTEMPT_OUTCOME = (
    update(_DA)
    .where(_DA.c.provider == bindparam("b_provider"), _DA.c.attempt_sid == bindparam("b_sid"))
    .values(
        converted=bindparam("b_converted"),
        delivery_status=func.coalesce(
            bindparam("b_delivery_status", type_=String), _DA.c.delivery_status
        ),
        provider_updated_at=bindparam("b_now"),
        synced_at=bindparam("b_now"),
    )
)


@dataclass(frozen=True, slots=True)
class NewAttempt:
    """A delivery attempt known at send time: what a provider without a report API of
    its own gives (Vonage: the channel, no status and no price)."""

    provider: str
    sid: str
    verification_id: int
    market: str
    channel: str
    delivery_status: str | None = None


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
    """A verification about to be started."""

    phone: str
    market: str
    channel: str
    provider: str
    ttl: timedelta
    purpose: VerificationPurpose = VerificationPurpose.LOGIN
    user_id: int | None = None


@dataclass(frozen=True, slots=True)
class CodeOwner:
    """Whose code a statement picks: a login's (no user) or a user's number change."""

    purpose: VerificationPurpose = VerificationPurpose.LOGIN
    user_id: int | None = None

    def params(self) -> dict[str, object]:
        """The bind parameters of `_SAME_OWNER`."""
        return {"b_purpose": self.purpose.value, "b_user_id": self.user_id}


LOGIN = CodeOwner()


class VerificationRepository:
    """The verifications of phone numbers."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def reserve(self, new: NewVerification) -> int:
        """Store a pending row before the provider is asked to send, so that a code
        that goes out can always be checked; its id. One statement."""
        now = utcnow()
        row = await self._uow.commit_statement_now(
            _INSERT_RESERVED,
            {
                "phone": new.phone,
                "market": new.market,
                "channel": new.channel,
                "provider": new.provider,
                "provider_sid": UNSENT_SID,
                "code_hash": None,
                "status": _PENDING,
                "failed_attempts": 0,
                "created_at": now,
                "expires_at": now + new.ttl,
                "updated_at": now,
                "purpose": new.purpose.value,
                "user_id": new.user_id,
            },
        )
        assert row is not None
        return int(row[0])

    async def discard(self, verification_id: int) -> None:
        """Remove a reserved row whose code the provider did not send."""
        await self._uow.commit_statement_now(_DELETE_RESERVED, {"b_id": verification_id})

    async def record_started(
        self,
        verification_id: int,
        phone: str,
        sid: str,
        code_hash: str | None,
        owner: CodeOwner = LOGIN,
        provider: str | None = None,
    ) -> None:
        """Give the reserved row the sid, and `provider` when given: the one that sent the
        code (the next of the market's order when the first failed). It replaces the
        number's other pending codes. When the sid is that of a pending row (a resend within its
        window), that row and its spent attempts stay and the reserved one goes.

        PostgreSQL: one statement. SQLite: up to three in one transaction.
        """
        params = {
            "b_id": verification_id,
            "b_phone": phone,
            "b_sid": sid,
            "b_code_hash": code_hash,
            "b_provider": provider,
            "b_now": utcnow(),
            **owner.params(),
        }
        if self._uow.dialect == "postgresql":
            await self._uow.commit_statement_now(_RECORD_STARTED_PG, params)
            return

        def record(connection: Connection) -> None:
            kept = connection.execute(_PENDING_WITH_SID, params).first() is not None
            connection.execute(_EXPIRE_OTHER_PENDING, params)
            connection.execute(_DELETE_RESERVED if kept else _SET_SID, params)

        await self._uow.committed_now(record)

    async def spend_attempt(
        self, phone: str, max_attempts: int, owner: CodeOwner = LOGIN
    ) -> ReservedCheck | NoAttempt:
        """Take one attempt on the newest verification of `phone` for `owner` (a login's,
        or a user's number change), committed at once.

        Counting the attempt before asking the provider bounds the checks per
        code even when many requests arrive at the same moment. When none can
        be taken, say why. Nothing is written then: a late request must not
        finish a row whose approval another request is storing.
        """
        now = utcnow()
        params = {
            "b_phone": phone,
            "b_max_attempts": max_attempts,
            "b_now": now,
            **owner.params(),
        }
        reserved = await self._uow.commit_statement_now(_SPEND_ATTEMPT, params)
        if reserved is not None:
            return ReservedCheck(*reserved)
        newest = await self._uow.commit_statement_now(_NEWEST, {"b_phone": phone, **owner.params()})
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

    async def record_attempt(self, attempt: NewAttempt) -> None:
        """Store a delivery attempt at send time, committed at once; stored already, it
        stays as it is."""
        now = utcnow()
        await self._uow.commit_statement_now(
            _INSERT_ATTEMPT[self._uow.dialect],
            {
                "provider": attempt.provider,
                "attempt_sid": attempt.sid,
                "verification_sid": attempt.sid,
                "verification_id": attempt.verification_id,
                "market": attempt.market,
                "channel": attempt.channel,
                "delivery_status": attempt.delivery_status,
                "attempted_at": now,
                "synced_at": now,
            },
        )

    async def record_attempt_outcome(
        self, provider: str, sid: str, converted: bool, delivery_status: str | None
    ) -> None:
        """Record whether an attempt's code was used (and, when known, its message's
        status), committed at once."""
        await self._uow.commit_statement_now(
            _ATTEMPT_OUTCOME,
            {
                "b_provider": provider,
                "b_sid": sid,
                "b_converted": converted,
                "b_delivery_status": delivery_status,
                "b_now": utcnow(),
            },
        )

    async def purge_created_before(self, cutoff: datetime) -> int:
        """Delete the rows created before `cutoff`, in the unit's transaction; how many."""
        result = await self._uow.session.execute(delete(_V).where(_V.c.created_at < cutoff))
        assert isinstance(result, CursorResult)
        return int(result.rowcount or 0)
