"""The logged-in user's own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.dependencies.database import UnitOfWorkDep, UnitOfWorkRoute
from app.dependencies.sessions import CurrentUser
from app.dependencies.users import UserServiceDep
from app.schemas.errors import BadRequestBody, DetailBody, error_response
from app.schemas.users import UserOut, UserUpdate
from app.services.sessions.exceptions import MSG_INVALID_TOKEN
from app.services.users.exceptions import MSG_READ_ONLY, MSG_USER_INACTIVE

router = APIRouter(prefix="/api/v1/users", tags=["users"], route_class=UnitOfWorkRoute)

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_response(
        DetailBody,
        "Missing, malformed, expired, revoked or wrongly signed token "
        "(with `WWW-Authenticate: Bearer`)",
        {"detail": MSG_INVALID_TOKEN},
    ),
    403: error_response(DetailBody, "The user is disabled", {"detail": MSG_USER_INACTIVE}),
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
    "trimmed. `id`, `phone`, `is_active` and `is_verified` cannot be changed: sending their "
    "current value is accepted (a frontend may send the whole user back), another value "
    "answers 400 `This field cannot be changed.`; any other field answers 400 "
    "`Unknown field.`, and `null` `This field may not be null.`. On a 400 nothing changes.",
    response_model=UserOut,
    responses={
        **AUTH_ERRORS,
        400: error_response(
            BadRequestBody,
            "Invalid values, an unknown field, or an attempt to change a read-only field",
            {"phone": [MSG_READ_ONLY]},
        ),
    },
)
async def update_me(
    payload: UserUpdate, user: CurrentUser, users: UserServiceDep, uow: UnitOfWorkDep
) -> UserOut:
    """Update the current user's name and full name."""
    updated = await users.update_profile(uow, user, payload.model_dump(exclude_unset=True))
    return UserOut.model_validate(updated)
