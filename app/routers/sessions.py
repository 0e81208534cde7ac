"""Session endpoints: renew the tokens, log out, and the keys tokens are signed with."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.core.errors import MSG_REQUIRED
from app.dependencies.client_ip import ClientIP
from app.dependencies.database import UnitOfWorkDep, UnitOfWorkRoute
from app.dependencies.sessions import AuthenticatedDep, SessionServiceDep
from app.routers.login import TOKEN_LINKS
from app.schemas.errors import BadRequestBody, DetailBody, error_response
from app.schemas.sessions import (
    LogoutRequest,
    RefreshRequest,
    RefreshResponse,
    token_fields,
)
from app.services.sessions.exceptions import MSG_INVALID_REFRESH, MSG_INVALID_TOKEN
from app.services.users.exceptions import MSG_USER_INACTIVE

router = APIRouter(prefix="/api/v1/auth", tags=["auth"], route_class=UnitOfWorkRoute)
# Registered after the users router, where the document has always listed it.
keys_router = APIRouter(tags=["keys"])


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
        400: error_response(
            BadRequestBody, "Missing refresh token", {"refresh_token": [MSG_REQUIRED]}
        ),
        401: error_response(
            DetailBody, "Unknown, expired, revoked or reused token", {"detail": MSG_INVALID_REFRESH}
        ),
        403: error_response(DetailBody, "The user is disabled", {"detail": MSG_USER_INACTIVE}),
    },
)
async def refresh_tokens(
    payload: RefreshRequest, sessions: SessionServiceDep, uow: UnitOfWorkDep, client_ip: ClientIP
) -> RefreshResponse:
    """Rotate a refresh token."""
    pair = await sessions.refresh(uow, payload.refresh_token, client_ip)
    return RefreshResponse(**token_fields(pair))


@router.post(
    "/logout",
    name="logout",
    status_code=204,
    summary="Log out",
    description="Revokes this session (its refresh tokens and access tokens), or with "
    '`{"scope": "global"}` every session of the user. The body is optional.',
    responses={
        400: error_response(
            BadRequestBody, "Unknown scope", {"scope": ['"everywhere" is not a valid choice.']}
        ),
        401: error_response(
            DetailBody, "Missing or invalid access token", {"detail": MSG_INVALID_TOKEN}
        ),
        403: error_response(DetailBody, "The user is disabled", {"detail": MSG_USER_INACTIVE}),
    },
)
async def logout(
    auth: AuthenticatedDep,
    sessions: SessionServiceDep,
    uow: UnitOfWorkDep,
    client_ip: ClientIP,
    payload: LogoutRequest | None = None,
) -> Response:
    """End this session or all of them."""
    everywhere = payload is not None and payload.scope == "global"
    await sessions.logout(uow, auth.user, auth.claims.session_id, client_ip, everywhere=everywhere)
    return Response(status_code=204)


@keys_router.get(
    "/.well-known/jwks.json",
    summary="Token signing keys (JWKS)",
    description="The public keys access tokens are signed with (RS256/ES256), including "
    "retired keys from `JWT_PREVIOUS_PUBLIC_KEYS`; match a token's `kid`. Empty with HS256.",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "keys": [
                            {
                                "kty": "EC",
                                "crv": "P-256",
                                "x": "…",
                                "y": "…",
                                "kid": "…",
                                "alg": "ES256",
                                "use": "sig",
                            }
                        ]
                    }
                }
            }
        }
    },
)
async def jwks(sessions: SessionServiceDep, response: Response) -> dict[str, Any]:
    """The JWKS document."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return sessions.tokens.keys.jwks()
