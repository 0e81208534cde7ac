"""The logged-in user's own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.core.errors import MSG_INVALID_TOKEN, MSG_USER_INACTIVE
from app.dependencies import CurrentUser, SessionDep
from app.schemas.common import BadRequestBody, DetailBody
from app.schemas.users import UserOut, UserUpdate
from app.services.users import update_profile

router = APIRouter(prefix="/api/v1/users", tags=["users"])

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": DetailBody,
        "description": "Missing, malformed, expired, revoked or wrongly signed token "
        "(with `WWW-Authenticate: Bearer`)",
        "content": {"application/json": {"example": {"detail": MSG_INVALID_TOKEN}}},
    },
    403: {
        "model": DetailBody,
        "description": "The user is disabled",
        "content": {"application/json": {"example": {"detail": MSG_USER_INACTIVE}}},
    },
}


@router.get(
    "/me",
    summary="The current user",
    description="The user the bearer token belongs to.",
    response_model=UserOut,
    responses=AUTH_ERRORS,
)
async def read_me(user: CurrentUser) -> UserOut:
    """Return the current user."""
    return UserOut.model_validate(user)


@router.patch(
    "/me",
    summary="Update the current user's profile",
    description="Changes `name` (1-150 characters) and `full_name` (up to 255); values are "
    "trimmed. `phone`, `is_active` and `is_verified` cannot be changed: sending their "
    "current value is accepted, another value answers 400.",
    response_model=UserOut,
    responses={
        **AUTH_ERRORS,
        400: {
            "model": BadRequestBody,
            "description": "Invalid values or an attempt to change a read-only field",
            "content": {
                "application/json": {"example": {"phone": ["This field cannot be changed."]}}
            },
        },
    },
)
async def update_me(payload: UserUpdate, user: CurrentUser, session: SessionDep) -> UserOut:
    """Update the current user's name and full name."""
    updated = await update_profile(session, user, payload.model_dump(exclude_unset=True))
    return UserOut.model_validate(updated)
