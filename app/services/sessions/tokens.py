"""JWT access tokens: issue and verify."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jose import JWTError, jwt

from app.core.config import Settings
from app.models.base import utcnow
from app.models.login_session import SESSION_ID_LENGTH
from app.models.user import MAX_USER_ID
from app.services.sessions.signing_keys import KeySet

MAX_TOKEN_LENGTH = 4096
# How `issue` writes a user id: ASCII digits, no sign, no leading zero.
_USER_ID = re.compile(r"[1-9][0-9]{0,9}")


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
    session_id: str
    phone: str
    market: str
    jti: str
    # Epoch seconds of the code check that opened the session; None in older tokens.
    auth_time: int | None = None


class TokenService:
    """Signs and verifies access tokens with the configured keys and claims."""

    def __init__(self, settings: Settings) -> None:
        self.keys = KeySet(settings)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._lifetime = settings.access_token_expire_seconds

    def issue(
        self,
        *,
        user_id: int,
        session_id: str,
        phone: str,
        market: str,
        roles: list[str] | None = None,
        issued_at: datetime | None = None,
        jti: str | None = None,
        auth_time: datetime | None = None,
    ) -> AccessToken:
        """Sign an access token for a user's session.

        Given `issued_at` and `jti`, the same inputs give the same token, so a
        retried refresh can be answered with the pair it already got.
        """
        issued = issued_at or utcnow()
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "sid": session_id,
            "phone": phone,
            "market": market,
            # For the marketplace's other services, which authorise with the JWKS alone.
            "roles": list(roles or []),
            "iat": int(issued.timestamp()),
            "exp": int((issued + timedelta(seconds=self._lifetime)).timestamp()),
            "iss": self._issuer,
            "aud": self._audience,
            "jti": jti or uuid.uuid4().hex,
        }
        if auth_time is not None:
            claims["auth_time"] = int(auth_time.timestamp())
        token = self.keys.sign(claims)
        return AccessToken(token=token, expires_in=self._lifetime)

    def verify(self, token: str) -> TokenClaims:
        """Check signature, algorithm, expiry, issuer and audience; raise `TokenError`."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("token too long")
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            key = self.keys.verifying_key(kid if isinstance(kid, str) else None)
            if key is None:
                raise TokenError("unknown key id")
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require_exp": True,
                    "require_iat": True,
                    "require_sub": True,
                    "require_aud": True,
                    "require_iss": True,
                },
            )
            return TokenClaims(
                user_id=_user_id(claims["sub"]),
                session_id=_session_id(claims["sid"]),
                phone=str(claims.get("phone", "")),
                market=str(claims.get("market", "")),
                jti=str(claims.get("jti", "")),
                auth_time=_auth_time(claims.get("auth_time")),
            )
        except (JWTError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise TokenError(str(exc)) from exc


def _user_id(sub: object) -> int:
    """The user id a `sub` names, in the form `issue` writes and the range the users
    table holds: a signed token from elsewhere must not reach the database with
    a value it cannot compare."""
    if not isinstance(sub, str) or not _USER_ID.fullmatch(sub) or int(sub) > MAX_USER_ID:
        raise TokenError("sub is not a user id")
    return int(sub)


def _auth_time(value: object) -> int | None:
    """The `auth_time` claim as epoch seconds; None when absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _session_id(sid: object) -> str:
    """The session id a `sid` names, when it fits the sessions table."""
    if not isinstance(sid, str) or not 0 < len(sid) <= SESSION_ID_LENGTH:
        raise TokenError("sid is not a session id")
    return sid
