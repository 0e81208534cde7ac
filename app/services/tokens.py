"""JWT access tokens: issue and verify."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jose import JWTError, jwt

from app.core.config import Settings

MAX_TOKEN_LENGTH = 4096


class TokenError(Exception):
    """A token that is missing, malformed, expired or wrongly signed."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A freshly signed token and its lifetime in seconds."""

    token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The claims the service relies on."""

    user_id: int
    phone: str
    market: str
    jti: str


class TokenService:
    """Signs and verifies access tokens with the configured key and claims."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.signing_secret
        self._algorithm = settings.jwt_algorithm
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._lifetime = settings.access_token_expire_seconds

    def issue(self, *, user_id: int, phone: str, market: str) -> AccessToken:
        """Sign an access token for a user."""
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "phone": phone,
            "market": market,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self._lifetime)).timestamp()),
            "iss": self._issuer,
            "aud": self._audience,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._secret, algorithm=self._algorithm)
        return AccessToken(token=token, expires_in=self._lifetime)

    def verify(self, token: str) -> TokenClaims:
        """Check signature, algorithm, expiry, issuer and audience; raise `TokenError`."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token too long")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require_exp": True, "require_iat": True, "require_sub": True},
            )
            user_id = int(claims["sub"])
            return TokenClaims(
                user_id=user_id,
                phone=str(claims.get("phone", "")),
                market=str(claims.get("market", "")),
                jti=str(claims.get("jti", "")),
            )
        except (JWTError, KeyError, ValueError, TypeError) as exc:
            raise TokenError(str(exc)) from exc
