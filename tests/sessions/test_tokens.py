"""JWT access tokens: a round trip, the claims, and every way a token must be refused."""

from __future__ import annotations

import base64
import inspect
import json
import time
from typing import Any

import pytest
from jose import jwt

from app.core.config import Settings
from app.services.sessions.tokens import MAX_TOKEN_LENGTH, TokenError, TokenService

# These tests build `Settings` themselves: the process environment stays out.
pytestmark = pytest.mark.usefixtures("clean_settings_env")

SECRET = "unit-test-secret-that-is-long-enough-0123456789"
USER_ID = 42
PHONE = "+996555123456"
MARKET = "KG"


def make_settings(**values: Any) -> Settings:
    base: dict[str, Any] = {"environment": "test", "jwt_secret_key": SECRET}
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.fixture
def service() -> TokenService:
    return TokenService(make_settings())


def issue(service: TokenService, **changes: Any) -> str:
    """Issue a token, passing a session id where the service's API takes one."""
    values: dict[str, Any] = {"user_id": USER_ID, "phone": PHONE, "market": MARKET}
    if "session_id" in inspect.signature(service.issue).parameters:
        values["session_id"] = "session-1"
    values.update(changes)
    return service.issue(**values).token


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def resign(token: str, *, secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """The token's claims, changed by `claims` (None deletes one), signed again under `secret`."""
    header = jwt.get_unverified_header(token)
    body = jwt.get_unverified_claims(token)
    for name, value in claims.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    headers = {"kid": header["kid"]} if "kid" in header else None
    return jwt.encode(body, secret, algorithm=algorithm, headers=headers)


def test_issue_and_verify_round_trip(service: TokenService) -> None:
    token = issue(service)

    claims = service.verify(token)

    assert claims.user_id == USER_ID
    assert claims.phone == PHONE
    assert claims.market == MARKET
    assert claims.jti


def test_token_carries_every_claim(service: TokenService) -> None:
    before = int(time.time())
    token = issue(service)

    claims = jwt.get_unverified_claims(token)

    assert {"sub", "phone", "market", "iat", "exp", "iss", "aud", "jti"} <= set(claims)
    assert claims["sub"] == str(USER_ID)
    assert claims["phone"] == PHONE
    assert claims["market"] == MARKET
    assert claims["iss"] == "phone-auth"
    assert claims["aud"] == "phone-auth"
    lifetime = make_settings().access_token_expire_seconds
    assert claims["exp"] - claims["iat"] == lifetime
    assert before - 1 <= claims["iat"] <= int(time.time()) + 1
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_expires_in_is_the_configured_lifetime() -> None:
    service = TokenService(make_settings(access_token_expire_seconds=2592000))
    values: dict[str, Any] = {"user_id": 1, "phone": PHONE, "market": MARKET}
    if "session_id" in inspect.signature(service.issue).parameters:
        values["session_id"] = "s"

    assert service.issue(**values).expires_in == 2592000


def test_every_token_has_its_own_jti(service: TokenService) -> None:
    first = jwt.get_unverified_claims(issue(service))["jti"]
    second = jwt.get_unverified_claims(issue(service))["jti"]

    assert first != second


def test_resigned_token_with_unchanged_claims_still_verifies(service: TokenService) -> None:
    # Proves the helper, so each refusal below is due to the one thing it changes.
    assert service.verify(resign(issue(service))).user_id == USER_ID


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        pytest.param("aud", "another-service", id="wrong-aud"),
        pytest.param("iss", "someone-else", id="wrong-iss"),
        pytest.param("exp", int(time.time()) - 60, id="expired"),
        pytest.param("exp", None, id="no-exp"),
        pytest.param("iat", None, id="no-iat"),
        pytest.param("sub", None, id="no-sub"),
        pytest.param("iss", None, id="no-iss"),
        pytest.param("sub", "not-a-number", id="sub-not-a-user-id"),
        pytest.param("sub", str(2**63), id="sub-2**63"),
        pytest.param("sub", str(2**31), id="sub-beyond-the-id-column"),
        pytest.param("sub", "-1", id="sub-negative"),
        pytest.param("sub", "0", id="sub-zero"),
        pytest.param("sub", "042", id="sub-leading-zero"),
        pytest.param("sub", "\u0664\u0662", id="sub-arabic-indic-digits"),
        pytest.param("sid", 42, id="sid-not-text"),
        pytest.param("sid", "s" * 33, id="sid-longer-than-the-column"),
    ],
)
def test_tokens_with_wrong_claims_are_refused(
    service: TokenService, claim: str, value: Any
) -> None:
    token = resign(issue(service), **{claim: value})

    with pytest.raises(TokenError):
        service.verify(token)


def test_token_without_aud_is_refused(service: TokenService) -> None:
    token = resign(issue(service), aud=None)

    with pytest.raises(TokenError):
        service.verify(token)


def test_expired_token_is_refused(service: TokenService) -> None:
    now = int(time.time())
    token = resign(issue(service), iat=now - 3600, exp=now - 1)

    with pytest.raises(TokenError):
        service.verify(token)


def test_service_with_another_audience_refuses_the_token(service: TokenService) -> None:
    other = TokenService(make_settings(jwt_audience="other-audience"))

    with pytest.raises(TokenError):
        other.verify(issue(service))


def test_service_with_another_issuer_refuses_the_token(service: TokenService) -> None:
    other = TokenService(make_settings(jwt_issuer="other-issuer"))

    with pytest.raises(TokenError):
        other.verify(issue(service))


def test_token_signed_with_another_secret_is_refused(service: TokenService) -> None:
    token = resign(issue(service), secret="another-secret-that-is-long-enough-000000")

    with pytest.raises(TokenError):
        service.verify(token)


def test_tampered_payload_is_refused(service: TokenService) -> None:
    header, payload, signature = issue(service).split(".")
    claims = jwt.get_unverified_claims(f"{header}.{payload}.{signature}")
    claims["sub"] = "1"
    forged = f"{header}.{b64(claims)}.{signature}"

    with pytest.raises(TokenError):
        service.verify(forged)


def test_tampered_signature_is_refused(service: TokenService) -> None:
    header, payload, signature = issue(service).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]

    with pytest.raises(TokenError):
        service.verify(f"{header}.{payload}.{flipped}")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(service: TokenService, alg: str) -> None:
    real = issue(service)
    header = {**jwt.get_unverified_header(real), "alg": alg}
    claims = jwt.get_unverified_claims(real)

    for signature in ("", real.split(".")[2]):
        with pytest.raises(TokenError):
            service.verify(f"{b64(header)}.{b64(claims)}.{signature}")


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_with_the_right_secret_are_refused(
    service: TokenService, algorithm: str
) -> None:
    token = resign(issue(service), algorithm=algorithm)

    with pytest.raises(TokenError):
        service.verify(token)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("not-a-token", id="garbage"),
        pytest.param("a.b.c", id="three-garbage-parts"),
        pytest.param("x" * (MAX_TOKEN_LENGTH + 1), id="too-long"),
    ],
)
def test_malformed_tokens_are_refused(service: TokenService, token: str) -> None:
    with pytest.raises(TokenError):
        service.verify(token)


def test_token_from_a_restarted_dev_server_without_secret_is_refused() -> None:
    # Without JWT_SECRET_KEY each start has its own random key.
    first = TokenService(make_settings(environment="development", jwt_secret_key=None))
    second = TokenService(make_settings(environment="development", jwt_secret_key=None))

    with pytest.raises(TokenError):
        second.verify(issue(first))
