"""Login endpoints: send a code, then exchange it for a token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.core.errors import (
    MSG_BLOCKED,
    MSG_INVALID_CODE,
    MSG_INVALID_TOKEN,
    MSG_REQUIRED,
    MSG_SERVICE_UNAVAILABLE,
    MSG_USER_INACTIVE,
)
from app.dependencies import AuthenticatedDep, AuthServiceDep, ClientIP, SessionServiceDep
from app.schemas.auth import (
    LogoutRequest,
    RefreshRequest,
    RefreshResponse,
    SendVerificationRequest,
    SendVerificationResponse,
    VerifyCodeRequest,
    VerifyCodeResponse,
    token_fields,
)
from app.schemas.common import BadRequestBody, DetailBody, RateLimitedBody, SendErrorBody
from app.services.sessions import MSG_INVALID_REFRESH

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _error(model: type[Any], description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": model,
        "description": description,
        "content": {"application/json": {"example": example}},
    }


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
    400: _error(
        BadRequestBody,
        "Invalid phone number, unsupported country, or a number that cannot take SMS",
        {"phone": ["Phone number must start with country code (e.g., +996 or +1)"]},
    ),
    403: _error(
        SendErrorBody,
        "The provider refused this number",
        {
            "success": False,
            "detail": MSG_BLOCKED,
        },
    ),
    429: _error(
        RateLimitedBody,
        "Too many codes sent to this number",
        {
            "success": False,
            "detail": "Too many requests. Try again in 60 seconds.",
            "retry_after": 60,
        },
    ),
    502: _error(
        SendErrorBody,
        "The SMS provider failed",
        {"success": False, "detail": "Could not reach the SMS provider. Please try again later."},
    ),
    503: _error(
        SendErrorBody,
        "SMS verification is not available",
        {"success": False, "detail": MSG_SERVICE_UNAVAILABLE},
    ),
}

VERIFY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error(
        BadRequestBody,
        "Invalid input (a field map) or a wrong, expired or unknown code "
        f'(`{{"detail": "{MSG_INVALID_CODE}"}}`)',
        {"detail": MSG_INVALID_CODE},
    ),
    403: _error(DetailBody, "The user is disabled", {"detail": "User account is disabled."}),
    429: _error(
        RateLimitedBody,
        "Too many wrong codes",
        {"detail": "Too many failed attempts. Please request a new code.", "retry_after": 60},
    ),
    502: _error(
        DetailBody,
        "The SMS provider failed",
        {"detail": "Could not reach the SMS provider. Please try again later."},
    ),
    503: _error(
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
    payload: SendVerificationRequest, auth: AuthServiceDep, client_ip: ClientIP
) -> SendVerificationResponse:
    """Send a login code to a phone number."""
    sent = await auth.send_code(payload.phone, payload.channel, client_ip)
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
    payload: VerifyCodeRequest, auth: AuthServiceDep, client_ip: ClientIP
) -> VerifyCodeResponse:
    """Exchange a correct code for an access token."""
    result = await auth.login(payload.phone, payload.verification_code, client_ip)
    return VerifyCodeResponse(
        **token_fields(result.tokens),
        market=result.market.name,
        is_new_user=result.is_new_user,
    )


@router.post(
    "/refresh",
    name="refresh_tokens",
    summary="Renew the tokens",
    description="Exchanges a refresh token for a new access token and a new refresh token. "
    "The presented refresh token stops working. Presenting it again after "
    "`REFRESH_TOKEN_REUSE_INTERVAL_SECONDS` is taken as theft: the whole session is "
    "revoked. Within that interval (a retried request) the same new pair is returned.",
    response_model=RefreshResponse,
    responses={
        **TOKEN_LINKS,
        400: _error(BadRequestBody, "Missing refresh token", {"refresh_token": [MSG_REQUIRED]}),
        401: _error(
            DetailBody, "Unknown, expired, revoked or reused token", {"detail": MSG_INVALID_REFRESH}
        ),
        403: _error(DetailBody, "The user is disabled", {"detail": MSG_USER_INACTIVE}),
    },
)
async def refresh_tokens(
    payload: RefreshRequest, sessions: SessionServiceDep, client_ip: ClientIP
) -> RefreshResponse:
    """Rotate a refresh token."""
    pair = await sessions.refresh(payload.refresh_token, client_ip)
    return RefreshResponse(**token_fields(pair))


@router.post(
    "/logout",
    name="logout",
    status_code=204,
    summary="Log out",
    description="Revokes this session (its refresh tokens and access tokens), or with "
    '`{"scope": "global"}` every session of the user. The body is optional.',
    responses={
        400: _error(BadRequestBody, "Unknown scope", {"scope": ["Invalid value."]}),
        401: _error(DetailBody, "Missing or invalid access token", {"detail": MSG_INVALID_TOKEN}),
        403: _error(DetailBody, "The user is disabled", {"detail": MSG_USER_INACTIVE}),
    },
)
async def logout(
    auth: AuthenticatedDep,
    sessions: SessionServiceDep,
    client_ip: ClientIP,
    payload: LogoutRequest | None = None,
) -> Response:
    """End this session or all of them."""
    everywhere = payload is not None and payload.scope == "global"
    await sessions.logout(auth.user, auth.claims.session_id, client_ip, everywhere=everywhere)
    return Response(status_code=204)
