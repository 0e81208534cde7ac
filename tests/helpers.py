"""Shared helpers of the tests: the HTTP contract (endpoints, bodies, logging in), client
addresses and limits, signing keys, database reads, free ports and a Redis that can be
stopped.

Twilio's routes are mocked with the helpers of `tests/twilio_fixtures.py`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import socket
import subprocess
import time
from base64 import urlsafe_b64encode
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import DEFAULT_MARKETS, MarketSettings
from app.models.auth_event import AuthEvent
from app.models.login_session import LoginSession, RefreshToken
from app.models.user import User
from app.models.verification import Verification

# Endpoints ---------------------------------------------------------------------------------

SEND = "/api/v1/auth/send-verification"
VERIFY = "/api/v1/auth/verify-code"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"
JWKS = "/.well-known/jwks.json"

# Numbers and codes -------------------------------------------------------------------------

KG_PHONE = "+996555123456"
KG_MASKED = "+996*****3456"
US_PHONE = "+12025550143"
# The code the tests type; mocked Twilio approves whatever it is told to.
CODE = "480913"

# A test number: a fixed code, no Twilio, exempt from per-phone limits, so that one
# user can log in many times.
TEST_NUMBER = "+12025550100"
TEST_CODE = "123456"
TEST_NUMBERS: dict[str, Any] = {"test_phone_numbers": f"{TEST_NUMBER}={TEST_CODE}"}

_numbers = itertools.count(100000)


def new_phone() -> str:
    """A Kyrgyz mobile number no other login of this run used."""
    return f"+996555{next(_numbers):06d}"


# The contract's bodies ---------------------------------------------------------------------

UNAVAILABLE = "SMS verification is temporarily unavailable. Please contact support."
PROVIDER_FAILED = "Could not reach the SMS provider. Please try again later."
INVALID_CODE = {"detail": "Invalid or expired verification code"}
LOCKED = {"detail": "Too many failed attempts. Please request a new code.", "retry_after": 60}
DISABLED = {"detail": "User account is disabled."}
NOT_AUTHENTICATED = {"detail": "Authentication credentials were not provided."}
INVALID_TOKEN = {"detail": "Invalid or expired token."}
INVALID_REFRESH = {"detail": "Invalid or expired refresh token."}
BAD_BODY = {"detail": "Request body must be a JSON object."}
INVALID_JSON = "Request body is not valid JSON."


def as_answered(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A `{"detail": …}` error body as `path` answers it: send-verification's carry
    `"success": false`."""
    return {"success": False, **body} if path == SEND else body


# Settings overrides ------------------------------------------------------------------------

# The old backend's lifetime, which issue 4 keeps available through the setting.
OLD_LIFETIME: dict[str, Any] = {"access_token_expire_seconds": 2592000}
# No limits in the way of tests that send many requests on purpose.
NO_LIMITS: dict[str, Any] = {"rate_limit_enabled": False}
# Trust the test client's socket peer, so `X-Forwarded-For` can play other clients.
AS_PROXY: dict[str, Any] = {"trusted_proxies": ["127.0.0.1"]}


# Calling the API ---------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


async def login(
    client: httpx.AsyncClient, phone: str | None = None, code: str = CODE
) -> dict[str, Any]:
    """Send a code to `phone` (a new number when None) and verify `code` (Twilio mocked by
    the test); the verify-code body."""
    phone = phone or new_phone()
    sent = await client.post(SEND, json={"phone": phone})
    assert sent.status_code == 200, sent.text
    verified = await client.post(VERIFY, json={"phone": phone, "verification_code": code})
    assert verified.status_code == 200, verified.text
    body: dict[str, Any] = verified.json()
    return body


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


def assert_unauthorized(response: httpx.Response, body: dict[str, str] = INVALID_TOKEN) -> None:
    """A 401 with `body` and the Bearer challenge."""
    assert response.status_code == 401, response.text
    assert response.json() == body
    assert response.headers["WWW-Authenticate"] == "Bearer"


