"""GET /api/v1/users/me: the user behind a token; every bad token is 401 with a challenge."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
import respx
from jose import jwt
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import JWT_SECRET, ClientFactory
from tests.helpers import (
    DISABLED,
    KG_PHONE,
    LOGOUT,
    ME,
    NOT_AUTHENTICATED,
    US_PHONE,
    assert_unauthorized,
    bearer,
    disable_user,
    login,
)
from tests.twilio_fixtures import mock_check, mock_start


@pytest.fixture
async def logged_in(client: httpx.AsyncClient, twilio: respx.MockRouter) -> dict[str, Any]:
    """The verify-code body of a fresh KG login."""
    mock_start(twilio)
    mock_check(twilio, "approved")
    return await login(client, KG_PHONE)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def resign(
    token: str,
    secret: str = JWT_SECRET,
    algorithm: str = "HS256",
    drop: tuple[str, ...] = (),
    **changes: Any,
) -> str:
    """`token`'s claims with `changes`, signed again (with the test secret by default)."""
    claims = {k: v for k, v in jwt.get_unverified_claims(token).items() if k not in drop}
    claims.update(changes)
    kid = jwt.get_unverified_header(token).get("kid")
    return str(jwt.encode(claims, secret, algorithm=algorithm, headers={"kid": kid}))


def unsigned(token: str, alg: str) -> str:
    """`token`'s claims under an `alg: none` header, without a signature."""
    header = {"alg": alg, "typ": "JWT", "kid": jwt.get_unverified_header(token).get("kid")}
    return f"{_b64(header)}.{_b64(jwt.get_unverified_claims(token))}."


async def test_me_returns_the_login_user(
    client: httpx.AsyncClient, logged_in: dict[str, Any]
) -> None:
    response = await client.get(ME, headers=bearer(logged_in["access_token"]))

    assert response.status_code == 200
    assert response.json() == logged_in["user"]
    assert response.json()["phone"] == KG_PHONE


async def test_each_token_is_its_own_user(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    mock_check(twilio, "approved")
    async with client_for() as client:
        kg = await login(client, KG_PHONE)
        us = await login(client, US_PHONE)
        kg_me = await client.get(ME, headers=bearer(kg["access_token"]))
        us_me = await client.get(ME, headers=bearer(us["access_token"]))

    assert kg_me.json() == kg["user"]
    assert us_me.json() == us["user"]
    assert kg["user"]["id"] != us["user"]["id"]


async def test_resigned_token_with_unchanged_claims_is_accepted(
    client: httpx.AsyncClient, logged_in: dict[str, Any]
) -> None:
    # The control of the tests below: re-signing alone does not break a token.
    response = await client.get(ME, headers=bearer(resign(logged_in["access_token"])))

    assert response.status_code == 200
    assert response.json() == logged_in["user"]


async def test_missing_header(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.get(ME), NOT_AUTHENTICATED)


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "bearer", ""],
)
async def test_not_a_bearer_header(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get(ME, headers={"Authorization": authorization})

    assert_unauthorized(response, NOT_AUTHENTICATED)


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b.c",
        "a.b",
        "eyJhbGciOiJIUzI1NiJ9..",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.xxx",
        "x" * 5000,
    ],
    ids=["word", "three-junk-parts", "two-parts", "empty-parts", "bad-signature", "huge"],
)
async def test_malformed_token(client: httpx.AsyncClient, token: str) -> None:
    assert_unauthorized(await client.get(ME, headers=bearer(token)))


async def test_expired_token(client: httpx.AsyncClient, logged_in: dict[str, Any]) -> None:
    now = int(time.time())
    token = resign(logged_in["access_token"], iat=now - 3600, exp=now - 10)

    assert_unauthorized(await client.get(ME, headers=bearer(token)))


