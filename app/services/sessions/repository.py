"""Every statement on login sessions, refresh tokens and their audit events, but the
login's own (`app.services.login.repository`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Update, delete, func, insert, select, update

from app.core.database import UnitOfWork
from app.models.auth_event import AuthEvent, AuthEventType
from app.models.base import table_of, utcnow
from app.models.login_session import LoginSession, RefreshToken

_S, _R, _E = table_of(LoginSession), table_of(RefreshToken), table_of(AuthEvent)
_INSERT_EVENT = insert(_E)


class SessionRepository:
    """Login sessions and their refresh tokens, in the request's transaction."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def token_by_hash(self, token_hash: str) -> RefreshToken | None:
        """The refresh token stored as `token_hash`."""
        return await self._uow.session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )

    async def get_session(self, session_id: str) -> LoginSession | None:
        """The login session `session_id`; None when it is gone (its user was deleted)."""
        return await self._uow.session.get(LoginSession, session_id)

    async def claim(self, token: RefreshToken, now: datetime) -> bool:
        """Mark `token` rotated; of concurrent claims exactly one gets True."""
        claimed = await self._uow.session.scalar(
            update(RefreshToken)
            .where(RefreshToken.id == token.id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=now)
            .returning(RefreshToken.id)
        )
        return claimed is not None

    async def reload(self, token: RefreshToken) -> bool:
        """Read `token` again (another request may have rotated it); False when it is
        gone (its user was deleted meanwhile)."""
        found = await self._uow.session.scalar(
            select(RefreshToken)
            .where(RefreshToken.id == token.id)
            .execution_options(populate_existing=True)
        )
        return found is not None

    async def child_of(self, token: RefreshToken) -> RefreshToken | None:
        """The token `token` was exchanged for, if any."""
        return await self._uow.session.scalar(
            select(RefreshToken).where(RefreshToken.parent_id == token.id)
        )

    def add_token(self, token: RefreshToken) -> None:
        """Store a new refresh token with the request."""
        self._uow.session.add(token)

    def add_event(self, event: AuthEvent) -> None:
        """Store an audit event with the request."""
        self._uow.session.add(event)

    async def active_sessions(self, user_id: int, session_id: str | None) -> list[LoginSession]:
        """The user's sessions that are not revoked: all, or only `session_id`."""
        query = select(LoginSession).where(
            LoginSession.revoked_at.is_(None), LoginSession.user_id == user_id
        )
        if session_id is not None:
            query = query.where(LoginSession.id == session_id)
        return list((await self._uow.session.scalars(query)).all())

    async def delete_tokens(self, session_id: str) -> None:
        """Delete every refresh token of a session: none of them works any more."""
        await self._uow.session.execute(
            delete(RefreshToken).where(RefreshToken.session_id == session_id)
        )

    async def revoke(self, session_id: str, reason: str) -> None:
        """Revoke a session, unless it is revoked already."""
        await self._uow.session.execute(_revoke(session_id, reason))

    async def revoke_for_reuse(self, event: AuthEvent) -> None:
        """Revoke the session of a reused refresh token and audit it, committed now:
        the revocation must stand although the request answers 401."""
        session_id = event.session_id
        assert session_id is not None
        values = {
            "event": AuthEventType.REUSE_DETECTED.value,
            "user_id": event.user_id,
            "session_id": session_id,
            "phone_masked": event.phone_masked,
            "client_ip": event.client_ip,
            "created_at": event.created_at,
        }

        def revoke(connection: Connection) -> None:
            connection.execute(_revoke(session_id, "reuse_detected"))
            connection.execute(_INSERT_EVENT, values)

        await self._uow.committed_now(revoke)

    async def is_active(self, session_id: str, user_id: int) -> bool:
        """Whether the session exists, belongs to the user and is not revoked."""
        result = await self._uow.session.execute(
            select(LoginSession.revoked_at).where(
                LoginSession.id == session_id, LoginSession.user_id == user_id
            )
        )
        row = result.first()
        return row is not None and row[0] is None

    async def flush(self) -> None:
        """Send what the request added so far."""
        await self._uow.session.flush()

    async def revoke_all(self, user_id: int, reason: str) -> int:
        """Revoke every session of the user that is not revoked yet; how many were."""
        result = await self._uow.session.execute(
            update(_S)
            .where(_S.c.user_id == user_id, _S.c.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason)
            .returning(_S.c.id)
        )
        return len(result.all())

    async def active_counts(self, user_ids: list[int], now: datetime) -> dict[int, int]:
        """Per user, the sessions not revoked whose latest refresh token is unexpired."""
        if not user_ids:
            return {}
        renewable = (
            select(_R.c.id)
            .where(_R.c.session_id == _S.c.id, _R.c.rotated_at.is_(None), _R.c.expires_at > now)
            .exists()
        )
        result = await self._uow.session.execute(
            select(_S.c.user_id, func.count())
            .where(_S.c.user_id.in_(user_ids), _S.c.revoked_at.is_(None), renewable)
            .group_by(_S.c.user_id)
        )
        return {int(user_id): int(count) for user_id, count in result.all()}


def _revoke(session_id: str, reason: str) -> Update:
    return (
        update(_S)
        .where(_S.c.id == session_id, _S.c.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )
