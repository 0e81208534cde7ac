"""A disable racing a login (and a refresh): whatever the order, once the disable has
answered the account has no session left that works, and it can no longer log in."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import (
    CODE,
    DISABLED,
    INVALID_REFRESH,
    SEND,
    VERIFY,
    assert_unauthorized,
    login,
    me,
    new_phone,
    refresh,
    session_rows,
    user_row,
)

USERS = "/api/v1/admin/users"
ROUNDS = 8


async def test_a_disable_racing_a_login_and_a_refresh(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    for _ in range(ROUNDS):
        phone = new_phone()
        earlier = await login(client, phone)
        user_id = earlier["user"]["id"]
        assert (await client.post(SEND, json={"phone": phone})).status_code == 200

        disabled, logged_in, renewed = await asyncio.gather(
            client.post(
                f"{USERS}/{user_id}/disable", json={"reason": "race"}, headers=admin["headers"]
            ),
            client.post(VERIFY, json={"phone": phone, "verification_code": CODE}),
            refresh(client, earlier["refresh_token"]),
        )

        assert disabled.status_code == 200, disabled.text
        assert logged_in.status_code in {200, 403}, logged_in.text
        assert renewed.status_code in {200, 401, 403}, renewed.text
        if logged_in.status_code == 403:
            assert logged_in.json() == DISABLED
        # Every token the race handed out is dead.
        for answer in (logged_in, renewed):
            if answer.status_code == 200:
                tokens = answer.json()
                assert_unauthorized(await me(client, tokens["access_token"]))
                assert_unauthorized(await refresh(client, tokens["refresh_token"]), INVALID_REFRESH)
        assert_unauthorized(await me(client, earlier["access_token"]))
        assert (await user_row(db_engine, user_id))["is_active"] is False
        alive = [
            s
            for s in await session_rows(db_engine)
            if s["user_id"] == int(user_id) and s["revoked_at"] is None
        ]
        assert alive == []
        # And the next login is refused.
        assert (await client.post(SEND, json={"phone": phone})).status_code == 200
        again = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})
        assert (again.status_code, again.json()) == (403, DISABLED)
