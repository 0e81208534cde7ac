"""Login endpoints: send a code, then exchange it for a token."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request, Response

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
    AuthSettingsResponse,
    CaptchaOut,
    MarketOut,
    SendVerificationRequest,
    SendVerificationResponse,
    VerifyCodeRequest,
    VerifyCodeResponse,
)
from app.schemas.sessions import token_fields
from app.services.challenge.exceptions import (
    MSG_CHALLENGE_FAILED,
    MSG_CHALLENGE_REQUIRED,
    MSG_CHALLENGE_UNAVAILABLE,
)
from app.services.login.service import PublicSettings
from app.services.users.exceptions import MSG_USER_INACTIVE
from app.services.verification.exceptions import (
    MSG_BLOCKED,
    MSG_INVALID_CODE,
    MSG_LOCKED,
    MSG_PROVIDER_FAILED,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], route_class=UnitOfWorkRoute)
# Routes that touch no database.
settings_router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


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
        "(a field map), or a body that is not a JSON object; a "
        f'send that needs a challenge and has no token (`{{"captcha_token": '
        f'["{MSG_CHALLENGE_REQUIRED}"]}}`) or one that was not passed (`{{"captcha_token": '
        f'["{MSG_CHALLENGE_FAILED}"]}}`); an `app_hash` that is malformed or not with the '
        "`sms` channel",
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
        "SMS verification is not available, or the challenge provider gave no verdict "
        f'(`"{MSG_CHALLENGE_UNAVAILABLE}"`)',
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
    "configured market; the code is valid for `expires_in_minutes`. A send may need a "
    "passed bot challenge (see `GET /api/v1/auth/settings`): without `captcha_token` it "
    'then answers 400 `{"captcha_token": [...]}`; render the challenge and send again '
    "with its token. `app_hash` lets an Android app read the code from the SMS.",
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
    sent = await login.send_code(
        uow,
        payload.phone,
        payload.channel,
        client_ip,
        captcha_token=payload.captcha_token,
        app_hash=payload.app_hash,
    )
    return SendVerificationResponse.sent(sent.phone, sent.market, sent.channel)


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


SETTINGS_CACHE_CONTROL = "public, max-age=300"
_SETTINGS_HEADERS = {
    "Cache-Control": {"description": SETTINGS_CACHE_CONTROL, "schema": {"type": "string"}},
    "ETag": {"description": "The body's version, for If-None-Match", "schema": {"type": "string"}},
}


@settings_router.get(
    "/settings",
    name="auth_settings",
    summary="Settings for frontends",
    description="Public configuration a frontend renders a login with: the markets "
    "(calling code, language, channels, code lifetime), the code length, the bot "
    "challenge (provider, public site key, whether sends may need it) and whether "
    "one-tap code entry is supported. Cacheable for 5 minutes; send the `ETag` back "
    "in `If-None-Match` to get 304 while it is unchanged. Never contains a secret.",
    response_model=AuthSettingsResponse,
    responses={
        200: {"headers": _SETTINGS_HEADERS},
        304: {
            "description": "Unchanged since the `ETag` in If-None-Match",
            "headers": _SETTINGS_HEADERS,
        },
    },
)
async def auth_settings(request: Request, login: LoginServiceDep) -> Response:
    """The public settings, or 304 when the client holds them already."""
    content = _settings_body(login.public_settings).model_dump_json().encode()
    etag = f'"{hashlib.sha256(content).hexdigest()[:32]}"'
    headers = {"Cache-Control": SETTINGS_CACHE_CONTROL, "ETag": etag}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="application/json", headers=headers)


def _settings_body(settings: PublicSettings) -> AuthSettingsResponse:
    challenge = settings.challenge
    return AuthSettingsResponse(
        markets=[
            MarketOut(
                name=market.name,
                country_code=market.calling_code,
                region=market.settings.region.upper(),
                language=market.settings.language,
                channels=market.settings.channels,
                code_ttl_minutes=market.settings.code_ttl_minutes,
            )
            for market in settings.markets
        ],
        code_length=settings.code_length,
        captcha=CaptchaOut(
            provider=challenge.provider,
            site_key=challenge.site_key,
            mode=challenge.mode,
            may_be_required=challenge.may_be_required,
        ),
        one_tap_supported=settings.one_tap,
    )


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match names `etag` (weakly compared, as RFC 9110 asks) or is `*`."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False
