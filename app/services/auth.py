"""The two steps of a phone login, as the routers call them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Channel, Settings
from app.core.database import StatementRunner
from app.core.errors import (
    DATABASE_DOWN_ERRORS,
    AppError,
    FieldErrors,
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
)
from app.core.metrics import Metrics
from app.core.request_context import set_log_phone
from app.models import User
from app.models.base import utcnow
from app.services.login_statement import LoginValues, store_login
from app.services.phone import Phone, mask_phone
from app.services.rate_limits import Limit, LoginLimits, Refusal
from app.services.sessions import (
    SessionService,
    TokenPair,
    first_pair,
    hash_token,
    new_login_session,
)
from app.services.tokens import TokenService
from app.services.users import LoginUser, get_or_create_for_login
from app.services.verifications import (
    Market,
    Providers,
    ReservedCheck,
    StartedVerification,
    VerificationService,
    require_code_format,
    resolve_market,
)

logger = logging.getLogger(__name__)

MSG_LOGIN_NOT_STORED = (
    "Your code was accepted, but signing in could not be completed. Please request a new code."
)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A successful login."""

    tokens: TokenPair
    market: Market
    is_new_user: bool


class AuthService:
    """Sends login codes and exchanges a correct code for a token."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writes: StatementRunner,
        settings: Settings,
        providers: Providers,
        limits: LoginLimits,
        tokens: TokenService,
        metrics: Metrics,
    ) -> None:
        self._db_sessions = sessions
        self._writes = writes
        self._settings = settings
        self._limits = limits
        self._metrics = metrics
        self._verifications = VerificationService(sessions, writes, settings, providers, metrics)
        self._tokens = tokens
        self._test_provider = providers.test

    async def send_code(
        self, phone: Phone, channel: Channel = Channel.SMS, client_ip: str | None = None
    ) -> StartedVerification:
        """Send a login code to `phone` over `channel`, within the limits."""
        set_log_phone(mask_phone(phone.e164))
        market = resolve_market(self._settings, phone)
        if channel not in market.settings.channels:
            raise FieldErrors(
                {"channel": [f'"{channel.value}" is not available for {market.name} numbers.']}
            )
        provider = self._verifications.provider_for(phone)
        refusal = await self._limits.allow_send(
            phone.e164, market.name, client_ip, test_number=provider is self._test_provider
        )
        if refusal is not None:
            self._metrics.rate_limit_refusals.labels(refusal.limit.value).inc()
            raise _refused(refusal, phone, market)
        return await self._verifications.start(provider, phone, market, channel.value, client_ip)

    async def login(self, phone: Phone, code: str, client_ip: str | None = None) -> LoginResult:
        """Check `code` and return the user with a fresh access token."""
        set_log_phone(mask_phone(phone.e164))
        market = resolve_market(self._settings, phone)
        require_code_format(code, self._settings.verification_code_length)
        provider = self._verifications.provider_for(phone)
        refusal = await self._limits.allow_verify(
            phone.e164, client_ip, test_number=provider is self._test_provider
        )
        if refusal is not None:
            self._metrics.rate_limit_refusals.labels(refusal.limit.value).inc()
            raise _refused(refusal, phone, market)
        approved = await self._verifications.check(provider, phone, market, code)
        try:
            stored = await self._store_login(approved, phone, market, client_ip)
        except DATABASE_DOWN_ERRORS as exc:
            # The code is spent (Twilio approved it); only a new one can log in now.
            logger.error(
                "Code approved for %s but the login could not be stored (%s): "
                "asking for a new code",
                mask_phone(phone.e164),
                type(getattr(exc, "orig", None) or exc).__name__,
            )
            raise ServiceUnavailable(MSG_LOGIN_NOT_STORED) from exc
        if stored is None:
            raise self._verifications.approval_lost(approved, phone, market)
        found, pair = stored
        logger.info(
            "Login: user=%s market=%s new=%s phone=%s",
            found.user.id,
            market.name,
            found.created,
            mask_phone(phone.e164),
        )
        return LoginResult(tokens=pair, market=market, is_new_user=found.created)

    async def _store_login(
        self, approved: ReservedCheck, phone: Phone, market: Market, client_ip: str | None
    ) -> tuple[LoginUser, TokenPair] | None:
        """Mark the verification used, find or make the user and open its session: one
        statement on PostgreSQL. None when another request used the verification first."""
        if self._writes.dialect == "postgresql":
            session_id, raw = new_login_session()
            now = utcnow()
            row = await store_login(
                self._writes,
                LoginValues(
                    verification_id=approved.id,
                    phone=phone.e164,
                    name=phone.national_number,
                    market=market.name,
                    session_id=session_id,
                    token_hash=hash_token(raw),
                    refresh_expires_at=now
                    + timedelta(seconds=self._settings.refresh_token_expire_seconds),
                    phone_masked=mask_phone(phone.e164),
                    client_ip=client_ip,
                    now=now,
                ),
            )
            if row is None:
                return None
            self._verifications.approval_stored(approved, market)
            values = row._asdict()
            del values["verification_id"]
            created = bool(values.pop("created"))
            if values["id"] is not None:
                user = User(**values)
                pair = first_pair(
                    self._tokens,
                    self._settings.refresh_token_expire_seconds,
                    user,
                    session_id,
                    raw,
                )
                return LoginUser(user, created), pair
        elif await self._verifications.mark_approved(approved):
            self._verifications.approval_stored(approved, market)
        else:
            return None
        async with self._db_sessions.begin() as session:
            found = await get_or_create_for_login(session, phone, market.name)
            if not found.user.is_active:
                logger.warning("Login refused for disabled user %s", mask_phone(phone.e164))
                raise Forbidden()
            pair = await SessionService(session, self._settings, self._tokens).start(
                found.user, client_ip
            )
        return found, pair


def _refused(refusal: Refusal, phone: Phone, market: Market) -> AppError:
    if refusal.limit is Limit.SMS_BUDGET:
        logger.error(
            "SMS budget of market %s used up (%s): refusing sends for %ss; "
            "an attack or a bug, not a busy user",
            market.name,
            refusal.limit.value,
            refusal.retry_after,
        )
        return ServiceUnavailable(headers={"Retry-After": str(refusal.retry_after)})
    logger.info(
        "Rate limit %s refused %s for %ss",
        refusal.limit.value,
        mask_phone(phone.e164),
        refusal.retry_after,
    )
    return TooManyRequests(refusal.retry_after)
