"""Logout: this session or every session of the user; revoked sessions' tokens stop working."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import (
    INVALID_REFRESH,
    INVALID_TOKEN,
    LOGOUT,
    ME,
    TEST_CODE,
    TEST_NUMBER,
    TEST_NUMBERS,
    assert_unauthorized,
    bearer,
    claims,
    login,
    me,
    refresh,
    session_rows,
)

# Twilio starts a verification for any number and approves any code.
pytestmark = pytest.mark.usefixtures("twilio_approves")


async def test_logout_ends_this_session_only(
    client_for: ClientFactory, db_engine: AsyncEngine
) -> None:
    async with client_for(**TEST_NUMBERS) as client:
        phone = await login(client, TEST_NUMBER, TEST_CODE)
        laptop = await login(client, TEST_NUMBER, TEST_CODE)

        out = await client.post(LOGOUT, headers=bearer(phone["access_token"]))

        assert out.status_code == 204
        assert out.content == b""
        assert_unauthorized(await me(client, phone["access_token"]), INVALID_TOKEN)
        assert_unauthorized(await refresh(client, phone["refresh_token"]), INVALID_REFRESH)
        # The same user's other login is untouched.
        assert laptop["user"]["id"] == phone["user"]["id"]
        assert (await me(client, laptop["access_token"])).status_code == 200
        assert (await refresh(client, laptop["refresh_token"])).status_code == 200

    revoked = {row["id"]: row["revoked_reason"] for row in await session_rows(db_engine)}
    assert revoked == {
        claims(phone["access_token"])["sid"]: "logout",
        claims(laptop["access_token"])["sid"]: None,
    }


async def test_logout_with_local_scope_is_the_default(client_for: ClientFactory) -> None:
    async with client_for(**TEST_NUMBERS) as client:
        one = await login(client, TEST_NUMBER, TEST_CODE)
        two = await login(client, TEST_NUMBER, TEST_CODE)

        out = await client.post(
            LOGOUT, json={"scope": "local"}, headers=bearer(one["access_token"])
        )

        assert out.status_code == 204
        assert_unauthorized(await me(client, one["access_token"]), INVALID_TOKEN)
        assert (await me(client, two["access_token"])).status_code == 200


async def test_logout_revokes_the_whole_family(client: httpx.AsyncClient) -> None:
    body = await login(client)
    child = (await refresh(client, body["refresh_token"])).json()

    out = await client.post(LOGOUT, headers=bearer(child["access_token"]))

    assert out.status_code == 204
    assert_unauthorized(await me(client, body["access_token"]), INVALID_TOKEN)
    assert_unauthorized(await me(client, child["access_token"]), INVALID_TOKEN)
    assert_unauthorized(await refresh(client, child["refresh_token"]), INVALID_REFRESH)
    assert_unauthorized(await refresh(client, body["refresh_token"]), INVALID_REFRESH)


async def test_global_logout_ends_every_session_of_the_user(
    client_for: ClientFactory, db_engine: AsyncEngine
) -> None:
    async with client_for(**TEST_NUMBERS) as client:
        sessions = [await login(client, TEST_NUMBER, TEST_CODE) for _ in range(3)]
        someone_else = await login(client)

        out = await client.post(
            LOGOUT, json={"scope": "global"}, headers=bearer(sessions[0]["access_token"])
        )

        assert out.status_code == 204
        assert out.content == b""
        for body in sessions:
            assert_unauthorized(await me(client, body["access_token"]), INVALID_TOKEN)
            assert_unauthorized(await refresh(client, body["refresh_token"]), INVALID_REFRESH)
        assert (await me(client, someone_else["access_token"])).status_code == 200
        assert (await refresh(client, someone_else["refresh_token"])).status_code == 200

    reasons = sorted(str(row["revoked_reason"]) for row in await session_rows(db_engine))
    assert reasons == ["None", "logout_global", "logout_global", "logout_global"]


async def test_logout_without_a_token_is_refused(client: httpx.AsyncClient) -> None:
    refused = await client.post(LOGOUT)

    assert_unauthorized(refused, {"detail": "Authentication credentials were not provided."})


async def test_logout_with_a_bad_token_is_refused(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.post(LOGOUT, headers=bearer("not.a.jwt")), INVALID_TOKEN)


async def test_logout_twice_is_refused_the_second_time(client: httpx.AsyncClient) -> None:
    body = await login(client)

    assert (await client.post(LOGOUT, headers=bearer(body["access_token"]))).status_code == 204

    assert_unauthorized(
        await client.post(LOGOUT, headers=bearer(body["access_token"])), INVALID_TOKEN
    )


async def test_logout_with_an_unknown_scope_is_a_field_error(client: httpx.AsyncClient) -> None:
    body = await login(client)

    out = await client.post(
        LOGOUT, json={"scope": "everywhere"}, headers=bearer(body["access_token"])
    )

    assert out.status_code == 400
    assert list(out.json()) == ["scope"]
    assert (await me(client, body["access_token"])).status_code == 200


async def test_a_revoked_session_cannot_update_the_profile(client: httpx.AsyncClient) -> None:
    body = await login(client)
    await client.post(LOGOUT, headers=bearer(body["access_token"]))

    refused = await client.patch(ME, json={"name": "x"}, headers=bearer(body["access_token"]))

    assert_unauthorized(refused, INVALID_TOKEN)
