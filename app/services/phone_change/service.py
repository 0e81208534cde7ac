"""Changing the number of a logged-in user.

A code goes to the new number through the login's own send path (validation,
markets, channels, limits, provider), bound to the purpose `phone_change`
and to the user: it never logs anyone in at verify-code, a login code never
changes a number, and one user's change code is no other user's. The change
itself checks the number again, so that a concurrent change or login that
took it meanwhile answers 409 and changes nothing.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from app.core.config import Channel
from app.core.database import UnitOfWork
from app.core.errors import AppError
from app.core.metrics import Metrics
from app.core.phone import Phone, mask_phone
from app.models.auth_event import AuthEvent, AuthEventType
from app.models.base import utcnow
from app.models.user import User
from app.models.verification import VerificationPurpose
from app.services.login.service import LoginResult, LoginService
from app.services.phone_change.exceptions import PhoneInUse, SamePhone
from app.services.phone_change.repository import PhoneChangeRepository
from app.services.sessions.service import SessionService
from app.services.verification.service import CodeOwner, StartedVerification

__all__ = ["PhoneChangeService"]

logger = logging.getLogger(__name__)


class PhoneChangeService:
    """Sends number-change codes and changes numbers; one per process."""

    def __init__(self, login: LoginService, sessions: SessionService, metrics: Metrics) -> None:
        self._login = login
        self._sessions = sessions
        self._metrics = metrics

    async def send_code(
        self,
        uow: UnitOfWork,
        user: User,
        phone: Phone,
        channel: Channel = Channel.SMS,
        client_ip: str | None = None,
        *,
        captcha_token: str | None = None,
        app_hash: str | None = None,
    ) -> StartedVerification:
        """Send a code for changing `user`'s number to `phone`: 400 for the user's own
        number, 409 for another account's, then exactly as a login's send (the bot
        challenge included)."""
        await self._require_free(uow, user, phone)
        sent = await self._login.send_code(
            uow,
            phone,
            channel,
            client_ip,
            captcha_token=captcha_token,
            app_hash=app_hash,
            owner=_owner(user),
        )
        await PhoneChangeRepository(uow).add_event(
            _event(AuthEventType.PHONE_CHANGE_REQUESTED, user, phone, None, client_ip)
        )
        logger.info(
            "Number change requested: user=%s from=%s to=%s",
            user.id,
            mask_phone(user.phone),
            phone.masked,
        )
        return sent

    async def change(
        self,
        uow: UnitOfWork,
        user: User,
        session_id: str,
        phone: Phone,
        code: str,
        client_ip: str | None = None,
    ) -> LoginResult:
        """Check `user`'s change code for `phone`, move the user to that number (and its
        market), revoke every other session and return a fresh pair for this one."""
        await self._require_free(uow, user, phone)
        checked = await self._login.check_code(uow, phone, code, client_ip, _owner(user))
        repository = PhoneChangeRepository(uow)
        if not await repository.mark_used(checked.row.id):
            self._login.approval_lost(checked, phone)
        old_masked = mask_phone(user.phone)
        # Taken meanwhile by a login or another change: 409, and the rollback undoes all.
        await self._require_free(uow, user, phone)
        renewed = await self._sessions.keep_only(uow, user.id, session_id)
        try:
            await repository.move(user, phone.e164, checked.market.name)
        except IntegrityError as exc:
            self._metrics.phone_changes.labels(PhoneInUse.outcome).inc()
            raise PhoneInUse() from exc
        event = _event(AuthEventType.PHONE_CHANGED, user, phone, session_id, client_ip)
        event.phone_masked = old_masked
        await repository.add_event(event)
        self._login.approval_stored(checked)
        self._metrics.phone_changes.labels("changed").inc()
        logger.info(
            "Number changed: user=%s from=%s to=%s market=%s",
            user.id,
            old_masked,
            phone.masked,
            checked.market.name,
        )
        return LoginResult(
            tokens=self._sessions.first_pair(user, renewed),
            market=checked.market,
            is_new_user=False,
        )

    async def _require_free(self, uow: UnitOfWork, user: User, phone: Phone) -> None:
        try:
            if phone.e164 == user.phone:
                raise SamePhone()
            if await PhoneChangeRepository(uow).taken_by_other(phone.e164, user.id):
                raise PhoneInUse()
        except AppError as exc:
            self._metrics.phone_changes.labels(exc.outcome).inc()
            raise


def _owner(user: User) -> CodeOwner:
    return CodeOwner(VerificationPurpose.PHONE_CHANGE, user.id)


def _event(
    kind: AuthEventType, user: User, phone: Phone, session_id: str | None, client_ip: str | None
) -> AuthEvent:
    """An audit event of `user`'s change to `phone`: the old number and the new, masked."""
    return AuthEvent(
        event=kind.value,
        user_id=user.id,
        session_id=session_id,
        phone_masked=mask_phone(user.phone),
        new_phone_masked=phone.masked,
        client_ip=client_ip,
        created_at=utcnow(),
    )
