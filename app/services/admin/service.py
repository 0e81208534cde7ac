"""Administration of accounts, for the admin API and the operators' command line.

Every change is written with an audit event naming the acting admin (`actor_id`;
None from the command line) in the request's transaction (a deletion's is the
`user_deleted` event of `UserService.delete`), and counted in
`phone_auth_admin_actions_total`. Lists page newest first with opaque cursors.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from app.core.database import UnitOfWork
from app.core.metrics import Metrics
from app.core.phone import Phone, mask_phone
from app.core.roles import ADMIN_ROLE, RoleError, normalise_roles
from app.models.auth_event import AuthEvent, AuthEventType
from app.models.base import utcnow
from app.models.user import MAX_USER_ID, User
from app.services.admin.exceptions import (
    MSG_OWN_ACCOUNT,
    MSG_OWN_ADMIN_ROLE,
    InvalidCursor,
    InvalidRoles,
    NotAdmin,
    SelfLockout,
    UserNotFound,
)
from app.services.admin.repository import AdminRepository
from app.services.delivery.views import VerificationDelivery, verification_page
from app.services.sessions.service import SessionService
from app.services.users.service import UserService

__all__ = ["AdminService", "AdminUser", "Page", "parse_id"]

logger = logging.getLogger(__name__)

MAX_PAGE = 100
_ID = re.compile(r"[1-9][0-9]{0,9}")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AdminUser:
    """A user as an admin sees it: the row and its number of active sessions."""

    user: User
    active_sessions: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next (None on the last)."""

    items: list[T]
    next_cursor: str | None


def parse_id(text: str) -> int | None:
    """The id `text` names, as the service writes ids and within the tables' range."""
    if not _ID.fullmatch(text) or int(text) > MAX_USER_ID:
        return None
    return int(text)


def _cursor(kind: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).rstrip(b"=").decode()


