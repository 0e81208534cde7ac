"""Login sessions: refresh-token rotation with reuse detection, and logout.

The first refresh token of a login comes from `secrets`. Each rotation's
token is HMAC-SHA256(server key, parent token): as unpredictable as the
parent, and the same for every request that presents the same parent, so
concurrent or retried refreshes of one token all get the one pair it was
exchanged for — a session never forks. Only SHA-256 hashes are stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import Forbidden, NotAuthenticated
from app.models import AuthEvent, AuthEventType, AuthSession, RefreshToken, User
from app.models.base import table_of, utcnow
from app.services.phone import mask_phone
from app.services.tokens import AccessToken, TokenService

logger = logging.getLogger(__name__)

MSG_INVALID_REFRESH = "Invalid or expired refresh token."
MAX_REFRESH_TOKEN_LENGTH = 256

# Built once, so that a login compiles nothing (see verifications.py).
_INSERT_SESSION = insert(table_of(AuthSession))
_INSERT_REFRESH_TOKEN = insert(table_of(RefreshToken))
_INSERT_EVENT = insert(table_of(AuthEvent))


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh hands out."""

    access: AccessToken
    refresh_token: str
    refresh_expires_in: int
    user: User


def hash_token(raw: str) -> str:
    """The stored form of a refresh token."""
    return hashlib.sha256(raw.encode()).hexdigest()


def new_login_session() -> tuple[str, str]:
    """A new session's id and its first refresh token (raw; store `hash_token` of it)."""
    return uuid.uuid4().hex, secrets.token_urlsafe(32)


def first_pair(
    tokens: TokenService, refresh_lifetime: int, user: User, session_id: str, raw: str
) -> TokenPair:
    """The pair a login hands out once its session and `raw` refresh token are stored."""
    access = tokens.issue(
        user_id=user.id, session_id=session_id, phone=user.phone, market=user.market
    )
    return TokenPair(access, raw, refresh_lifetime, user)