# Clients and limits ------------------------------------------------------------------------


def from_ip(address: str) -> dict[str, str]:
    """Headers of a request forwarded by the trusted proxy for `address`."""
    return {"X-Forwarded-For": address}


def too_many(retry_after: int, *, send: bool = True) -> dict[str, Any]:
    """The 429 body of a client limit: send carries `success`, verify does not."""
    body: dict[str, Any] = {
        "detail": f"Too many requests. Try again in {retry_after} seconds.",
        "retry_after": retry_after,
    }
    return {"success": False, **body} if send else body


def retry_after(response: httpx.Response, window: int) -> int:
    """`Retry-After` of a 429/503, checked to be sane for a `window`-second limit."""
    value = int(response.headers["Retry-After"])
    assert 1 <= value <= window, (value, window)
    return value


async def race_for_the_last_budget(client: httpx.AsyncClient) -> list[httpx.Response]:
    """Ten KG numbers race for a KG budget of one; then each refused number asks again.

    Sent to no one, the refused numbers have used none of their per-phone sends,
    so asking again must meet the budget (503), not their cooldown (429).
    """
    phones = [f"+99655512340{n}" for n in range(10)]
    answers = await asyncio.gather(*(client.post(SEND, json={"phone": p}) for p in phones))
    assert sorted(a.status_code for a in answers) == [200] + [503] * 9
    refused = [p for p, a in zip(phones, answers, strict=True) if a.status_code == 503]
    return [await client.post(SEND, json={"phone": p}) for p in refused]


def kg_budget(budget: str) -> dict[str, MarketSettings]:
    """The default markets with KG's SMS budget replaced."""
    kg = DEFAULT_MARKETS["KG"]
    return {
        "KG": MarketSettings(
            region=kg.region,
            language=kg.language,
            code_ttl_minutes=kg.code_ttl_minutes,
            channels=list(kg.channels),
            sms_budget=budget,
        ),
        "US": DEFAULT_MARKETS["US"],
    }


# Logs --------------------------------------------------------------------------------------


class Records(logging.Handler):
    """Keeps the log records it sees."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int, logger_prefix: str = "app") -> list[str]:
        """Messages at exactly `level` from loggers under `logger_prefix`."""
        return [
            r.getMessage()
            for r in self.records
            if r.levelno == level and r.name.startswith(logger_prefix)
        ]


# Keys --------------------------------------------------------------------------------------


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


# Database ----------------------------------------------------------------------------------


async def users(engine: AsyncEngine) -> list[Any]:
    """Every users row."""
    async with engine.connect() as connection:
        result = await connection.execute(select(User.__table__).order_by(User.id))
        return list(result.all())


async def verifications(engine: AsyncEngine) -> list[Any]:
    """Every verifications row, oldest first."""
    async with engine.connect() as connection:
        result = await connection.execute(select(Verification.__table__).order_by(Verification.id))
        return list(result.all())


async def user_id(engine: AsyncEngine, phone: str) -> int:
    """The id of the user with `phone`."""
    async with engine.connect() as connection:
        found = await connection.scalar(select(User.id).where(User.phone == phone))
    assert found is not None
    return int(found)


async def disable_user(engine: AsyncEngine, phone: str) -> None:
    """Set the user's `is_active` to false, as an administrator would."""
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.phone == phone).values(is_active=False))


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


# Processes ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_answers(port: int) -> bool:
    """Whether a Redis on 127.0.0.1:`port` answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class ThrowawayRedis:
    """A `redis-server` of this test alone, on a port of its own, that can be stopped."""

    def __init__(self, binary: str, port: int, directory: Path) -> None:
        self.binary = binary
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers."""
        self.process = subprocess.Popen(  # noqa: S603
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_answers(self.port):
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start in 10s"
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it: from now on connections are refused."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


async def set_roles(engine: AsyncEngine, user_id: str, roles: list[str]) -> None:
    """Give a user roles directly in the database, as the first admin is made."""
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.id == int(user_id)).values(roles=roles))
