"""The logged-in user's own account."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.dependencies.client_ip import ClientIP
from app.dependencies.database import UnitOfWorkDep, UnitOfWorkRoute
from app.dependencies.phone_change import PhoneChangeServiceDep
from app.dependencies.sessions import CurrentUser, RecentlyAuthenticated
from app.dependencies.users import UserServiceDep
from app.routers.login import SEND_ERRORS, VERIFY_ERRORS
from app.schemas.errors import BadRequestBody, DetailBody, SendErrorBody, error_response
from app.schemas.login import (
    CodeDeliveryRequest,
    SendVerificationResponse,
    VerifyCodeRequest,
    VerifyCodeResponse,
)
from app.schemas.sessions import token_fields
from app.schemas.users import UserOut, UserUpdate
from app.services.phone_change.exceptions import MSG_PHONE_IN_USE, MSG_SAME_PHONE
from app.services.sessions.exceptions import (
    MSG_INVALID_TOKEN,
    MSG_RECENT_LOGIN,
    InvalidToken,
)
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

# Sensitive changes: the same 401s, and one for a login that is not recent enough.
RECENT_LOGIN_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    401: error_response(
        DetailBody,
        "Missing, malformed, expired, revoked or wrongly signed token (with "
        "`WWW-Authenticate: Bearer`), or a session whose login is older than "
        "`RECENT_LOGIN_SECONDS`: "
        f'`{{"detail": "{MSG_RECENT_LOGIN}"}}` with `WWW-Authenticate: Bearer '
        'error="insufficient_user_authentication", error_description="A recent login '
        'is required", max_age=300` (RFC 9470). Log in again, then retry.',
        {"detail": MSG_RECENT_LOGIN},
    ),
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
    "trimmed. `id`, `phone`, `is_active` and `is_verified` answer 400 `This field cannot be "
    "changed.`, any other field `Unknown field.`, and `null` `This field may not be null.`; "
    "every bad field of the body is reported at once. On a 400 nothing changes.",
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


@router.delete(
    "/me",
    name="delete_me",
    status_code=204,
    summary="Delete the current user's account",
    description="Deletes the account and its personal data: the user (number, names), "
    "its sessions and refresh tokens, and the verifications of its number. Every token "
    "of the user answers 401 afterwards; logging in again with the number makes a new "
    "user. Needs a recent login (`RECENT_LOGIN_SECONDS`, 300 by default). Of concurrent "
    "deletes one answers 204 and the others 401.",
    responses=RECENT_LOGIN_ERRORS,
)
async def delete_me(
    auth: RecentlyAuthenticated, users: UserServiceDep, uow: UnitOfWorkDep
) -> Response:
    """Delete the current user's account."""
    if await users.delete(uow, auth.user.id) is None:
        raise InvalidToken()  # deleted by a concurrent request
    return Response(status_code=204)


PHONE_IN_USE = error_response(
    BadRequestBody, "Another account has this number", {"phone": [MSG_PHONE_IN_USE]}
)


@router.post(
    "/me/phone/send-verification",
    name="send_phone_change_verification",
    summary="Send a code to a new number",
    description="The first step of changing the current user's number: sends a code to "
    "the new `phone`, with the same validation, markets, channels, limits and bodies as "
    "`/api/v1/auth/send-verification`, the bot challenge (`captcha_token`) included. "
    "The code only changes this user's number at "
    "`/api/v1/users/me/phone/verify`; it never logs in. Needs a recent login "
    "(`RECENT_LOGIN_SECONDS`).",
    response_model=SendVerificationResponse,
    responses={
        **SEND_ERRORS,
        **RECENT_LOGIN_ERRORS,
        400: error_response(
            BadRequestBody,
            "Invalid phone number, unsupported country, a number that cannot take SMS, "
            "or the user's own number; a send that needs a challenge and has no "
            "`captcha_token`, or one that was not passed; an `app_hash` that is malformed "
            "or not with the `sms` channel",
            {"phone": [MSG_SAME_PHONE]},
        ),
        403: error_response(
            SendErrorBody,
            "The user is disabled, or the provider refused this number",
            {"success": False, "detail": MSG_USER_INACTIVE},
        ),
        409: PHONE_IN_USE,
    },
)
async def send_phone_change_verification(
    payload: CodeDeliveryRequest,
    auth: RecentlyAuthenticated,
    phone_change: PhoneChangeServiceDep,
    uow: UnitOfWorkDep,
    client_ip: ClientIP,
) -> SendVerificationResponse:
    """Send a number-change code to the new number."""
    sent = await phone_change.send_code(
        uow,
        auth.user,
        payload.phone,
        payload.channel,
        client_ip,
        captcha_token=payload.captcha_token,
        app_hash=payload.app_hash,
    )
    return SendVerificationResponse.sent(sent.phone, sent.market, sent.channel)


@router.post(
    "/me/phone/verify",
    name="verify_phone_change",
    summary="Change the number with the code",
    description="Checks the code sent to the new `phone` by "
    "`/api/v1/users/me/phone/send-verification`. On success the user's number (and "
    "market, for a number of another market) changes, every other session of the user "
    "is revoked, and the answer is verify-code's: a fresh token pair for this session, "
    "whose claims carry the new number, with `is_new_user: false`. Tokens issued before "
    "the change stop working. A wrong or unknown code answers as verify-code does; a "
    "number another account took meanwhile answers 409 and nothing changes. Needs a "
    "recent login (`RECENT_LOGIN_SECONDS`).",
    response_model=VerifyCodeResponse,
    responses={
        **VERIFY_ERRORS,
        **RECENT_LOGIN_ERRORS,
        400: error_response(
            BadRequestBody,
            "Invalid input (a field map, also for the user's own number) or a wrong, "
            "expired or unknown code",
            VERIFY_ERRORS[400]["content"]["application/json"]["example"],
        ),
        409: PHONE_IN_USE,
    },
)
async def verify_phone_change(
    payload: VerifyCodeRequest,
    auth: RecentlyAuthenticated,
    phone_change: PhoneChangeServiceDep,
    uow: UnitOfWorkDep,
    client_ip: ClientIP,
) -> VerifyCodeResponse:
    """Change the current user's number with the code sent to it."""
    result = await phone_change.change(
        uow,
        auth.user,
        auth.claims.session_id,
        payload.phone,
        payload.verification_code,
        client_ip,
    )
    return VerifyCodeResponse(
        **token_fields(result.tokens),
        market=result.market.name,
        is_new_user=result.is_new_user,
    )
