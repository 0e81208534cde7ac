"""A disable racing a login (and a refresh): whatever the order, once the disable has
answered the account has no session left that works, and it can no longer log in."""

from __future__ import annotations

import asyncio
import itertools
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
from tests.interleavings import schedule

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


async def test_a_disable_racing_a_login_in_every_interleaving(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    """One request stopped before each of its statements in turn while the other runs (to
    its end, or until it waits on a lock): the login is refused, or its session is
    revoked with the others; never a working session after the disable."""
    seen: set[int] = set()
    for first, second in (("disable", "login"), ("login", "disable")):
        for stop in itertools.count():
            phone = new_phone()
            earlier = await login(client, phone)
            user_id = earlier["user"]["id"]
            assert (await client.post(SEND, json={"phone": phone})).status_code == 200

            with schedule((first, stop), (second, None), (first, None)) as stage:
                answers = await stage.run(
                    disable=client.post(
                        f"{USERS}/{user_id}/disable",
                        json={"reason": "race"},
                        headers=admin["headers"],
                    ),
                    login=client.post(VERIFY, json={"phone": phone, "verification_code": CODE}),
                )

            where = f"the {second} ran before statement {stop} of the {first}"
            assert answers["disable"].status_code == 200, (where, answers["disable"].text)
            logged_in = answers["login"]
            seen.add(logged_in.status_code)
            assert logged_in.status_code in {200, 403}, (where, logged_in.text)
            if logged_in.status_code == 403:
                assert logged_in.json() == DISABLED, where
            else:
                tokens = logged_in.json()
                assert_unauthorized(await me(client, tokens["access_token"]))
                assert_unauthorized(await refresh(client, tokens["refresh_token"]), INVALID_REFRESH)
            await assert_no_live_session(db_engine, user_id, where)
            if not stage.stopped:
                break
    # Both orders happened: the login first (its session revoked), and the disable first.
    assert seen == {200, 403}


async def test_a_disable_racing_a_refresh_in_every_interleaving(
    client: httpx.AsyncClient, db_engine: AsyncEngine, admin: dict[str, Any]
) -> None:
    """As above, with a refresh of one of the account's sessions."""
    seen: set[int] = set()
    for first, second in (("disable", "refresh"), ("refresh", "disable")):
        for stop in itertools.count():
            earlier = await login(client, new_phone())
            user_id = earlier["user"]["id"]

            with schedule((first, stop), (second, None), (first, None)) as stage:
                answers = await stage.run(
                    disable=client.post(
                        f"{USERS}/{user_id}/disable",
                        json={"reason": "race"},
                        headers=admin["headers"],
                    ),
                    refresh=refresh(client, earlier["refresh_token"]),
                )

            where = f"the {second} ran before statement {stop} of the {first}"
            assert answers["disable"].status_code == 200, (where, answers["disable"].text)
            renewed = answers["refresh"]
            seen.add(renewed.status_code)
            assert renewed.status_code in {200, 401, 403}, (where, renewed.text)
            if renewed.status_code == 200:
                tokens = renewed.json()
                assert_unauthorized(await me(client, tokens["access_token"]))
                assert_unauthorized(await refresh(client, tokens["refresh_token"]), INVALID_REFRESH)
            assert_unauthorized(await me(client, earlier["access_token"]))
            await assert_no_live_session(db_engine, user_id, where)
            if not stage.stopped:
                break
    # Both orders happened: the refresh first (its pair revoked with the session), and
    # the disable first (401 or 403, as far as the refresh had read).
    assert 200 in seen
    assert seen & {401, 403}


async def assert_no_live_session(db_engine: AsyncEngine, user_id: str, where: str) -> None:
    """The user is disabled and none of its sessions is left unrevoked."""
    assert (await user_row(db_engine, user_id))["is_active"] is False, where
    alive = [
        s
        for s in await session_rows(db_engine)
        if s["user_id"] == int(user_id) and s["revoked_at"] is None
    ]
    assert alive == [], where
