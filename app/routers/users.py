"""The logged-in user's own account."""

from __future__ import annotations

from fastapi import APIRouter

from app.dependencies import CurrentUser
from app.schemas.common import DetailBody
from app.schemas.users import UserOut

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get(
    "/me",
    summary="The current user",
    description="The user the bearer token belongs to.",
    response_model=UserOut,
    responses={
        401: {
            "model": DetailBody,
            "description": "Missing, malformed, expired or wrongly signed token",
        },
        403: {"model": DetailBody, "description": "The user is disabled"},
    },
)
async def read_me(user: CurrentUser) -> UserOut:
    """Return the current user."""
    return UserOut.model_validate(user)
