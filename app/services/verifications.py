"""Starting verifications and checking codes, with their rows in the database.

Changes to a verification row are committed as they happen, apart from the
request's own transaction: a spent attempt must stay spent even when the
request fails later, and no connection is held while the provider answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, exists, insert, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import MarketSettings, Settings
from app.core.database import StatementRunner
from app.core.errors import (
    MSG_BLOCKED,
    AppError,
    FieldErrors,
    Forbidden,
    InvalidCode,
    ServiceUnavailable,
    TooManyRequests,
    UpstreamFailed,
)
from app.core.metrics import Metrics
from app.models import Verification, VerificationStatus
from app.models.base import table_of, utcnow
from app.services.circuit_breaker import ProviderCircuitOpen
from app.services.phone import (
    MSG_INVALID,
    MSG_NO_SMS,
    MSG_UNSUPPORTED_COUNTRY,
    Phone,
    mask_phone,
)
from app.services.test_numbers import TestNumberProvider, TestNumbers
from app.services.verify_provider import (
    CheckOutcome,
    CheckRequest,
    NumberProblem,
    ProviderBlocked,
    ProviderError,
    ProviderMisconfigured,
    ProviderRateLimited,
    ProviderRejectedNumber,
    StartRequest,
    VerifyProvider,
)

logger = logging.getLogger(__name__)

MSG_LOCKED = "Too many failed attempts. Please request a new code."
LOCKED_RETRY_AFTER_SECONDS = 60

_NUMBER_MESSAGES = {
    NumberProblem.INVALID: MSG_INVALID,
    NumberProblem.CANNOT_RECEIVE_SMS: MSG_NO_SMS,
    NumberProblem.COUNTRY_NOT_ALLOWED: MSG_UNSUPPORTED_COUNTRY,
}


@dataclass(frozen=True, slots=True)
class Providers:
    """The configured provider (None when Twilio lacks credentials) and the test numbers."""

    primary: VerifyProvider | None
    test: TestNumberProvider
    test_numbers: TestNumbers


@dataclass(frozen=True, slots=True)
class Market:
    """A configured market a number belongs to."""

    name: str
    settings: MarketSettings


@dataclass(frozen=True, slots=True)
class StartedVerification:
    """A code on its way."""

    phone: Phone
    market: Market
    channel: str


_V = table_of(Verification)
_PENDING = VerificationStatus.PENDING.value

# Built once: a statement object caches its compiled form, so the hot paths
# pay neither construction nor compilation per request.
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
# The common check: take one attempt on the newest row when it is pending,
# unexpired and has attempts left, in one statement.
_RESERVE_NEWEST = (
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
# An approved check marks its row used; the attempt it took was not a failed
# one. Also the first step of the one-statement login (login_statement.py).
MARK_APPROVED = (
    update(_V)
    .where(_V.c.id == bindparam("b_id"), _V.c.status == _PENDING)
    .values(
        status=VerificationStatus.APPROVED.value,
        updated_at=bindparam("b_now"),
        failed_attempts=_V.c.failed_attempts - 1,
    )
    .returning(_V.c.id)
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


def resolve_market(settings: Settings, phone: Phone) -> Market:
    """The market of `phone`'s region; a 400 when none is configured for it, or when
    the number cannot take SMS (fixed line, premium rate, …)."""
    found = settings.market_by_region.get(phone.region)
    if found is None:
        raise FieldErrors({"phone": [MSG_UNSUPPORTED_COUNTRY]})
    if not phone.can_receive_sms:
        raise FieldErrors({"phone": [MSG_NO_SMS]})
    return Market(name=found[0], settings=found[1])


def require_code_format(code: str, length: int) -> str:
    """Accept exactly `length` ASCII digits, or raise the contract's 400."""
    if len(code) != length or not (code.isascii() and code.isdigit()):
        raise FieldErrors({"verification_code": [f"Verification code must be {length} digits."]})
    return code


