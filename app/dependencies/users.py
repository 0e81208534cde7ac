"""The user service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.services.users.service import UserService


async def get_user_service(request: Request) -> UserService:
    """The user service, one per process."""
    service: UserService = request.app.state.user_service
    return service


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