class SessionService:
    """Creates sessions at login, rotates their refresh tokens, revokes them."""

    def __init__(self, session: AsyncSession, settings: Settings, tokens: TokenService) -> None:
        self._db = session
        self._tokens = tokens
        self._refresh_lifetime = settings.refresh_token_expire_seconds
        self._reuse_interval = timedelta(seconds=settings.refresh_token_reuse_interval_seconds)
        self._key = hashlib.sha256(
            b"phone-auth refresh\x00" + settings.signing_secret.encode()
        ).digest()

    def _child_token(self, parent: str) -> str:
        digest = hmac.new(self._key, parent.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def start(self, user: User, client_ip: str | None) -> TokenPair:
        """Open a session for a login and give its first token pair."""
        now = utcnow()
        session_id, raw = new_login_session()
        connection = await self._db.connection()
        await connection.execute(
            _INSERT_SESSION, {"id": session_id, "user_id": user.id, "created_at": now}
        )
        await connection.execute(
            _INSERT_REFRESH_TOKEN,
            {
                "session_id": session_id,
                "token_hash": hash_token(raw),
                "created_at": now,
                "expires_at": now + timedelta(seconds=self._refresh_lifetime),
            },
        )
        await connection.execute(
            _INSERT_EVENT,
            {
                "event": AuthEventType.LOGIN.value,
                "user_id": user.id,
                "session_id": session_id,
                "phone_masked": mask_phone(user.phone),
                "client_ip": client_ip,
                "created_at": now,
            },
        )
        return first_pair(self._tokens, self._refresh_lifetime, user, session_id, raw)

    async def refresh(self, raw: str, client_ip: str | None) -> TokenPair:
        """Exchange a refresh token for a new pair; detect and punish reuse."""
        if not raw or len(raw) > MAX_REFRESH_TOKEN_LENGTH:
            raise NotAuthenticated(MSG_INVALID_REFRESH)
        now = utcnow()
        token = await self._db.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == hash_token(raw))
        )
        if token is None or token.expires_at <= now:
            raise NotAuthenticated(MSG_INVALID_REFRESH)
        auth_session = await self._db.get_one(AuthSession, token.session_id)
        user = await self._db.get_one(User, auth_session.user_id)
        if auth_session.revoked_at is not None:
            raise NotAuthenticated(MSG_INVALID_REFRESH)
        if not user.is_active:
            raise Forbidden()

        # Claim the token; of concurrent claims exactly one succeeds.
        claimed = await self._db.scalar(
            update(RefreshToken)
            .where(RefreshToken.id == token.id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=now)
            .returning(RefreshToken.id)
        )
        child_raw = self._child_token(raw)
        if claimed is not None:
            child = RefreshToken(
                session_id=auth_session.id,
                token_hash=hash_token(child_raw),
                parent_id=token.id,
                created_at=now,
                expires_at=now + timedelta(seconds=self._refresh_lifetime),
            )
            self._db.add(child)
            self._audit(AuthEventType.REFRESH, user, auth_session.id, client_ip)
            await self._db.flush()
            return self._pair(user, auth_session.id, child, child_raw)

        await self._db.refresh(token)
        existing = await self._db.scalar(
            select(RefreshToken).where(RefreshToken.parent_id == token.id)
        )
        rotated_at = token.rotated_at or now
        if (
            existing is not None
            and existing.rotated_at is None
            and now - rotated_at <= self._reuse_interval
            and hmac.compare_digest(existing.token_hash, hash_token(child_raw))
        ):
            # A retry or a concurrent twin: the same pair as the first answer.
            return self._pair(user, auth_session.id, existing, child_raw)
        if now - rotated_at <= self._reuse_interval:
            raise NotAuthenticated(MSG_INVALID_REFRESH)
        await self._revoke(auth_session, "reuse_detected")
        self._audit(AuthEventType.REUSE_DETECTED, user, auth_session.id, client_ip)
        # Committed before answering 401: the revocation must outlive the error.
        await self._db.commit()
        logger.warning(
            "Refresh token reuse detected: session %s of user %s revoked (%s)",
            auth_session.id,
            user.id,
            mask_phone(user.phone),
        )
        raise NotAuthenticated(MSG_INVALID_REFRESH)

    def _pair(self, user: User, session_id: str, child: RefreshToken, raw: str) -> TokenPair:
        access = self._tokens.issue(
            user_id=user.id,
            session_id=session_id,
            phone=user.phone,
            market=user.market,
            issued_at=child.created_at,
            jti=child.token_hash[:32],
        )
        return TokenPair(access, raw, self._refresh_lifetime, user)

    async def logout(
        self, user: User, session_id: str, client_ip: str | None, *, everywhere: bool
    ) -> int:
        """Revoke this session, or every session of the user; return how many."""
        query = select(AuthSession).where(AuthSession.revoked_at.is_(None))
        query = (
            query.where(AuthSession.user_id == user.id)
            if everywhere
            else query.where(AuthSession.id == session_id, AuthSession.user_id == user.id)
        )
        revoked = 0
        for auth_session in (await self._db.scalars(query)).all():
            await self._revoke(auth_session, "logout_global" if everywhere else "logout")
            revoked += 1
        self._audit(AuthEventType.LOGOUT, user, session_id, client_ip)
        await self._db.flush()
        return revoked

    async def is_active(self, session_id: str, user_id: int) -> bool:
        """Whether the session exists, belongs to the user and is not revoked."""
        revoked_at = await self._db.execute(
            select(AuthSession.revoked_at).where(
                AuthSession.id == session_id, AuthSession.user_id == user_id
            )
        )
        row = revoked_at.first()
        return row is not None and row[0] is None

    async def _revoke(self, auth_session: AuthSession, reason: str) -> None:
        await self._db.execute(
            update(AuthSession)
            .where(AuthSession.id == auth_session.id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason)
        )

    def _audit(
        self, event: AuthEventType, user: User, session_id: str | None, client_ip: str | None
    ) -> None:
        self._db.add(
            AuthEvent(
                event=event.value,
                user_id=user.id,
                session_id=session_id,
                phone_masked=mask_phone(user.phone),
                client_ip=client_ip,
                created_at=utcnow(),
            )
        )