class VerificationService:
    """Sends codes through the provider and checks them against the newest row."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: StatementRunner,
        settings: Settings,
        providers: Providers,
        metrics: Metrics,
    ) -> None:
        self._sessions = sessions
        self._writes = writes
        self._settings = settings
        self._providers = providers
        self._metrics = metrics

    def provider_for(self, phone: Phone) -> VerifyProvider:
        """The test-number provider for an active test number, else the configured one."""
        if self._providers.test_numbers.code_for(phone.e164) is not None:
            return self._providers.test
        if self._providers.primary is None:
            logger.error("Verification requested but the Twilio credentials are not configured")
            raise ServiceUnavailable()
        return self._providers.primary

    async def start(
        self,
        provider: VerifyProvider,
        phone: Phone,
        market: Market,
        channel: str,
        client_ip: str | None,
    ) -> StartedVerification:
        """Ask `provider` to send a code and record the verification."""
        started = self._metrics.verifications_started
        try:
            result = await self._start(provider, phone, market, channel, client_ip)
        except AppError as exc:
            started.labels(market.name, channel, _outcome(exc)).inc()
            raise
        if provider is self._providers.test:
            started.labels(market.name, channel, "test_number").inc()
        else:
            started.labels(market.name, channel, "sent").inc()
            self._metrics.sms_spend.labels(market.name).inc(market.settings.price_usd)
        return result

    async def _start(
        self,
        provider: VerifyProvider,
        phone: Phone,
        market: Market,
        channel: str,
        client_ip: str | None,
    ) -> StartedVerification:
        request = StartRequest(
            phone=phone.e164,
            channel=channel,
            locale=market.settings.language,
            device_ip=client_ip,
        )
        try:
            result = await provider.start(request)
        except ProviderError as exc:
            raise _app_error(exc, "send", phone) from exc

        now = utcnow()
        params = {
            "b_phone": phone.e164,
            "b_market": market.name,
            "b_channel": channel,
            "b_provider": provider.name,
            "b_sid": result.sid,
            "b_code_hash": result.code_hash,
            "b_now": now,
            "b_expires_at": now + timedelta(minutes=market.settings.code_ttl_minutes),
        }
        if self._writes.dialect == "postgresql":
            await self._writes.execute(_RECORD_STARTED_PG, params)
        else:
            await self._writes.run(partial(_record_started, params=params))
        logger.info(
            "Verification sent: market=%s channel=%s phone=%s",
            market.name,
            channel,
            mask_phone(phone.e164),
        )
        return StartedVerification(phone=phone, market=market, channel=channel)

    async def check(
        self, provider: VerifyProvider, phone: Phone, market: Market, code: str
    ) -> ReservedCheck:
        """Check `code` for `phone` with the provider, or raise the contract's error.

        An approved row comes back still pending: the caller marks it used with
        `mark_approved`, or in the same statement as the login where it can,
        and then calls `approval_stored` or `approval_lost`.
        """
        channel: list[str] = ["none"]
        try:
            return await self._check(provider, phone, market, code, channel)
        except AppError as exc:
            self._metrics.verifications_failed.labels(market.name, channel[0], _outcome(exc)).inc()
            raise

    async def mark_approved(self, row: ReservedCheck) -> bool:
        """Mark an approved row used; False when another request used it first."""
        params = {"b_id": row.id, "b_now": utcnow()}
        return await self._writes.first(MARK_APPROVED, params) is not None

    def approval_stored(self, row: ReservedCheck, market: Market) -> None:
        """Count an approval that is now marked used (the login logs it)."""
        self._metrics.verifications_approved.labels(market.name, row.channel).inc()

    def approval_lost(self, row: ReservedCheck, phone: Phone, market: Market) -> AppError:
        """The error for a code another request used at the same moment."""
        self._metrics.verifications_failed.labels(market.name, row.channel, "invalid_code").inc()
        logger.info(
            "Verification already used: market=%s phone=%s", market.name, mask_phone(phone.e164)
        )
        return InvalidCode()

    async def _check(
        self,
        provider: VerifyProvider,
        phone: Phone,
        market: Market,
        code: str,
        channel: list[str],
    ) -> ReservedCheck:
        row = await self._reserve_attempt(phone)
        channel[0] = row.channel
        if row.provider != provider.name:
            # Started by another provider (a test number since expired, a changed
            # VERIFY_PROVIDER): this one cannot know the code.
            await self._finish(row, VerificationStatus.EXPIRED)
            raise InvalidCode()
        try:
            outcome = await provider.check(
                CheckRequest(sid=row.provider_sid, code=code, code_hash=row.code_hash)
            )
        except ProviderError as exc:
            # The provider gave no verdict: the attempt is not the person's to lose.
            await self._refund_attempt(row)
            raise _app_error(exc, "verify", phone) from exc

        masked = mask_phone(phone.e164)
        if outcome is CheckOutcome.APPROVED:
            return row
        if outcome is CheckOutcome.MAX_ATTEMPTS:
            await self._finish(row, VerificationStatus.LOCKED)
            logger.warning(
                "Verification locked by provider: market=%s phone=%s", market.name, masked
            )
            raise TooManyRequests(LOCKED_RETRY_AFTER_SECONDS, MSG_LOCKED)
        if outcome is CheckOutcome.NOT_FOUND:
            await self._finish(row, VerificationStatus.EXPIRED)
            logger.info("Verification unknown to provider: market=%s phone=%s", market.name, masked)
            raise InvalidCode()
        if row.failed_attempts >= self._settings.verification_max_attempts:
            await self._finish(row, VerificationStatus.LOCKED)
            logger.warning(
                "Verification locked after wrong codes: market=%s phone=%s", market.name, masked
            )
        else:
            logger.info("Wrong code: market=%s phone=%s", market.name, masked)
        raise InvalidCode()

    async def _reserve_attempt(self, phone: Phone) -> ReservedCheck:
        """Take one attempt on the newest verification of `phone`, committed at once.

        Counting the attempt before asking the provider bounds the checks per
        code even when many requests arrive at the same moment.
        """
        reserved = await self._writes.first(
            _RESERVE_NEWEST,
            {
                "b_phone": phone.e164,
                "b_max_attempts": self._settings.verification_max_attempts,
                "b_now": utcnow(),
            },
        )
        if reserved is not None:
            return ReservedCheck(*reserved)
        return await self._reserve_or_refuse(phone)

    async def _reserve_or_refuse(self, phone: Phone) -> ReservedCheck:
        """The uncommon case: say why no attempt can be taken, or take it after all
        (a row that changed since the one-statement try)."""
        async with self._sessions() as session:
            return await self._reserve_or_refuse_in(session, phone)

    async def _reserve_or_refuse_in(self, session: AsyncSession, phone: Phone) -> ReservedCheck:
        row = await session.scalar(
            select(Verification)
            .where(Verification.phone == phone.e164)
            .order_by(Verification.created_at.desc(), Verification.id.desc())
            .limit(1)
        )
        now = utcnow()
        if row is None:
            await session.commit()
            raise InvalidCode()
        if row.status == VerificationStatus.LOCKED:
            await session.commit()
            raise TooManyRequests(LOCKED_RETRY_AFTER_SECONDS, MSG_LOCKED)
        if row.status != VerificationStatus.PENDING:
            await session.commit()
            raise InvalidCode()
        if row.expires_at <= now:
            row.status = VerificationStatus.EXPIRED
            await session.commit()
            raise InvalidCode()

        max_attempts = self._settings.verification_max_attempts
        attempts = await session.scalar(
            update(Verification)
            .where(
                Verification.id == row.id,
                Verification.status == VerificationStatus.PENDING,
                Verification.failed_attempts < max_attempts,
            )
            .values(failed_attempts=Verification.failed_attempts + 1, updated_at=now)
            .returning(Verification.failed_attempts)
        )
        if attempts is None:
            # Every attempt is spent or in flight. The row is locked by the check
            # that fails last, not here: one in flight may still be the right code.
            await session.refresh(row)
            status = row.status
            await session.commit()
            if status in (VerificationStatus.PENDING, VerificationStatus.LOCKED):
                raise TooManyRequests(LOCKED_RETRY_AFTER_SECONDS, MSG_LOCKED)
            raise InvalidCode()
        await session.commit()
        return ReservedCheck(
            id=row.id,
            channel=row.channel,
            provider=row.provider,
            provider_sid=row.provider_sid,
            code_hash=row.code_hash,
            failed_attempts=attempts,
        )

    async def _refund_attempt(self, row: ReservedCheck) -> None:
        await self._writes.execute(_REFUND_ATTEMPT, {"b_id": row.id, "b_now": utcnow()})

    async def _finish(self, row: ReservedCheck, status: VerificationStatus) -> None:
        """Move a pending row to `status`, unless another request got there first."""
        await self._writes.execute(
            _FINISH, {"b_id": row.id, "b_status": status.value, "b_now": utcnow()}
        )


def _record_started(connection: Connection, params: dict[str, Any]) -> None:
    """Store a started verification; it replaces the pending ones of the number (SQLite:
    two statements in one transaction; PostgreSQL runs `_RECORD_STARTED_PG`)."""
    connection.execute(_EXPIRE_OTHER_PENDING, params)
    connection.execute(_INSERT_UNLESS_PENDING, params)


def _outcome(exc: AppError) -> str:
    """A metrics label for why a send or a check did not succeed."""
    return {
        InvalidCode: "invalid_code",
        TooManyRequests: "too_many_attempts",
        FieldErrors: "number_refused",
        Forbidden: "blocked",
        UpstreamFailed: "provider_error",
        ServiceUnavailable: "unavailable",
    }.get(type(exc), "error")


def _app_error(exc: ProviderError, operation: str, phone: Phone) -> AppError:
    """Turn a provider failure into what the client is told, logging the cause."""
    masked = mask_phone(phone.e164)
    code = exc.provider_code
    if isinstance(exc, ProviderMisconfigured):
        logger.error(
            "Twilio is misconfigured (Twilio code %s) during %s for %s: %s",
            code,
            operation,
            masked,
            exc.reason,
        )
        return ServiceUnavailable()
    if isinstance(exc, ProviderRejectedNumber):
        return FieldErrors({"phone": [_NUMBER_MESSAGES[exc.problem]]})
    if isinstance(exc, ProviderBlocked):
        logger.warning(
            "Twilio blocked %s for %s as suspected fraud (Twilio code %s)", operation, masked, code
        )
        return Forbidden(MSG_BLOCKED)
    if isinstance(exc, ProviderCircuitOpen):
        logger.warning("Twilio circuit open: %s refused for %s", operation, masked)
        return ServiceUnavailable(headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, ProviderRateLimited):
        logger.info("Twilio rate limit (Twilio code %s) on %s for %s", code, operation, masked)
        return TooManyRequests(exc.retry_after)
    logger.error(
        "Twilio failed during %s for %s (Twilio code %s): %s", operation, masked, code, exc.reason
    )
    return UpstreamFailed()
