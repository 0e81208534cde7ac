"""Dependencies the routers use; everything comes from `app.state`, built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.errors import MSG_NOT_AUTHENTICATED, Forbidden, NotAuthenticated
from app.core.resources import Resources
from app.models import User
from app.services.auth import AuthService
from app.services.client_ip import client_ip
from app.services.sessions import SessionService
from app.services.tokens import TokenClaims, TokenError
from app.services.users import get_user


async def get_resources(request: Request) -> Resources:
    """What the lifespan built for this process."""
    resources: Resources = request.app.state.resources
    return resources


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


ResourcesDep = Annotated[Resources, Depends(get_resources)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """One session per request: committed on success, rolled back on error."""
    async with resources.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            if session.in_transaction():  # nothing to commit when nothing was touched
                await session.commit()


# scope="function" commits before the response is sent, so a 200 means it is stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_auth_service(request: Request) -> AuthService:
    """The login service, one per process.

    It opens database sessions itself, only on its uncommon paths: a login's
    usual writes are single statements (see `StatementRunner`), so these two
    hot routes skip the per-request session.
    """
    auth: AuthService = request.app.state.resources.auth
    return auth


async def get_session_service(
    session: SessionDep, settings: SettingsDep, resources: ResourcesDep
) -> SessionService:
    """The session (refresh/logout) service for this request."""
    return SessionService(session, settings, resources.tokens)


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
SessionServiceDep = Annotated[SessionService, Depends(get_session_service)]

_bearer = HTTPBearer(auto_error=False, description="The `access_token` from verify-code")


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The user behind a valid access token, and the token's claims."""

    user: User
    claims: TokenClaims


async def get_authenticated(
    request: Request,
    session: SessionDep,
    sessions: SessionServiceDep,
    resources: ResourcesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Authenticated:
    """Check the bearer token, its session and its user."""
    if len(request.headers.getlist("authorization")) > 1:
        # Ambiguous: a proxy may have checked the other one.
        raise NotAuthenticated()
    if credentials is None:
        raise NotAuthenticated(MSG_NOT_AUTHENTICATED)
    try:
        claims = resources.tokens.verify(credentials.credentials)
    except TokenError as exc:
        raise NotAuthenticated() from exc
    user = await get_user(session, claims.user_id)
    if user is None or not await sessions.is_active(claims.session_id, user.id):
        raise NotAuthenticated()
    if not user.is_active:
        raise Forbidden()
    return Authenticated(user=user, claims=claims)


AuthenticatedDep = Annotated[Authenticated, Depends(get_authenticated)]


async def get_current_user(auth: AuthenticatedDep) -> User:
    """The active user whose bearer token came with the request."""
    return auth.user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_client_ip(request: Request) -> str | None:
    """The client's address: the socket peer, or what a trusted proxy says it is."""
    resources: Resources = request.app.state.resources
    peer = request.client.host if request.client else None
    # A proxy may add its own header line rather than append to the client's.
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
    return client_ip(peer, forwarded, resources.trusted_proxies)


ClientIP = Annotated[str | None, Depends(get_client_ip)]
