"""The number-change service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.services.phone_change.service import PhoneChangeService


async def get_phone_change_service(request: Request) -> PhoneChangeService:
    """The number-change service, one per process."""
    service: PhoneChangeService = request.app.state.phone_change_service
    return service


PhoneChangeServiceDep = Annotated[PhoneChangeService, Depends(get_phone_change_service)]
