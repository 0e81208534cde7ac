"""The two steps of a phone login, as the routers call them: send a code, then
exchange the right code for a session."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NoReturn

from app.core.config import Channel, Settings
from app.core.database import UnitOfWork
from app.core.errors import DATABASE_DOWN_ERRORS, AppError
from app.core.markets import Market, Markets
from app.core.phone import Phone
from app.core.request_context import set_log_phone
from app.models.base import utcnow
from app.services.challenge.service import ChallengeInfo, ChallengeService
from app.services.limits.service import LoginLimits
from app.services.login.exceptions import LoginNotStored
from app.services.login.repository import LoginRepository, LoginValues
from app.services.sessions.service import SessionService, TokenPair
from app.services.users.service import UserDisabled
from app.services.verification.service import (
    LOGIN,
    CodeOwner,
    ReservedCheck,
    StartedVerification,
    VerificationService,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckedCode:
    """A code the provider approved: its row (still pending) and the number's market."""

    row: ReservedCheck
    market: Market


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A successful login."""

    tokens: TokenPair
    market: Market
    is_new_user: bool


@dataclass(frozen=True, slots=True)
class PublicSettings:
    """What a frontend needs to know before a login, and nothing secret."""

    markets: tuple[Market, ...]
    code_length: int
    challenge: ChallengeInfo
    one_tap: bool


class LoginService:
    """Sends login codes and exchanges a correct code for a session; one per process."""

    def __init__(
        self,
        settings: Settings,
        verification: VerificationService,
        limits: LoginLimits,
        sessions: SessionService,
        challenge: ChallengeService,
    ) -> None:
        self._markets = Markets(settings)
        self._verification = verification
        self._limits = limits
        self._sessions = sessions
        self._challenge = challenge
        markets = self._markets.all()
        self.public_settings = PublicSettings(
            markets=markets,
            code_length=settings.verification_code_length,
            challenge=challenge.info,
            # Android's SMS Retriever reads the code from an SMS carrying the app's hash.
            one_tap=any(Channel.SMS in market.settings.channels for market in markets),
        )

    async def send_code(
        self,
        uow: UnitOfWork,
        phone: Phone,
        channel: Channel = Channel.SMS,
        client_ip: str | None = None,
        *,
        captcha_token: str | None = None,
        app_hash: str | None = None,
        owner: CodeOwner = LOGIN,
    ) -> StartedVerification:
        """Send a code to `phone` over `channel`: past the challenge when the send needs
        one, then within the limits. A login code, or with `owner` one bound to a user's
        number change (same checks, same limits)."""
        set_log_phone(phone.masked)
        market = self._markets.of(phone)
        self._verification.require_channel(channel, market)
        self._verification.require_app_hash_channel(app_hash, channel.value)
        provider = self._verification.provider_for(phone)
        test_number = self._verification.is_test(provider)
        # Before the limits: a send refused here uses up no number's sends or budget.
        await self._challenge.guard_send(
            phone, market, client_ip, captcha_token, test_number=test_number
        )
        await self._limits.take_send(phone, market, client_ip, test_number=test_number)
        return await self._verification.start(
            uow, provider, phone, market, channel.value, client_ip, owner, app_hash
        )

    async def check_code(
        self,
        uow: UnitOfWork,
        phone: Phone,
        code: str,
        client_ip: str | None = None,
        owner: CodeOwner = LOGIN,
    ) -> CheckedCode:
        """Check `code` against the pending code of `owner` for `phone`, within the
        limits, or raise the contract's error. The approved row stays pending: the
        caller marks it used with what it stores, then calls `approval_stored`.

        The client's limits come first; the number's window for this client is
        taken only once a pending code has an attempt reserved, so that guesses
        at a number without a code count against nobody's use of it.
        """
        set_log_phone(phone.masked)
        market = self._markets.of(phone)
        self._verification.require_code_format(code)
        provider = self._verification.provider_for(phone)
        await self._limits.take_verify(phone, market, client_ip)
        reserved = await self._verification.reserve(uow, phone, market, owner)
        try:
            await self._limits.take_code_check(phone, market, client_ip)
        except AppError:
            await self._verification.release(uow, reserved)
            raise
        await self._verification.check(uow, provider, reserved, phone, market, code)
        return CheckedCode(reserved, market)

    def approval_stored(self, checked: CheckedCode) -> None:
        """Count an approved code that is now marked used."""
        self._verification.approval_stored(checked.row, checked.market)

    def approval_lost(self, checked: CheckedCode, phone: Phone) -> NoReturn:
        """Refuse an approved code that another request used at the same moment."""
        self._verification.approval_lost(checked.row, phone, checked.market)

    async def login(
        self, uow: UnitOfWork, phone: Phone, code: str, client_ip: str | None = None
    ) -> LoginResult:
        """Check `code` (a login code only) and return the user with a fresh token pair."""
        checked = await self.check_code(uow, phone, code, client_ip)
        market = checked.market
        tokens, created = await self._store(uow, checked.row, phone, market, client_ip)
        logger.info(
            "Login: user=%s market=%s new=%s phone=%s",
            tokens.user.id,
            market.name,
            created,
            phone.masked,
        )
        return LoginResult(tokens=tokens, market=market, is_new_user=created)

    async def _store(
        self,
        uow: UnitOfWork,
        approved: ReservedCheck,
        phone: Phone,
        market: Market,
        client_ip: str | None,
    ) -> tuple[TokenPair, bool]:
        """Mark the verification used, find or make the user and open its session."""
        now = utcnow()
        new_session = self._sessions.new_login_session(now)
        values = LoginValues(
            verification_id=approved.id,
            phone=phone.e164,
            name=phone.national_number,
            market=market.name,
            session_id=new_session.id,
            token_hash=new_session.token_hash,
            refresh_expires_at=new_session.refresh_expires_at,
            phone_masked=phone.masked,
            client_ip=client_ip,
            now=now,
            auth_time=new_session.auth_time,
        )
        try:
            stored = await LoginRepository(uow).store(values)
        except DATABASE_DOWN_ERRORS as exc:
            # The code is spent (the provider approved it); only a new one can log in now.
            logger.error(
                "Code approved for %s but the login could not be stored (%s): "
                "asking for a new code",
                phone.masked,
                type(getattr(exc, "orig", None) or exc).__name__,
            )
            raise LoginNotStored() from exc
        if stored is None:
            self._verification.approval_lost(approved, phone, market)
        self._verification.approval_stored(approved, market)
        if not stored.user.is_active:
            logger.warning("Login refused for disabled user %s", phone.masked)
            raise UserDisabled()
        return self._sessions.first_pair(stored.user, new_session), stored.created
