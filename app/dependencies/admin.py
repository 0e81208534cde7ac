"""The admin service and the signed-in admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.dependencies.sessions import AuthenticatedDep
from app.models.user import User
from app.services.admin.service import AdminService


async def get_admin_service(request: Request) -> AdminService:
    """The admin service, one per process."""
    service: AdminService = request.app.state.admin_service
    return service


AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]


async def get_current_admin(auth: AuthenticatedDep, admin: AdminServiceDep) -> User:
    """The user of the bearer token, who must hold the `admin` role now (401 without a
    valid token, 403 without the role)."""
    admin.require_admin(auth.user)
    return auth.user


CurrentAdmin = Annotated[User, Depends(get_current_admin)]
