"""Shared helpers of the session tests: logging in, calling endpoints, keys, database reads."""

from __future__ import annotations

import hashlib
import itertools
import json
from base64 import urlsafe_b64encode
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.auth_event import AuthEvent
from app.models.login_session import LoginSession, RefreshToken
from app.models.user import User

SEND = "/api/v1/auth/send-verification"
VERIFY = "/api/v1/auth/verify-code"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
JWKS = "/.well-known/jwks.json"

INVALID_REFRESH = {"detail": "Invalid or expired refresh token."}
INVALID_TOKEN = {"detail": "Invalid or expired token."}
DISABLED = {"detail": "User account is disabled."}

# A test number: exempt from per-phone limits, so one user can log in many times.
TEST_NUMBER = "+12025550100"
TEST_NUMBERS: dict[str, Any] = {"test_phone_numbers": f"{TEST_NUMBER}=123456"}

_numbers = itertools.count(100000)


def new_phone() -> str:
    """A Kyrgyz mobile number no other login of this run used."""
    return f"+996555{next(_numbers):06d}"


async def login(client: httpx.AsyncClient, phone: str | None = None) -> dict[str, Any]:
    """Send a code and verify it (Twilio mocked to approve); the verify-code body."""
    phone = phone or new_phone()
    sent = await client.post(SEND, json={"phone": phone})
    assert sent.status_code == 200, sent.text
    verified = await client.post(VERIFY, json={"phone": phone, "verification_code": "123456"})
    assert verified.status_code == 200, verified.text
    body: dict[str, Any] = verified.json()
    return body


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


async def me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    """GET /users/me with a token."""
    return await client.get(ME, headers=bearer(access_token))


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    """POST /auth/refresh with a refresh token."""
    return await client.post(REFRESH, json={"refresh_token": refresh_token})


def claims(token: str) -> dict[str, Any]:
    """A JWT's claims, read without checking anything."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def header(token: str) -> dict[str, Any]:
    """A JWT's header, read without checking anything."""
    return dict(jwt.get_unverified_header(token))


def assert_unauthorized(response: httpx.Response, body: dict[str, str]) -> None:
    """A 401 with `body` and the Bearer challenge."""
    assert response.status_code == 401, response.text
    assert response.json() == body
    assert response.headers["WWW-Authenticate"] == "Bearer"


# Keys -------------------------------------------------------------------------------------


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def private_key(algorithm: str) -> PrivateKey:
    """A fresh private key for RS256 or ES256."""
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(key: PrivateKey) -> str:
    """The unencrypted PKCS#8 PEM of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: PrivateKey) -> str:
    """The SubjectPublicKeyInfo PEM of a private key's public half."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(key: PrivateKey) -> str:
    """The RFC 7638 SHA-256 thumbprint of a key's public half, computed here independently."""
    public = key.public_key()
    members: dict[str, str]
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        members = {"e": _b64(e), "kty": "RSA", "n": _b64(n)}
    else:
        point = public.public_numbers()
        members = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64(point.x.to_bytes(32, "big")),
            "y": _b64(point.y.to_bytes(32, "big")),
        }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


# Database ---------------------------------------------------------------------------------


def sha256_hex(raw: str) -> str:
    """SHA-256 of a token, hex."""
    return hashlib.sha256(raw.encode()).hexdigest()


async def refresh_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every row of refresh_tokens, as dicts."""
    async with engine.connect() as connection:
        result = await connection.execute(select(RefreshToken.__table__))
        return [dict(row) for row in result.mappings()]


async def session_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every row of auth_sessions, as dicts."""
    async with engine.connect() as connection:
        result = await connection.execute(select(LoginSession.__table__))
        return [dict(row) for row in result.mappings()]


async def event_rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    """Every row of auth_events in insertion order, as dicts."""
    async with engine.connect() as connection:
        result = await connection.execute(select(AuthEvent.__table__).order_by(AuthEvent.id))
        return [dict(row) for row in result.mappings()]


async def user_row(engine: AsyncEngine, user_id: str) -> dict[str, Any]:
    """The users row of `user_id` (the API's string id)."""
    async with engine.connect() as connection:
        result = await connection.execute(select(User.__table__).where(User.id == int(user_id)))
        return dict(result.mappings().one())


async def set_user_active(engine: AsyncEngine, user_id: str, active: bool) -> None:
    """Enable or disable a user directly in the database."""
    async with engine.begin() as connection:
        await connection.execute(
            update(User).where(User.id == int(user_id)).values(is_active=active)
        )


async def age_rotations(engine: AsyncEngine, when: datetime) -> None:
    """Pretend every rotated refresh token was rotated at `when`."""
    async with engine.begin() as connection:
        await connection.execute(
            update(RefreshToken).where(RefreshToken.rotated_at.is_not(None)).values(rotated_at=when)
        )


def now() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)
