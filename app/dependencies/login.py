"""The login service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.services.login.service import LoginService


async def get_login_service(request: Request) -> LoginService:
    """The login service, one per process."""
    service: LoginService = request.app.state.login_service
    return service


LoginServiceDep = Annotated[LoginService, Depends(get_login_service)]
