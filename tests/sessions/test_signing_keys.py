"""Signing keys: RS256/ES256 from PEM, JWKS others can verify with, rotation, forgeries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError

from app.core.config import Settings
from tests.conftest import JWT_SECRET, ClientFactory
from tests.helpers import (
    INVALID_TOKEN,
    JWKS,
    Records,
    assert_unauthorized,
    claims,
    header,
    login,
    me,
    private_key,
    private_pem,
    public_pem,
    refresh,
    thumbprint,
)

# Twilio starts a verification for any number and approves any code.
pytestmark = pytest.mark.usefixtures("twilio_approves")

ASYMMETRIC = ["RS256", "ES256"]


def verify_with_jwks(token: str, jwks: dict[str, Any], algorithm: str) -> dict[str, Any]:
    """Verify `token` with PyJWT from nothing but the JWKS document."""
    keys = jwt.PyJWKSet.from_dict(jwks)
    key = keys[header(token)["kid"]]
    verified: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[algorithm],
        audience="phone-auth",
        issuer="phone-auth",
        options={"require": ["exp", "iat", "sub", "iss", "aud"]},
    )
    return verified


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_hs256(token: str, secret: bytes, **header_changes: Any) -> str:
    """`token`'s claims re-signed with HMAC-SHA256 under `secret` (no library checks)."""
    head = {"alg": "HS256", "typ": "JWT", **header_changes}
    signing_input = f"{_b64(json.dumps(head).encode())}.{token.split('.')[1]}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.mark.parametrize("source", ["env", "file"])
@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_tokens_verify_with_only_the_jwks(
    client_for: ClientFactory, tmp_path: Path, algorithm: str, source: str
) -> None:
    key = private_key(algorithm)
    if source == "env":
        overrides: dict[str, Any] = {"jwt_private_key": private_pem(key)}
    else:
        path = tmp_path / "signing.pem"
        path.write_text(private_pem(key))
        overrides = {"jwt_private_key_file": str(path)}

    async with client_for(jwt_algorithm=algorithm, **overrides) as client:
        body = await login(client)
        renewed = (await refresh(client, body["refresh_token"])).json()
        published = await client.get(JWKS)

    assert published.status_code == 200
    assert published.headers["content-type"] == "application/json"
    jwks = published.json()
    assert [(k["kid"], k["alg"], k["use"]) for k in jwks["keys"]] == [
        (thumbprint(key), algorithm, "sig")
    ]
    assert all("d" not in k for k in jwks["keys"])  # no private parts
    assert header(body["access_token"]) == {"alg": algorithm, "kid": thumbprint(key), "typ": "JWT"}

    for token in (body["access_token"], renewed["access_token"]):
        verified = verify_with_jwks(token, jwks, algorithm)
        assert verified["sub"] == body["user"]["id"]
        assert verified["sid"] == claims(body["access_token"])["sid"]
        assert verified["phone"] == body["user"]["phone"]


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_pyjwt_refuses_a_token_the_jwks_did_not_sign(
    client_for: ClientFactory, algorithm: str
) -> None:
    async with client_for(
        jwt_algorithm=algorithm, jwt_private_key=private_pem(private_key(algorithm))
    ) as client:
        jwks = (await client.get(JWKS)).json()
    intruder = private_key(algorithm)
    token = jwt.encode(
        {"sub": "1", "sid": "x", "iss": "phone-auth", "aud": "phone-auth", "iat": 1, "exp": 2**40},
        intruder,
        algorithm=algorithm,
        headers={"kid": jwks["keys"][0]["kid"]},
    )

    with pytest.raises(jwt.InvalidSignatureError):
        verify_with_jwks(token, jwks, algorithm)


async def test_keys_may_come_as_one_line_with_escaped_newlines(client_for: ClientFactory) -> None:
    """How a PEM usually sits in `.env`: `JWT_PRIVATE_KEY="-----BEGIN...\\n..."`."""
    old, current = private_key("ES256"), private_key("ES256")
    async with client_for(
        jwt_algorithm="ES256",
        jwt_private_key=private_pem(current).replace("\n", "\\n"),
        jwt_previous_public_keys=public_pem(old).replace("\n", "\\n"),
    ) as client:
        body = await login(client)
        jwks = (await client.get(JWKS)).json()

    assert sorted(k["kid"] for k in jwks["keys"]) == sorted([thumbprint(old), thumbprint(current)])
    assert verify_with_jwks(body["access_token"], jwks, "ES256")["sub"] == body["user"]["id"]


async def test_hs256_publishes_no_keys(client: httpx.AsyncClient) -> None:
    published = await client.get(JWKS)

    assert published.status_code == 200
    assert published.json() == {"keys": []}


@pytest.mark.parametrize(
    ("old_algorithm", "new_algorithm"), [("RS256", "RS256"), ("ES256", "RS256"), ("RS256", "ES256")]
)
async def test_a_token_of_a_retired_key_still_works(
    client_for: ClientFactory, old_algorithm: str, new_algorithm: str
) -> None:
    old_key = private_key(old_algorithm)
    new_key = private_key(new_algorithm)
    async with client_for(jwt_algorithm=old_algorithm, jwt_private_key=private_pem(old_key)) as old:
        body = await login(old)

    async with client_for(
        jwt_algorithm=new_algorithm,
        jwt_private_key=private_pem(new_key),
        jwt_previous_public_keys=public_pem(old_key),
    ) as new:
        profile = await me(new, body["access_token"])
        jwks = (await new.get(JWKS)).json()
        renewed = await refresh(new, body["refresh_token"])

    assert profile.status_code == 200, profile.text
    assert profile.json() == body["user"]
    assert sorted(k["kid"] for k in jwks["keys"]) == sorted(
        [thumbprint(old_key), thumbprint(new_key)]
    )
    # Others can verify both generations from the JWKS alone.
    verify_with_jwks(body["access_token"], jwks, old_algorithm)
    assert renewed.status_code == 200, renewed.text
    new_token = renewed.json()["access_token"]
    assert header(new_token)["kid"] == thumbprint(new_key)
    verify_with_jwks(new_token, jwks, new_algorithm)


