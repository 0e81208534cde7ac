"""Public keys for services that verify our tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.dependencies import ResourcesDep

router = APIRouter(tags=["keys"])


@router.get(
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
async def jwks(resources: ResourcesDep, response: Response) -> dict[str, Any]:
    """The JWKS document."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return resources.tokens.keys.jwks()
