"""Login endpoints: send a code, then exchange it for a token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.core.errors import MSG_SERVICE_UNAVAILABLE
from app.dependencies.client_ip import ClientIP
from app.dependencies.database import UnitOfWorkDep, UnitOfWorkRoute
from app.dependencies.login import LoginServiceDep
from app.schemas.errors import (
    BadRequestBody,
    DetailBody,
    RateLimitedBody,
    SendBadRequestBody,
    SendErrorBody,
    error_response,
)
from app.schemas.login import (
    SendVerificationRequest,
    SendVerificationResponse,
    VerifyCodeRequest,
    VerifyCodeResponse,
)
from app.schemas.sessions import token_fields
from app.services.users.exceptions import MSG_USER_INACTIVE
from app.services.verification.exceptions import (
    MSG_BLOCKED,
    MSG_INVALID_CODE,
    MSG_LOCKED,
    MSG_PROVIDER_FAILED,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], route_class=UnitOfWorkRoute)


def _bearer_from(field: str) -> dict[str, str]:
    return {"header.Authorization": f"Bearer {{$response.body#/{field}}}"}


# OpenAPI links: what a client does next with an answer (shown on /docs; tools
# that follow links, such as schemathesis, chain the calls with them).
_SIGNED_IN_LINKS: dict[str, Any] = {
    "ReadMe": {
        "operationId": "read_me",
        "parameters": _bearer_from("access_token"),
        "description": "Read the signed-in user with the access token.",
    },
    "UpdateMe": {
        "operationId": "update_me",
        "parameters": _bearer_from("access_token"),
        "description": "Change the signed-in user's name or full name.",
    },
    "Refresh": {
        "operationId": "refresh_tokens",
        "requestBody": {"refresh_token": "$response.body#/refresh_token"},
        "description": "Renew both tokens with the refresh token.",
    },
    "Logout": {
        "operationId": "logout",
        "parameters": _bearer_from("access_token"),
        "description": "End this session.",
    },
}
SEND_LINKS: dict[int | str, dict[str, Any]] = {
    200: {
        "links": {
            "VerifyCode": {
                "operationId": "verify_code",
                "requestBody": {"phone": "$response.body#/phone"},
                "description": "Log in with the code the SMS brought, for this number "
                "(`verification_code` is what the person types).",
            }
        }
    }
}
TOKEN_LINKS: dict[int | str, dict[str, Any]] = {200: {"links": _SIGNED_IN_LINKS}}

SEND_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_response(
        SendBadRequestBody,
        "Invalid phone number, unsupported country, or a number that cannot take SMS "
        "(a field map), or a body that is not a JSON object",
        {"phone": ["Phone number must start with country code (e.g., +996 or +1)"]},
    ),
    403: error_response(
        SendErrorBody,
        "The provider refused this number",
        {
            "success": False,
            "detail": MSG_BLOCKED,
        },
    ),
    429: error_response(
        RateLimitedBody,
        "Too many codes sent to this number",
        {
            "success": False,
            "detail": "Too many requests. Try again in 60 seconds.",
            "retry_after": 60,
        },
    ),
    502: error_response(
        SendErrorBody,
        "The SMS provider failed",
        {"success": False, "detail": MSG_PROVIDER_FAILED},
    ),
    503: error_response(
        SendErrorBody,
        "SMS verification is not available",
        {"success": False, "detail": MSG_SERVICE_UNAVAILABLE},
    ),
}

VERIFY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error_response(
        BadRequestBody,
        "Invalid input (a field map) or a wrong, expired or unknown code "
        f'(`{{"detail": "{MSG_INVALID_CODE}"}}`)',
        {"detail": MSG_INVALID_CODE},
    ),
    403: error_response(DetailBody, "The user is disabled", {"detail": MSG_USER_INACTIVE}),
    429: error_response(
        RateLimitedBody,
        "Too many wrong codes",
        {"detail": MSG_LOCKED, "retry_after": 60},
    ),
    502: error_response(
        DetailBody,
        "The SMS provider failed",
        {"detail": MSG_PROVIDER_FAILED},
    ),
    503: error_response(
        DetailBody, "SMS verification is not available", {"detail": MSG_SERVICE_UNAVAILABLE}
    ),
}


@router.post(
    "/send-verification",
    name="send_verification",
    summary="Send a login code",
    description="Sends a one-time code to the phone number. The number must be in a "
    "configured market; the code is valid for `expires_in_minutes`.",
    response_model=SendVerificationResponse,
    responses={**SEND_LINKS, **SEND_ERRORS},
)
async def send_verification(
    payload: SendVerificationRequest,
    login: LoginServiceDep,
    uow: UnitOfWorkDep,
    client_ip: ClientIP,
) -> SendVerificationResponse:
    """Send a login code to a phone number."""
    sent = await login.send_code(uow, payload.phone, payload.channel, client_ip)
    return SendVerificationResponse(
        message=f"Verification code sent to {sent.phone.e164}",
        phone=sent.phone.e164,
        market=sent.market.name,
        language=sent.market.settings.language,
        expires_in_minutes=sent.market.settings.code_ttl_minutes,
        channel=sent.channel,
    )


@router.post(
    "/verify-code",
    name="verify_code",
    summary="Log in with the code",
    description="Checks the code sent to the phone number. On success creates the user "
    "if needed and returns an access token.",
    response_model=VerifyCodeResponse,
    responses={**TOKEN_LINKS, **VERIFY_ERRORS},
)
async def verify_code(
    payload: VerifyCodeRequest, login: LoginServiceDep, uow: UnitOfWorkDep, client_ip: ClientIP
) -> VerifyCodeResponse:
    """Exchange a correct code for an access token."""
    result = await login.login(uow, payload.phone, payload.verification_code, client_ip)
    return VerifyCodeResponse(
        **token_fields(result.tokens),
        market=result.market.name,
        is_new_user=result.is_new_user,
    )