async def test_token_expires_after_its_lifetime(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    # A real token of an app with a 60-second lifetime, presented 2 minutes later.
    mock_start(twilio)
    mock_check(twilio, "approved")
    async with client_for(access_token_expire_seconds=60) as client:
        body = await login(client, KG_PHONE)
        claims = jwt.get_unverified_claims(body["access_token"])
        assert claims["exp"] - claims["iat"] == 60
        assert body["expires_in"] == 60
        later = resign(body["access_token"], iat=claims["iat"] - 120, exp=claims["exp"] - 120)
        response = await client.get(ME, headers=bearer(later))

    assert_unauthorized(response)


@pytest.mark.parametrize(
    "secret",
    ["another-secret-key-that-is-long-enough-9876543210", JWT_SECRET + "x", ""],
    ids=["other-secret", "longer-secret", "empty-secret"],
)
async def test_wrongly_signed_token(
    client: httpx.AsyncClient, logged_in: dict[str, Any], secret: str
) -> None:
    token = resign(logged_in["access_token"], secret=secret)

    assert_unauthorized(await client.get(ME, headers=bearer(token)))


async def test_token_of_another_deployment(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    mock_check(twilio, "approved")
    async with client_for(jwt_secret_key="another-secret-key-that-is-long-enough-000") as other:
        foreign = await login(other, KG_PHONE)
    async with client_for() as client:
        response = await client.get(ME, headers=bearer(foreign["access_token"]))

    assert_unauthorized(response)


async def test_tampered_claims_keep_the_old_signature(
    client: httpx.AsyncClient, logged_in: dict[str, Any]
) -> None:
    header, _, signature = logged_in["access_token"].split(".")
    claims = jwt.get_unverified_claims(logged_in["access_token"])
    claims["sub"] = str(int(claims["sub"]) + 1)
    token = f"{header}.{_b64(claims)}.{signature}"

    assert_unauthorized(await client.get(ME, headers=bearer(token)))


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "another-service"},
        {"iss": "someone-else"},
        {"aud": ["another-service"]},
        {"exp": "tomorrow"},
        {"sub": "not-a-number"},
    ],
    ids=["audience", "issuer", "audience-list", "exp-not-a-number", "sub-not-a-number"],
)
async def test_token_with_wrong_claims(
    client: httpx.AsyncClient, logged_in: dict[str, Any], changes: dict[str, Any]
) -> None:
    token = resign(logged_in["access_token"], **changes)

    assert_unauthorized(await client.get(ME, headers=bearer(token)))


# Signed with the right key, but naming no user the database can hold: beyond its
# integer columns (PostgreSQL's and SQLite's), not positive, or not in canonical form.
OUT_OF_RANGE_SUBS = [
    pytest.param(str(2**63), id="2**63"),
    pytest.param(str(2**64 + 1), id="2**64+1"),
    pytest.param(str(2**31), id="2**31"),
    pytest.param("-1", id="minus-one"),
    pytest.param("0", id="zero"),
    pytest.param("1" * 5000, id="5000-digits"),
    pytest.param("+1", id="plus-sign"),
    pytest.param("01", id="leading-zero"),
    pytest.param(" 1", id="space"),
    pytest.param("1_0", id="underscore"),
    pytest.param("\u0661", id="arabic-indic-one"),
]


@pytest.mark.parametrize("sub", OUT_OF_RANGE_SUBS)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ME), ("PATCH", ME), ("POST", LOGOUT)],
    ids=["me", "patch", "logout"],
)
async def test_validly_signed_token_naming_no_possible_user_is_401(
    client: httpx.AsyncClient, logged_in: dict[str, Any], sub: str, method: str, path: str
) -> None:
    token = resign(logged_in["access_token"], sub=sub)

    response = await client.request(method, path, headers=bearer(token), json={})

    assert_unauthorized(response)
    # The user's own token still works: nothing was revoked or changed.
    assert (await client.get(ME, headers=bearer(logged_in["access_token"]))).status_code == 200


@pytest.mark.parametrize(
    "drop",
    [
        pytest.param("exp", id="no-exp"),
        pytest.param("iss", id="no-iss"),
        pytest.param("sub", id="no-sub"),
        pytest.param("aud", id="no-aud"),
        pytest.param("iat", id="no-iat"),
    ],
)
async def test_token_without_a_required_claim(
    client: httpx.AsyncClient, logged_in: dict[str, Any], drop: str
) -> None:
    token = resign(logged_in["access_token"], drop=(drop,))

    assert_unauthorized(await client.get(ME, headers=bearer(token)))


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_token(
    client: httpx.AsyncClient, logged_in: dict[str, Any], alg: str
) -> None:
    token = unsigned(logged_in["access_token"], alg)

    assert_unauthorized(await client.get(ME, headers=bearer(token)))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
async def test_other_algorithm_with_the_right_secret(
    client: httpx.AsyncClient, logged_in: dict[str, Any], algorithm: str
) -> None:
    token = resign(logged_in["access_token"], algorithm=algorithm)

    assert_unauthorized(await client.get(ME, headers=bearer(token)))


async def test_disabled_user_is_403(
    client: httpx.AsyncClient, logged_in: dict[str, Any], db_engine: AsyncEngine
) -> None:
    await disable_user(db_engine, KG_PHONE)

    response = await client.get(ME, headers=bearer(logged_in["access_token"]))

    assert response.status_code == 403
    assert response.json() == DISABLED