async def test_previous_keys_accept_several_pem_blocks(client_for: ClientFactory) -> None:
    retired = [private_key("RS256"), private_key("ES256")]
    current = private_key("RS256")
    async with client_for(
        jwt_algorithm="RS256",
        jwt_private_key=private_pem(current),
        jwt_previous_public_keys="".join(public_pem(key) for key in retired),
    ) as client:
        jwks = (await client.get(JWKS)).json()

    assert sorted(k["kid"] for k in jwks["keys"]) == sorted(
        thumbprint(key) for key in [current, *retired]
    )


async def test_a_token_of_an_unknown_key_is_refused(client_for: ClientFactory) -> None:
    async with client_for(
        jwt_algorithm="RS256", jwt_private_key=private_pem(private_key("RS256"))
    ) as old:
        body = await login(old)

    # A new key without the old one among the previous keys: the old tokens are not ours.
    async with client_for(
        jwt_algorithm="RS256", jwt_private_key=private_pem(private_key("RS256"))
    ) as new:
        assert_unauthorized(await me(new, body["access_token"]), INVALID_TOKEN)


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_a_token_signed_by_another_key_under_our_kid_is_refused(
    client_for: ClientFactory, algorithm: str
) -> None:
    async with client_for(
        jwt_algorithm=algorithm, jwt_private_key=private_pem(private_key(algorithm))
    ) as client:
        body = await login(client)
        forged = jwt.encode(
            claims(body["access_token"]),
            private_key(algorithm),
            algorithm=algorithm,
            headers={"kid": header(body["access_token"])["kid"]},
        )
        assert_unauthorized(await me(client, forged), INVALID_TOKEN)
        assert (await me(client, body["access_token"])).status_code == 200


async def test_hs256_forged_with_the_public_key_is_refused(client_for: ClientFactory) -> None:
    key = private_key("RS256")
    async with client_for(jwt_algorithm="RS256", jwt_private_key=private_pem(key)) as client:
        body = await login(client)
        kid = header(body["access_token"])["kid"]
        for secret in (public_pem(key).encode(), public_pem(key).strip().encode()):
            for headers in ({"kid": kid}, {}):
                forged = forge_hs256(body["access_token"], secret, **headers)
                assert_unauthorized(await me(client, forged), INVALID_TOKEN)
        # Nor with the HMAC secret the service holds for other purposes.
        forged = forge_hs256(body["access_token"], JWT_SECRET.encode(), kid=kid)
        assert_unauthorized(await me(client, forged), INVALID_TOKEN)
        assert (await me(client, body["access_token"])).status_code == 200


async def test_unsigned_tokens_are_refused(client_for: ClientFactory) -> None:
    async with client_for(
        jwt_algorithm="ES256", jwt_private_key=private_pem(private_key("ES256"))
    ) as client:
        body = await login(client)
        head = _b64(
            json.dumps(
                {"alg": "none", "typ": "JWT", "kid": header(body["access_token"])["kid"]}
            ).encode()
        )
        unsigned = f"{head}.{body['access_token'].split('.')[1]}."
        assert_unauthorized(await me(client, unsigned), INVALID_TOKEN)


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
def test_production_refuses_an_asymmetric_algorithm_without_a_private_key(algorithm: str) -> None:
    with pytest.raises(ValidationError, match="JWT_PRIVATE_KEY"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="production",
            jwt_algorithm=algorithm,
            verify_provider="twilio",
        )


def test_production_refuses_an_unreadable_private_key_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="JWT_PRIVATE_KEY_FILE"):
        Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="production",
            jwt_algorithm="RS256",
            verify_provider="twilio",
            jwt_private_key_file=tmp_path / "missing.pem",
        )


def test_production_accepts_rs256_with_a_private_key(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    path.write_text(private_pem(private_key("RS256")))

    for key in ({"jwt_private_key": path.read_text()}, {"jwt_private_key_file": path}):
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            environment="production",
            jwt_algorithm="RS256",
            verify_provider="twilio",
            **key,
        )
        assert settings.private_key_pem() == path.read_text()


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_with_a_private_key_nothing_warns_about_jwt_secret_key(
    client_for: ClientFactory, app_logs: Records, algorithm: str
) -> None:
    pem = private_pem(private_key(algorithm))
    async with client_for(jwt_algorithm=algorithm, jwt_private_key=pem, jwt_secret_key=None) as c:
        tokens = await login(c)
        refreshed = await refresh(c, tokens["refresh_token"])

    assert refreshed.status_code == 200, refreshed.text
    assert app_logs.at(logging.WARNING) == []


@pytest.mark.parametrize("algorithm", ASYMMETRIC)
async def test_without_any_key_development_warns_only_of_the_private_key(
    client_for: ClientFactory, app_logs: Records, algorithm: str
) -> None:
    async with client_for(
        environment="development", jwt_algorithm=algorithm, jwt_secret_key=None
    ) as client:
        tokens = await login(client)

    assert tokens["access_token"]
    [warning] = app_logs.at(logging.WARNING)
    assert warning.startswith("JWT_PRIVATE_KEY is not set")
    assert "JWT_SECRET_KEY" not in warning