def _after(kind: str, cursor: str | None) -> int | None:
    """The id a cursor of list `kind` stands after; `InvalidCursor` for anything else."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor() from exc
    prefix, _, number = text.partition(":")
    last_id = parse_id(number)
    if prefix != kind or last_id is None:
        raise InvalidCursor()
    return last_id


class AdminService:
    """Looks users up and changes accounts on an admin's behalf; one per process."""

    def __init__(self, users: UserService, sessions: SessionService, metrics: Metrics) -> None:
        self._users = users
        self._sessions = sessions
        self._metrics = metrics

    @staticmethod
    def require_admin(user: User) -> None:
        """Refuse a user without the `admin` role (as stored now, not as the token says)."""
        if ADMIN_ROLE not in (user.roles or []):
            raise NotAdmin()

    # Reads ------------------------------------------------------------------------------

    async def user(self, uow: UnitOfWork, user_id: int) -> AdminUser:
        """The user `user_id`; `UserNotFound` when there is none."""
        user = await self._users.get(uow, user_id)
        if user is None:
            raise UserNotFound()
        return (await self._views(uow, [user]))[0]

    async def by_phone(self, uow: UnitOfWork, phone: Phone) -> Page[AdminUser]:
        """The user with `phone` (an empty page when there is none)."""
        user = await self._users.by_phone(uow, phone.e164)
        return Page(await self._views(uow, [user] if user else []), None)

    async def users(self, uow: UnitOfWork, cursor: str | None, limit: int) -> Page[AdminUser]:
        """A page of users, newest first."""
        limit = max(1, min(limit, MAX_PAGE))
        found = await self._users.page(uow, _after("u", cursor), limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return Page(
            await self._views(uow, found), _cursor("u", found[-1].id) if more and found else None
        )

    async def events(
        self, uow: UnitOfWork, user_id: int | None, cursor: str | None, limit: int
    ) -> Page[AuthEvent]:
        """A page of the audit trail (of one user when `user_id` is given), newest first."""
        limit = max(1, min(limit, MAX_PAGE))
        found = await AdminRepository(uow).events(user_id, _after("e", cursor), limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return Page(found, _cursor("e", found[-1].id) if more and found else None)

    async def verifications(
        self,
        uow: UnitOfWork,
        phone: Phone | None,
        user_id: int | None,
        cursor: str | None,
        limit: int,
    ) -> Page[VerificationDelivery]:
        """A page of verifications with their delivery, newest first: to `phone`, or a
        user's (to their current number, and the codes bound to them), or every one."""
        limit = max(1, min(limit, MAX_PAGE))
        after = _after("v", cursor)
        number = phone.e164 if phone is not None else None
        if user_id is not None:
            user = await self._users.get(uow, user_id)
            number = user.phone if user is not None else None
        found = await verification_page(uow, number, user_id, after, limit + 1)
        more = len(found) > limit
        found = found[:limit]
        return Page(found, _cursor("v", found[-1].verification.id) if more and found else None)

    async def _views(self, uow: UnitOfWork, users: Sequence[User]) -> list[AdminUser]:
        counts = await self._sessions.active_counts(uow, [user.id for user in users])
        return [AdminUser(user, counts.get(user.id, 0)) for user in users]

    # Changes ----------------------------------------------------------------------------

    async def disable(
        self,
        uow: UnitOfWork,
        actor: User | None,
        user_id: int,
        reason: str,
        client_ip: str | None = None,
    ) -> AdminUser:
        """Disable the account and revoke every session of it at once: its tokens answer
        401 from their next use, and its next login 403."""
        user = await self._target(uow, user_id)
        if actor is not None and actor.id == user.id:
            raise SelfLockout(MSG_OWN_ACCOUNT)
        now = utcnow()
        # The row first (locked by `_target`): a concurrent login either stored its
        # session before, and the revocation below finds it, or waits and is refused.
        await self._users.set_active(uow, user, active=False, reason=reason, now=now)
        revoked = await self._sessions.revoke_all(uow, user.id, "disabled")
        await self._audit(
            uow,
            "disable",
            AuthEventType.USER_DISABLED,
            actor,
            user,
            client_ip,
            {"reason": reason, "sessions_revoked": revoked},
        )
        return AdminUser(user, 0)

    async def enable(
        self, uow: UnitOfWork, actor: User | None, user_id: int, client_ip: str | None = None
    ) -> AdminUser:
        """Enable the account again: its next login succeeds (old sessions stay revoked)."""
        user = await self._target(uow, user_id)
        await self._users.set_active(uow, user, active=True, reason=None, now=utcnow())
        await self._audit(uow, "enable", AuthEventType.USER_ENABLED, actor, user, client_ip, None)
        return (await self._views(uow, [user]))[0]

    async def revoke_sessions(
        self, uow: UnitOfWork, actor: User | None, user_id: int, client_ip: str | None = None
    ) -> AdminUser:
        """Revoke every session of the account; it stays enabled and may log in again."""
        user = await self._target(uow, user_id)
        revoked = await self._sessions.revoke_all(uow, user.id, "admin_revoked")
        await self._audit(
            uow,
            "revoke_sessions",
            AuthEventType.SESSIONS_REVOKED,
            actor,
            user,
            client_ip,
            {"sessions_revoked": revoked},
        )
        return AdminUser(user, 0)

    async def delete(
        self, uow: UnitOfWork, actor: User | None, user_id: int, client_ip: str | None = None
    ) -> None:
        """Delete the account as a self-delete does (`UserService.delete`): its personal
        data, sessions and tokens go; its `user_deleted` event names the acting admin."""
        user = await self._target(uow, user_id)
        if actor is not None and actor.id == user.id:
            raise SelfLockout(MSG_OWN_ACCOUNT)
        actor_id = actor.id if actor is not None else None
        if await self._users.delete(uow, user.id, actor_id=actor_id) is None:
            raise UserNotFound()  # deleted by a concurrent request
        self._count("delete", actor, user.id)

    async def set_roles(
        self,
        uow: UnitOfWork,
        actor: User | None,
        user_id: int,
        roles: Sequence[object],
        client_ip: str | None = None,
    ) -> AdminUser:
        """Replace the account's roles; an admin cannot take `admin` from themselves.
        Tokens carry the new roles from the account's next login or refresh."""
        try:
            wanted = normalise_roles(roles)
        except RoleError as exc:
            raise InvalidRoles(str(exc)) from exc
        user = await self._target(uow, user_id)
        if actor is not None and actor.id == user.id and ADMIN_ROLE not in wanted:
            raise SelfLockout(MSG_OWN_ADMIN_ROLE)
        previous = list(user.roles or [])
        await self._users.set_roles(uow, user, wanted, utcnow())
        await self._audit(
            uow,
            "set_roles",
            AuthEventType.ROLES_CHANGED,
            actor,
            user,
            client_ip,
            {"roles": wanted, "previous_roles": previous},
        )
        return (await self._views(uow, [user]))[0]

    async def grant_role(
        self, uow: UnitOfWork, actor: User | None, user_id: int, role: str
    ) -> AdminUser:
        """Add one role to the account's roles."""
        user = await self._target(uow, user_id)
        return await self.set_roles(uow, actor, user.id, [*(user.roles or []), role])

    async def revoke_role(
        self, uow: UnitOfWork, actor: User | None, user_id: int, role: str
    ) -> AdminUser:
        """Take one role from the account's roles."""
        try:
            normalise_roles([role])
        except RoleError as exc:
            raise InvalidRoles(str(exc)) from exc
        user = await self._target(uow, user_id)
        return await self.set_roles(uow, actor, user.id, [r for r in user.roles or [] if r != role])

    async def _target(self, uow: UnitOfWork, user_id: int) -> User:
        user = await self._users.get_for_update(uow, user_id)
        if user is None:
            raise UserNotFound()
        return user

    async def _audit(
        self,
        uow: UnitOfWork,
        action: str,
        event: AuthEventType,
        actor: User | None,
        user: User,
        client_ip: str | None,
        details: dict[str, Any] | None,
    ) -> None:
        await AdminRepository(uow).add_event(
            AuthEvent(
                event=event.value,
                user_id=user.id,
                actor_id=actor.id if actor is not None else None,
                phone_masked=mask_phone(user.phone),
                client_ip=client_ip,
                details=details,
                created_at=utcnow(),
            )
        )
        self._count(action, actor, user.id)

    def _count(self, action: str, actor: User | None, user_id: int) -> None:
        via = "api" if actor is not None else "cli"
        self._metrics.admin_actions.labels(action=action, via=via).inc()
        logger.info(
            "Admin action %s on user %s by %s",
            action,
            user_id,
            f"admin {actor.id}" if actor is not None else "the command line",
        )
