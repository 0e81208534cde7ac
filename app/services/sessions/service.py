"""Login sessions: access-token checks, refresh-token rotation with reuse detection,
and logout.

The first refresh token of a login comes from `secrets`. Each rotation's
token is HMAC-SHA256(server key, parent token): as unpredictable as the
parent, and the same for every request that presents the same parent, so
concurrent or retried refreshes of one token all get the one pair it was
exchanged for — a session never forks. Presenting a rotated token again
after `REFRESH_TOKEN_REUSE_INTERVAL_SECONDS` is taken as theft and revokes
the whole session. Only SHA-256 hashes are stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.core.config import Settings
from app.core.database import UnitOfWork
from app.core.phone import mask_phone
from app.models.auth_event import AuthEvent, AuthEventType
from app.models.login_session import LoginSession, RefreshToken
from app.models.user import User
from app.services.sessions.exceptions import (
    InvalidRefreshToken,
    InvalidToken,
    NoCredentials,
    RecentLoginRequired,
)
from app.services.sessions.repository import SessionRepository
from app.services.sessions.tokens import TokenClaims, TokenError, TokenService
from app.services.users.service import UserDisabled, UserService

logger = logging.getLogger(__name__)

MAX_REFRESH_TOKEN_LENGTH = 256


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh hands out."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: User


@dataclass(frozen=True, slots=True)
class NewLoginSession:
    """A session a login is about to store: its id and first refresh token (raw)."""

    id: str
    refresh_token: str
    token_hash: str
    refresh_expires_at: datetime
    auth_time: datetime


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The user behind a valid access token, and the token's claims."""

    user: User
    claims: TokenClaims


def hash_token(raw: str) -> str:
    """The stored form of a refresh token."""
    return hashlib.sha256(raw.encode()).hexdigest()


