"""Sending codes and checking them: the provider, the verification rows, the lockout.

A code allows `VERIFICATION_MAX_ATTEMPTS` checks. Each check reserves an
attempt before the provider is asked (`reserve`, through
`VerificationRepository.spend_attempt`), so concurrent guesses cannot exceed
it; a check refused before the provider heard of it (`release`) or one the
provider gave no verdict on gets its attempt back; the wrong guess that spends
the last attempt locks the code (429 until a new one is sent).

Concurrent submits of one code (a double tap) end in one login: the provider
approves the first correct check and answers the later ones "not found", which
is a 400 that leaves the row alone, so that the approval can still be stored;
a request that finds every attempt taken by checks in flight is a 400 too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from app.core.config import Settings
from app.core.database import UnitOfWork
from app.core.errors import DATABASE_DOWN_ERRORS, AppError, FieldErrors
from app.core.input_rules import code_format_error
from app.core.markets import Market
from app.core.metrics import Metrics
from app.core.phone import Phone
from app.models.verification import VerificationStatus
from app.services.verification.exceptions import (
    AppHashNotAvailable,
    ChannelNotAvailable,
    CodeLocked,
    InvalidCode,
    ProviderBlocked,
    ProviderCircuitOpen,
    ProviderError,
    ProviderMisconfigured,
    ProviderNotConfigured,
    ProviderRateLimited,
    ProviderRefusedRequest,
    ProviderRejectedNumber,
)
from app.services.verification.providers.attempts import (
    AttemptsPage,
    AttemptsSource,
    ReportedAttempt,
)
from app.services.verification.providers.base import (
    CheckOutcome,
    CheckRequest,
    StartRequest,
    VerifyProvider,
)
from app.services.verification.providers.failover import ProviderSet
from app.services.verification.providers.test_numbers import TestNumberProvider, TestNumbers
from app.services.verification.repository import (
    LOGIN,
    CodeOwner,
    NewAttempt,
    NewVerification,
    NoAttempt,
    ReservedCheck,
    VerificationRepository,
)

logger = logging.getLogger(__name__)

# Providers whose delivery attempts the login path records itself, as they have no
# report API the sync reads (Twilio's attempts come from `python -m app sync-attempts`,
# so a Twilio login writes nothing more).
RECORDS_ATTEMPTS = frozenset({"vonage"})
# A send the provider accepted says nothing of its message's fate; a code that was
# used says it reached the person.
DELIVERED = "delivered"

# The delivery domain reads providers' attempts through these.
__all__ = [
    "LOGIN",
    "AttemptsPage",
    "AttemptsSource",
    "CodeOwner",
    "ProviderError",
    "Providers",
    "ReportedAttempt",
    "ReservedCheck",
    "StartedVerification",
    "VerificationService",
]


@dataclass(frozen=True, slots=True)
class Providers:
    """The configured provider (None when it lacks credentials) and the test numbers.

    `routes`, when given, holds every configured provider by name and each market's
    order of them: a send goes to its market's order, a check to the provider that
    sent the code. Without it every market uses `primary`.
    """

    primary: VerifyProvider | None
    test: TestNumberProvider
    test_numbers: TestNumbers
    routes: ProviderSet | None = None


@dataclass(frozen=True, slots=True)
class StartedVerification:
    """A code on its way."""

    phone: Phone
    market: Market
    channel: str


class VerificationService:
    """Starts verifications and checks codes, one per process."""

    def __init__(self, settings: Settings, providers: Providers, metrics: Metrics) -> None:
        self._code_length = settings.verification_code_length
        self._max_attempts = settings.verification_max_attempts
        self._providers = providers
        self._metrics = metrics
        self._market_by_region = settings.market_by_region

    def provider_for(self, phone: Phone) -> VerifyProvider:
        """The test-number provider for an active test number, else the configured one;
        a 503 when that is not configured. A request picks it once and passes it on."""
        if self._providers.test_numbers.code_for(phone.e164) is not None:
            return self._providers.test
        provider = self._providers.primary
        routes = self._providers.routes
        if routes is not None:
            found = self._market_by_region.get(phone.region)
            provider = None if found is None else routes.for_market(found[0])
        if provider is None:
            logger.error("Verification requested but the provider's credentials are not configured")
            raise ProviderNotConfigured()
        return provider

    def is_test(self, provider: VerifyProvider) -> bool:
        """Whether `provider` is the test numbers' (fixed code, no SMS)."""
        return provider is self._providers.test

    def require_channel(self, channel: str, market: Market) -> None:
        """Refuse a channel the number's market does not deliver over."""
        if channel not in market.settings.channels:
            raise ChannelNotAvailable(channel, market.name)

    def require_app_hash_channel(self, app_hash: str | None, channel: str) -> None:
        """Refuse an app hash with a channel other than SMS, which alone carries it."""
        if app_hash is not None and channel != "sms":
            raise AppHashNotAvailable()

    def require_code_format(self, code: str) -> str:
        """Accept exactly `VERIFICATION_CODE_LENGTH` ASCII digits, or raise the 400."""
        refusal = code_format_error(code, self._code_length)
        if refusal is not None:
            raise FieldErrors({"verification_code": [refusal]})
        return code

    async def start(
        self,
        uow: UnitOfWork,
        provider: VerifyProvider,
        phone: Phone,
        market: Market,
        channel: str,
        client_ip: str | None,
        owner: CodeOwner = LOGIN,
        app_hash: str | None = None,
    ) -> StartedVerification:
        """Ask `provider` to send a code and record the verification, bound to `owner`
        (a login's code, or one user's number change)."""
        started = self._metrics.verifications_started
        try:
            sent_by = await self._start(
                uow, provider, phone, market, channel, client_ip, owner, app_hash
            )
        except AppError as exc:
            started.labels(market.name, channel, exc.outcome).inc()
            raise
        if provider is self._providers.test:
            started.labels(market.name, channel, "test_number").inc()
        else:
            started.labels(market.name, channel, "sent").inc()
            self._metrics.sms_spend.labels(market.name, sent_by).inc(
                market.settings.price_for(sent_by)
            )
        return StartedVerification(phone=phone, market=market, channel=channel)

    async def reserve(
        self, uow: UnitOfWork, phone: Phone, market: Market, owner: CodeOwner = LOGIN
    ) -> ReservedCheck:
        """Take an attempt on the number's pending code of `owner` for a check, or raise
        why there is none to take (400 no pending code, 429 locked)."""
        try:
            return await self._spend_attempt(VerificationRepository(uow), phone, owner)
        except AppError as exc:
            self._metrics.verifications_failed.labels(market.name, "none", exc.outcome).inc()
            raise

    async def release(self, uow: UnitOfWork, row: ReservedCheck) -> None:
        """Give back the attempt of a check that was refused before the provider heard
        of it."""
        await VerificationRepository(uow).refund_attempt(row.id)

    async def check(
        self,
        uow: UnitOfWork,
        provider: VerifyProvider,
        row: ReservedCheck,
        phone: Phone,
        market: Market,
        code: str,
    ) -> None:
        """Check `code` against the reserved row with `provider`, or raise the
        contract's error.

        An approved row stays pending: the login marks it used in the same
        statement as the login, then calls `approval_stored`, or
        `approval_lost` when another request used it first.
        """
        repository = VerificationRepository(uow)
        try:
            await self._check(repository, provider, row, phone, market, code)
        except AppError as exc:
            self._metrics.verifications_failed.labels(market.name, row.channel, exc.outcome).inc()
            raise

    def approval_stored(self, row: ReservedCheck, market: Market) -> None:
        """Count an approval that is now marked used (the login logs it)."""
        self._metrics.verifications_approved.labels(market.name, row.channel).inc()

    def approval_lost(self, row: ReservedCheck, phone: Phone, market: Market) -> NoReturn:
        """Refuse a code that another request used at the same moment."""
        error = InvalidCode()
        self._metrics.verifications_failed.labels(market.name, row.channel, error.outcome).inc()
        logger.info("Verification already used: market=%s phone=%s", market.name, phone.masked)
        raise error

    async def _start(
        self,
        uow: UnitOfWork,
        provider: VerifyProvider,
        phone: Phone,
        market: Market,
        channel: str,
        client_ip: str | None,
        owner: CodeOwner,
        app_hash: str | None,
    ) -> str:
        """Send and record; the name of the provider that sent the code."""
        repository = VerificationRepository(uow)
        # Stored first: a code that went out can then always be checked, even when
        # the write after the provider's answer fails.
        reserved = await repository.reserve(
            NewVerification(
                phone=phone.e164,
                market=market.name,
                channel=channel,
                provider=provider.name,
                ttl=timedelta(minutes=market.settings.code_ttl_minutes),
                purpose=owner.purpose,
                user_id=owner.user_id,
            )
        )
        request = StartRequest(
            phone=phone.e164,
            channel=channel,
            locale=market.settings.language,
            device_ip=client_ip,
            app_hash=app_hash,
        )
        try:
            result = await provider.start(request)
        except ProviderError as exc:
            _log_provider_failure(exc, "send", phone, provider.name)
            await repository.discard(reserved)
            raise
        sent_by = result.provider or provider.name
        try:
            await repository.record_started(
                reserved, phone.e164, result.sid, result.code_hash, owner, sent_by
            )
        except DATABASE_DOWN_ERRORS as exc:
            if result.code_hash is not None:
                raise  # a code this service checks itself cannot be checked without it
            # The code went out and its row is pending: it is checked by number.
            logger.error(
                "Verification sent to %s but its sid could not be stored (%s): "
                "its code will be checked by number",
                phone.masked,
                type(getattr(exc, "orig", None) or exc).__name__,
            )
        if sent_by in RECORDS_ATTEMPTS:
            await _record(
                repository.record_attempt(
                    NewAttempt(sent_by, result.sid, reserved, market.name, channel)
                ),
                sent_by,
                phone,
            )
        logger.info(
            "Verification sent: market=%s channel=%s provider=%s phone=%s",
            market.name,
            channel,
            sent_by,
            phone.masked,
        )
        return sent_by

    def _checker_for(self, provider: VerifyProvider, sent_by: str) -> VerifyProvider | None:
        """Where a code sent by `sent_by` is checked: that provider itself, never another
        (a code is known only where it was sent); None when it is not configured."""
        if provider is self._providers.test or self._providers.routes is None:
            return provider if provider.name == sent_by else None
        return self._providers.routes.named(sent_by)

    async def _spend_attempt(
        self, repository: VerificationRepository, phone: Phone, owner: CodeOwner
    ) -> ReservedCheck:
        spent = await repository.spend_attempt(phone.e164, self._max_attempts, owner)
        if spent is NoAttempt.LOCKED:
            raise CodeLocked()
        if isinstance(spent, NoAttempt):
            raise InvalidCode()
        return spent

    async def _check(
        self,
        repository: VerificationRepository,
        provider: VerifyProvider,
        row: ReservedCheck,
        phone: Phone,
        market: Market,
        code: str,
    ) -> None:
        checker = self._checker_for(provider, row.provider)
        if checker is None:
            # Started by a provider that cannot check it now (a test number since
            # expired, a provider no longer configured): nobody else knows the code.
            await repository.finish(row.id, VerificationStatus.EXPIRED)
            raise InvalidCode()
        try:
            outcome = await checker.check(
                CheckRequest(
                    sid=row.provider_sid, code=code, code_hash=row.code_hash, phone=phone.e164
                )
            )
        except ProviderError as exc:
            # The provider gave no verdict: the attempt is not the person's to lose.
            await repository.refund_attempt(row.id)
            _log_provider_failure(exc, "verify", phone, checker.name)
            raise
        if outcome is CheckOutcome.APPROVED:
            await _record_outcome(repository, checker.name, row.provider_sid, phone, used=True)
            return
        if outcome is CheckOutcome.MAX_ATTEMPTS:
            await repository.finish(row.id, VerificationStatus.LOCKED)
            await _record_outcome(repository, checker.name, row.provider_sid, phone, used=False)
            logger.warning(
                "Verification locked by provider: market=%s phone=%s", market.name, phone.masked
            )
            raise CodeLocked()
        if outcome is CheckOutcome.NOT_FOUND:
            # Also the answer to a second check of an approved code, whose approval
            # another request may be storing right now: the row is left as it is
            # (its attempt stays spent; its expiry and attempts still bound it).
            logger.info(
                "Verification unknown to provider: market=%s phone=%s", market.name, phone.masked
            )
            raise InvalidCode()
        if row.failed_attempts >= self._max_attempts:
            await repository.finish(row.id, VerificationStatus.LOCKED)
            await _record_outcome(repository, checker.name, row.provider_sid, phone, used=False)
            logger.warning(
                "Verification locked after wrong codes: market=%s phone=%s",
                market.name,
                phone.masked,
            )
        else:
            logger.info("Wrong code: market=%s phone=%s", market.name, phone.masked)
        raise InvalidCode()


