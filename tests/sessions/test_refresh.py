"""Refresh tokens: what verify-code hands out, rotation, retries, reuse detection."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.phone import mask_phone
from app.main import Clocks
from app.models.login_session import RefreshToken
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    DISABLED,
    INVALID_REFRESH,
    INVALID_TOKEN,
    REFRESH,
    TEST_CODE,
    TEST_NUMBER,
    TEST_NUMBERS,
    Records,
    age_rotations,
    assert_unauthorized,
    claims,
    event_rows,
    header,
    login,
    me,
    now,
    private_key,
    private_pem,
    refresh,
    refresh_rows,
    session_rows,
    set_roles,
    set_user_active,
    sha256_hex,
)

# Twilio starts a verification for any number and approves any code.
pytestmark = pytest.mark.usefixtures("twilio_approves")

URL_SAFE_43 = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 random bytes, base64url
PAIR_KEYS = {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in"}


async def test_verify_code_returns_a_refresh_token_and_lifetimes(
    client: httpx.AsyncClient,
) -> None:
    body = await login(client)

    assert set(body) == PAIR_KEYS | {"user", "market", "is_new_user"}
    assert body["token_type"] == "bearer"
    assert URL_SAFE_43.match(body["refresh_token"]), body["refresh_token"]
    assert body["refresh_token"] != body["access_token"]
    assert body["refresh_expires_in"] == 2592000
    assert body["expires_in"] == 900
    token = claims(body["access_token"])
    assert token["exp"] - token["iat"] == 900


async def test_refresh_tokens_of_two_logins_differ(client: httpx.AsyncClient) -> None:
    first = await login(client)
    second = await login(client)

    assert first["refresh_token"] != second["refresh_token"]


async def test_access_token_lifetime_follows_the_setting(client_for: ClientFactory) -> None:
    async with client_for(access_token_expire_seconds=2592000) as client:
        body = await login(client)
        renewed = await refresh(client, body["refresh_token"])

    assert body["expires_in"] == 2592000
    token = claims(body["access_token"])
    assert token["exp"] - token["iat"] == 2592000
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["expires_in"] == 2592000


async def test_database_keeps_only_a_sha256_of_refresh_tokens(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client)
    renewed = (await refresh(client, body["refresh_token"])).json()

    rows = await refresh_rows(db_engine)
    assert sorted(row["token_hash"] for row in rows) == sorted(
        [sha256_hex(body["refresh_token"]), sha256_hex(renewed["refresh_token"])]
    )
    for row in rows:
        for value in row.values():
            assert body["refresh_token"] not in str(value)
            assert renewed["refresh_token"] not in str(value)


async def test_access_tokens_carry_the_session_id_and_key_id(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client)
    renewed = (await refresh(client, body["refresh_token"])).json()

    (session,) = await session_rows(db_engine)
    assert claims(body["access_token"])["sid"] == session["id"]
    assert claims(renewed["access_token"])["sid"] == session["id"]
    assert claims(body["access_token"])["sub"] == body["user"]["id"]
    kid = header(body["access_token"])["kid"]
    assert isinstance(kid, str)
    assert kid
    assert header(renewed["access_token"])["kid"] == kid


async def test_refresh_rotates_both_tokens(client: httpx.AsyncClient) -> None:
    body = await login(client)

    renewed = await refresh(client, body["refresh_token"])

    assert renewed.status_code == 200, renewed.text
    pair = renewed.json()
    assert set(pair) == PAIR_KEYS | {"user"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    assert pair["refresh_expires_in"] == 2592000
    assert pair["user"] == body["user"]
    assert URL_SAFE_43.match(pair["refresh_token"])
    assert pair["refresh_token"] != body["refresh_token"]
    assert pair["access_token"] != body["access_token"]

    profile = await me(client, pair["access_token"])
    assert profile.status_code == 200
    assert profile.json() == body["user"]

    again = await refresh(client, pair["refresh_token"])
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] not in {body["refresh_token"], pair["refresh_token"]}
    assert (await me(client, again.json()["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "algorithm",
    [
        "HS256",
        "RS256",
        "ES256",
    ],
)
async def test_retry_within_the_interval_returns_the_same_pair(
    client_for: ClientFactory, db_engine: AsyncEngine, algorithm: str
) -> None:
    overrides = (
        {} if algorithm == "HS256" else {"jwt_private_key": private_pem(private_key(algorithm))}
    )
    async with client_for(jwt_algorithm=algorithm, **overrides) as client:
        body = await login(client)
        first = await refresh(client, body["refresh_token"])
        retried = await refresh(client, body["refresh_token"])
        retried_again = await refresh(client, body["refresh_token"])

        assert first.status_code == 200, first.text
        assert retried.status_code == 200, retried.text
        assert retried.json() == first.json()
        assert retried_again.json() == first.json()
        # Not taken as theft: the session lives on.
        assert (await me(client, body["access_token"])).status_code == 200
        assert (await me(client, first.json()["access_token"])).status_code == 200
        assert (await refresh(client, first.json()["refresh_token"])).status_code == 200

    assert [row["revoked_at"] for row in await session_rows(db_engine)] == [None]
    assert "reuse_detected" not in [row["event"] for row in await event_rows(db_engine)]
    assert len(await refresh_rows(db_engine)) == 3


async def _assert_family_revoked(
    client: httpx.AsyncClient,
    db_engine: AsyncEngine,
    login_body: dict[str, Any],
    child: dict[str, Any],
) -> None:
    assert_unauthorized(await refresh(client, child["refresh_token"]), INVALID_REFRESH)
    assert_unauthorized(await refresh(client, login_body["refresh_token"]), INVALID_REFRESH)
    assert_unauthorized(await me(client, login_body["access_token"]), INVALID_TOKEN)
    assert_unauthorized(await me(client, child["access_token"]), INVALID_TOKEN)
    (session,) = [
        row
        for row in await session_rows(db_engine)
        if row["id"] == claims(login_body["access_token"])["sid"]
    ]
    assert session["revoked_at"] is not None
    assert session["revoked_reason"] == "reuse_detected"
    reuse = [row for row in await event_rows(db_engine) if row["event"] == "reuse_detected"]
    assert len(reuse) == 1
    assert reuse[0]["session_id"] == session["id"]
    assert reuse[0]["user_id"] == int(login_body["user"]["id"])


async def test_reuse_after_the_interval_revokes_the_family(
    client_for: ClientFactory, db_engine: AsyncEngine, app_logs: Records
) -> None:
    async with client_for(refresh_token_reuse_interval_seconds=0) as client:
        body = await login(client)
        child = (await refresh(client, body["refresh_token"])).json()

        reused = await refresh(client, body["refresh_token"])

        assert_unauthorized(reused, INVALID_REFRESH)
        await _assert_family_revoked(client, db_engine, body, child)
    # What an operator reads: the session, the user and the number, masked.
    assert app_logs.at(logging.WARNING, "app.services.sessions") == [
        f"Refresh token reuse detected: session {claims(body['access_token'])['sid']} "
        f"of user {body['user']['id']} revoked ({mask_phone(body['user']['phone'])})"
    ]


async def test_reuse_after_the_default_interval_has_passed(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client)
    child = (await refresh(client, body["refresh_token"])).json()
    await age_rotations(db_engine, now() - timedelta(seconds=11))

    reused = await refresh(client, body["refresh_token"])

    assert_unauthorized(reused, INVALID_REFRESH)
    await _assert_family_revoked(client, db_engine, body, child)


async def test_reuse_of_a_grandparent_revokes_descendants(
    client_for: ClientFactory, db_engine: AsyncEngine
) -> None:
    async with client_for(refresh_token_reuse_interval_seconds=0) as client:
        body = await login(client)
        child = (await refresh(client, body["refresh_token"])).json()
        grandchild = (await refresh(client, child["refresh_token"])).json()

        assert_unauthorized(await refresh(client, body["refresh_token"]), INVALID_REFRESH)

        assert_unauthorized(await refresh(client, grandchild["refresh_token"]), INVALID_REFRESH)
        assert_unauthorized(await me(client, grandchild["access_token"]), INVALID_TOKEN)


async def test_reuse_leaves_other_sessions_alone(client_for: ClientFactory) -> None:
    async with client_for(refresh_token_reuse_interval_seconds=0, **TEST_NUMBERS) as client:
        stolen = await login(client, TEST_NUMBER, TEST_CODE)
        other_device = await login(client, TEST_NUMBER, TEST_CODE)
        await refresh(client, stolen["refresh_token"])

        assert_unauthorized(await refresh(client, stolen["refresh_token"]), INVALID_REFRESH)

        assert_unauthorized(await me(client, stolen["access_token"]), INVALID_TOKEN)
        assert (await me(client, other_device["access_token"])).status_code == 200
        assert (await refresh(client, other_device["refresh_token"])).status_code == 200


async def test_unknown_missing_and_malformed_refresh_tokens(client: httpx.AsyncClient) -> None:
    await login(client)

    assert_unauthorized(await refresh(client, "A" * 43), INVALID_REFRESH)
    missing = await client.post(REFRESH, json={})
    assert missing.status_code == 400
    assert missing.json() == {"refresh_token": ["This field is required."]}
    not_json = await client.post(
        REFRESH, content=b"nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json() == {"detail": "Request body is not valid JSON.", "line": 1, "column": 1}


async def test_an_access_token_is_not_a_refresh_token(client: httpx.AsyncClient) -> None:
    body = await login(client)

    assert_unauthorized(await refresh(client, body["access_token"][:256]), INVALID_REFRESH)


async def test_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client)
    async with db_engine.begin() as connection:
        await connection.execute(
            update(RefreshToken).values(expires_at=now() - timedelta(seconds=1))
        )

    assert_unauthorized(await refresh(client, body["refresh_token"]), INVALID_REFRESH)


async def test_refresh_for_a_disabled_user_is_forbidden(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client)
    await set_user_active(db_engine, body["user"]["id"], False)

    refused = await refresh(client, body["refresh_token"])

    assert refused.status_code == 403
    assert refused.json() == DISABLED
    assert len(await refresh_rows(db_engine)) == 1


async def test_a_refreshed_access_token_keeps_the_roles_and_the_login_time(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock)) as client:
        body = await login(client)
        await set_roles(db_engine, body["user"]["id"], ["admin"])
        clock.advance(120)
        renewed = (await refresh(client, body["refresh_token"])).json()

    first, second = claims(body["access_token"]), claims(renewed["access_token"])
    assert second["roles"] == ["admin"]
    # Reauthentication reads the time of the login, not of the refresh.
    assert second["auth_time"] == first["auth_time"] == int(second["iat"]) - 120