class SessionService:
    """Opens sessions for logins, checks access tokens, rotates refresh tokens and
    revokes sessions; one per process."""

    def __init__(
        self,
        settings: Settings,
        tokens: TokenService,
        users: UserService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = tokens
        self._clock = clock  # epoch seconds; injected so that tests move time
        self._users = users
        self._recent_login_seconds = settings.recent_login_seconds
        self._refresh_lifetime = settings.refresh_token_expire_seconds
        self._reuse_interval = timedelta(seconds=settings.refresh_token_reuse_interval_seconds)
        self._key = hashlib.sha256(
            b"phone-auth refresh\x00" + settings.signing_secret.encode()
        ).digest()

    def new_login_session(self, now: datetime) -> NewLoginSession:
        """A new session's id and first refresh token, for a login to store."""
        raw = secrets.token_urlsafe(32)
        return NewLoginSession(
            id=uuid.uuid4().hex,
            refresh_token=raw,
            token_hash=hash_token(raw),
            refresh_expires_at=now + timedelta(seconds=self._refresh_lifetime),
            auth_time=datetime.fromtimestamp(int(self._clock()), UTC),
        )

    def first_pair(self, user: User, session: NewLoginSession) -> TokenPair:
        """The pair a login hands out once its session is stored."""
        access = self.tokens.issue(
            user_id=user.id,
            session_id=session.id,
            phone=user.phone,
            market=user.market,
            roles=user.roles,
            auth_time=session.auth_time,
        )
        return TokenPair(
            access.token, access.expires_in, session.refresh_token, self._refresh_lifetime, user
        )

    async def authenticate(self, uow: UnitOfWork, token: str | None) -> Authenticated:
        """Check a bearer token, its session and its user."""
        if token is None:
            raise NoCredentials()
        try:
            claims = self.tokens.verify(token)
        except TokenError as exc:
            raise InvalidToken() from exc
        user = await self._users.get(uow, claims.user_id)
        if user is None or not await SessionRepository(uow).is_active(claims.session_id, user.id):
            raise InvalidToken()
        if not user.is_active:
            raise UserDisabled()
        if claims.phone != user.phone:
            # Issued before the user's number changed: its claims no longer hold.
            raise InvalidToken()
        return Authenticated(user=user, claims=claims)

    def require_recent_login(self, auth: Authenticated) -> None:
        """Refuse a sensitive change unless the session's code check happened within
        `RECENT_LOGIN_SECONDS` (401 with RFC 9470's `WWW-Authenticate`)."""
        auth_time = auth.claims.auth_time
        if auth_time is None or self._clock() - auth_time > self._recent_login_seconds:
            raise RecentLoginRequired(self._recent_login_seconds)

    async def keep_only(self, uow: UnitOfWork, user_id: int, session_id: str) -> NewLoginSession:
        """Revoke every other session of the user and replace this session's refresh
        tokens with a fresh one (after a number change); `first_pair` then signs its
        pair. A session revoked or deleted meanwhile answers 401.

        The session's tokens are deleted before other sessions are touched: the order
        a refresh and a deletion lock them in.
        """
        repository = SessionRepository(uow)
        login_session = await repository.get_session(session_id)
        if (
            login_session is None
            or login_session.user_id != user_id
            or login_session.revoked_at is not None
        ):
            raise InvalidToken()
        await repository.delete_tokens(session_id)
        for other in await repository.active_sessions(user_id, None):
            if other.id != session_id:
                await repository.revoke(other.id, "phone_changed")
        now = self._now()
        raw = secrets.token_urlsafe(32)
        renewed = NewLoginSession(
            id=session_id,
            refresh_token=raw,
            token_hash=hash_token(raw),
            refresh_expires_at=now + timedelta(seconds=self._refresh_lifetime),
            auth_time=login_session.auth_time or login_session.created_at,
        )
        repository.add_token(
            RefreshToken(
                session_id=session_id,
                token_hash=renewed.token_hash,
                created_at=now,
                expires_at=renewed.refresh_expires_at,
            )
        )
        await repository.flush()
        return renewed

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _child_token(self, parent: str) -> str:
        digest = hmac.new(self._key, parent.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def refresh(self, uow: UnitOfWork, raw: str, client_ip: str | None) -> TokenPair:
        """Exchange a refresh token for a new pair; detect and punish reuse."""
        if not raw or len(raw) > MAX_REFRESH_TOKEN_LENGTH:
            raise InvalidRefreshToken()
        repository = SessionRepository(uow)
        now = self._now()
        token = await repository.token_by_hash(hash_token(raw))
        if token is None or token.expires_at <= now:
            raise InvalidRefreshToken()
        login_session = await repository.get_session(token.session_id)
        if login_session is None or login_session.revoked_at is not None:
            raise InvalidRefreshToken()
        user = await self._users.get(uow, login_session.user_id)
        if user is None:
            raise InvalidRefreshToken()
        if not user.is_active:
            raise UserDisabled()

        child_raw = self._child_token(raw)
        if await repository.claim(token, now):
            child = RefreshToken(
                session_id=login_session.id,
                token_hash=hash_token(child_raw),
                parent_id=token.id,
                created_at=now,
                expires_at=now + timedelta(seconds=self._refresh_lifetime),
            )
            repository.add_token(child)
            repository.add_event(
                _event(AuthEventType.REFRESH, user, login_session.id, client_ip, now)
            )
            await repository.flush()
            return self._pair(user, login_session, child, child_raw)

        if not await repository.reload(token):
            raise InvalidRefreshToken()
        existing = await repository.child_of(token)
        rotated_at = token.rotated_at or now
        within_interval = now - rotated_at <= self._reuse_interval
        if (
            existing is not None
            and existing.rotated_at is None
            and within_interval
            and hmac.compare_digest(existing.token_hash, hash_token(child_raw))
        ):
            # A retry or a concurrent twin: the same pair as the first answer.
            return self._pair(user, login_session, existing, child_raw)
        if within_interval:
            raise InvalidRefreshToken()
        await repository.revoke_for_reuse(
            _event(AuthEventType.REUSE_DETECTED, user, login_session.id, client_ip, now)
        )
        logger.warning(
            "Refresh token reuse detected: session %s of user %s revoked (%s)",
            login_session.id,
            user.id,
            mask_phone(user.phone),
        )
        raise InvalidRefreshToken()

    def _pair(
        self, user: User, login_session: LoginSession, child: RefreshToken, raw: str
    ) -> TokenPair:
        access = self.tokens.issue(
            user_id=user.id,
            session_id=login_session.id,
            phone=user.phone,
            market=user.market,
            roles=user.roles,
            issued_at=child.created_at,
            jti=child.token_hash[:32],
            # A refresh keeps the time of the login that opened the session.
            auth_time=login_session.auth_time or login_session.created_at,
        )
        return TokenPair(access.token, access.expires_in, raw, self._refresh_lifetime, user)

    async def logout(
        self,
        uow: UnitOfWork,
        user: User,
        session_id: str,
        client_ip: str | None,
        *,
        everywhere: bool,
    ) -> int:
        """Revoke this session, or every session of the user; return how many."""
        repository = SessionRepository(uow)
        revoked = 0
        reason = "logout_global" if everywhere else "logout"
        for login_session in await repository.active_sessions(
            user.id, None if everywhere else session_id
        ):
            await repository.revoke(login_session.id, reason)
            revoked += 1
        repository.add_event(_event(AuthEventType.LOGOUT, user, session_id, client_ip, self._now()))
        await repository.flush()
        logger.info(
            "Logout: user=%s sessions ended=%s scope=%s",
            user.id,
            revoked,
            "global" if everywhere else "session",
        )
        return revoked

    async def revoke_all(self, uow: UnitOfWork, user_id: int, reason: str) -> int:
        """Revoke every session of the user at once (their access tokens answer 401 from
        then on); return how many were active."""
        return await SessionRepository(uow).revoke_all(user_id, reason)

    async def active_counts(self, uow: UnitOfWork, user_ids: list[int]) -> dict[int, int]:
        """How many sessions each user has that are not revoked and can still be renewed."""
        return await SessionRepository(uow).active_counts(user_ids, self._now())


def _event(
    event: AuthEventType,
    user: User,
    session_id: str | None,
    client_ip: str | None,
    now: datetime,
) -> AuthEvent:
    return AuthEvent(
        event=event.value,
        user_id=user.id,
        session_id=session_id,
        phone_masked=mask_phone(user.phone),
        client_ip=client_ip,
        created_at=now,
    )