async def _record(write: Awaitable[None], provider: str, phone: Phone) -> None:
    """Run a delivery attempt's write; one that fails is logged and the login goes on
    (the report is bookkeeping, the code is what the person waits for)."""
    try:
        await write
    except DATABASE_DOWN_ERRORS as exc:
        logger.warning(
            "Delivery attempt of %s for %s not recorded (%s)",
            provider.capitalize(),
            phone.masked,
            type(getattr(exc, "orig", None) or exc).__name__,
        )


async def _record_outcome(
    repository: VerificationRepository, provider: str, sid: str, phone: Phone, *, used: bool
) -> None:
    """For a provider whose attempts the login path records: whether the code was used
    (a used code also says its message was delivered)."""
    if provider in RECORDS_ATTEMPTS:
        await _record(
            repository.record_attempt_outcome(
                provider, sid, converted=used, delivery_status=DELIVERED if used else None
            ),
            provider,
            phone,
        )


def _log_provider_failure(exc: ProviderError, operation: str, phone: Phone, provider: str) -> None:
    """Say in the log why the provider failed; the client sees only the error's message."""
    code = exc.provider_code
    name = (exc.provider or provider).capitalize()
    if isinstance(exc, ProviderMisconfigured):
        logger.error(
            "%s is misconfigured (%s code %s) during %s for %s: %s",
            name,
            name,
            code,
            operation,
            phone.masked,
            exc.reason,
        )
    elif isinstance(exc, ProviderRejectedNumber):
        pass  # the adapter logged the refusal; the person is told what is wrong
    elif isinstance(exc, ProviderBlocked):
        logger.warning(
            "%s blocked %s for %s as suspected fraud (%s code %s)",
            name,
            operation,
            phone.masked,
            name,
            code,
        )
    elif isinstance(exc, ProviderCircuitOpen):
        logger.warning("%s circuit open: %s refused for %s", name, operation, phone.masked)
    elif isinstance(exc, ProviderRefusedRequest):
        logger.warning(
            "%s refused %s for %s with an error the service does not map (%s code %s): %s",
            name,
            operation,
            phone.masked,
            name,
            code,
            exc.reason,
        )
    elif isinstance(exc, ProviderRateLimited):
        logger.info(
            "%s rate limit (%s code %s) on %s for %s", name, name, code, operation, phone.masked
        )
    else:
        logger.error(
            "%s failed during %s for %s (%s code %s): %s",
            name,
            operation,
            phone.masked,
            name,
            code,
            exc.reason,
        )
