"""The two steps of a phone login, as the routers call them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import Forbidden
from app.models import User
from app.services.phone import Phone, mask_phone
from app.services.tokens import AccessToken, TokenService
from app.services.users import get_or_create_for_login
from app.services.verifications import (
    Market,
    StartedVerification,
    VerificationService,
    require_code_format,
    resolve_market,
)
from app.services.verify_provider import VerifyProvider

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A successful login."""

    user: User
    token: AccessToken
    market: Market
    is_new_user: bool


class AuthService:
    """Sends login codes and exchanges a correct code for a token."""

    def __init__(
        self,
        session: AsyncSession,
        settings: Settings,
        provider: VerifyProvider | None,
        tokens: TokenService,
    ) -> None:
        self._session = session
        self._settings = settings
        self._tokens = tokens
        self._verifications = VerificationService(session, provider, settings)

    async def send_code(
        self, phone: Phone, channel: str = "sms", client_ip: str | None = None
    ) -> StartedVerification:
        """Send a login code to `phone`."""
        market = resolve_market(self._settings, phone)
        return await self._verifications.start(phone, market, channel, client_ip)

    async def login(self, phone: Phone, code: str) -> LoginResult:
        """Check `code` and return the user with a fresh access token."""
        market = resolve_market(self._settings, phone)
        require_code_format(code, self._settings.verification_code_length)
        await self._verifications.check(phone, market, code)
        found = await get_or_create_for_login(self._session, phone, market.name)
        if not found.user.is_active:
            logger.warning("Login refused for disabled user %s", mask_phone(phone.e164))
            raise Forbidden()
        token = self._tokens.issue(user_id=found.user.id, phone=phone.e164, market=market.name)
        logger.info(
            "Login: user=%s market=%s new=%s phone=%s",
            found.user.id,
            market.name,
            found.created,
            mask_phone(phone.e164),
        )
        return LoginResult(user=found.user, token=token, market=market, is_new_user=found.created)
