"""The session service and the signed-in user."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.dependencies.database import UnitOfWorkDep
from app.models.user import User
from app.services.sessions.exceptions import InvalidToken
from app.services.sessions.service import Authenticated, SessionService


async def get_session_service(request: Request) -> SessionService:
    """The session service, one per process."""
    service: SessionService = request.app.state.session_service
    return service


SessionServiceDep = Annotated[SessionService, Depends(get_session_service)]

_bearer = HTTPBearer(auto_error=False, description="The `access_token` from verify-code")


async def get_authenticated(
    request: Request,
    uow: UnitOfWorkDep,
    sessions: SessionServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Authenticated:
    """The user and claims of the request's bearer token."""
    if len(request.headers.getlist("authorization")) > 1:
        # Ambiguous: a proxy may have checked the other one.
        raise InvalidToken()
    return await sessions.authenticate(uow, credentials.credentials if credentials else None)


AuthenticatedDep = Annotated[Authenticated, Depends(get_authenticated)]


async def get_recently_authenticated(
    auth: AuthenticatedDep, sessions: SessionServiceDep
) -> Authenticated:
    """The request's user, whose session's login is within `RECENT_LOGIN_SECONDS`."""
    sessions.require_recent_login(auth)
    return auth


RecentlyAuthenticated = Annotated[Authenticated, Depends(get_recently_authenticated)]


async def get_current_user(auth: AuthenticatedDep) -> User:
    """The active user whose bearer token came with the request."""
    return auth.user


CurrentUser = Annotated[User, Depends(get_current_user)]
