"""DELETE /api/v1/users/me: the account and its personal data go, every token dies, the
number logs in as a new user, and concurrent deletes or refreshes never answer 500."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import Clocks
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    INVALID_REFRESH,
    INVALID_TOKEN,
    KG_MASKED,
    KG_PHONE,
    ME,
    NO_LIMITS,
    NOT_AUTHENTICATED,
    SEND,
    US_PHONE,
    Records,
    assert_unauthorized,
    bearer,
    claims,
    event_rows,
    login,
    me,
    new_phone,
    refresh,
    refresh_rows,
    session_rows,
    users,
    verifications,
)
from tests.interleavings import schedule
from tests.ops.conftest import parse_metrics, sample

pytestmark = pytest.mark.usefixtures("twilio_approves")

RECENT_LOGIN = {"detail": "Log in again to confirm this change."}
CHANGE_SEND = "/api/v1/users/me/phone/send-verification"


def step_up_challenge(max_age: int) -> str:
    """RFC 9470's challenge for a login older than `max_age` seconds."""
    return (
        'Bearer error="insufficient_user_authentication", '
        f'error_description="A recent login is required", max_age={max_age}'
    )


async def delete_me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    """DELETE /users/me with a token."""
    return await client.delete(ME, headers=bearer(access_token))


async def test_delete_removes_the_account_and_its_personal_data(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    first = await login(client, KG_PHONE)
    second = await login(client, KG_PHONE)
    other = await login(client)
    # A code sent since, still pending: a verification row of the number; and a code
    # for a number change, bound to the user.
    assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
    changing = await client.post(
        CHANGE_SEND, json={"phone": US_PHONE}, headers=bearer(first["access_token"])
    )
    assert changing.status_code == 200
    assert US_PHONE in {row.phone for row in await verifications(db_engine)}

    answer = await delete_me(client, first["access_token"])

    assert answer.status_code == 204
    assert answer.content == b""
    assert [row.phone for row in await users(db_engine)] == [other["user"]["phone"]]
    user_id = int(first["user"]["id"])
    assert {row["user_id"] for row in await session_rows(db_engine)} == {int(other["user"]["id"])}
    assert len(await refresh_rows(db_engine)) == 1  # the other user's
    assert {row.phone for row in await verifications(db_engine)} == {other["user"]["phone"]}
    events = await event_rows(db_engine)
    deleted = [row for row in events if row["event"] == "user_deleted"]
    assert len(deleted) == 1
    assert deleted[0]["user_id"] == user_id
    assert deleted[0]["phone_masked"] == KG_MASKED
    assert deleted[0]["client_ip"] is None
    assert deleted[0]["session_id"] is None
    # The account's earlier events keep only its id and masked number.
    own = [row for row in events if row["user_id"] == user_id]
    assert {row["event"] for row in own} == {"login", "phone_change_requested", "user_deleted"}
    assert all(row["client_ip"] is None for row in own)
    assert all(row["phone_masked"] == KG_MASKED for row in own)
    # Another user's events keep their client IP.
    assert all(
        row["client_ip"] is not None for row in events if row["user_id"] == int(other["user"]["id"])
    )
    # The other user is untouched.
    assert (await me(client, other["access_token"])).status_code == 200
    assert second["user"]["id"] == first["user"]["id"]


async def test_every_token_of_a_deleted_user_answers_401(client: httpx.AsyncClient) -> None:
    first = await login(client, KG_PHONE)
    second = await login(client, KG_PHONE)
    renewed = (await refresh(client, second["refresh_token"])).json()

    assert (await delete_me(client, second["access_token"])).status_code == 204

    for body in (first, second, renewed):
        assert_unauthorized(await me(client, body["access_token"]))
        assert_unauthorized(await refresh(client, body["refresh_token"]), INVALID_REFRESH)
    assert_unauthorized(await delete_me(client, first["access_token"]))


async def test_the_number_logs_in_again_as_a_new_user(client: httpx.AsyncClient) -> None:
    before = await login(client, KG_PHONE)
    assert (await delete_me(client, before["access_token"])).status_code == 204

    after = await login(client, KG_PHONE)

    assert after["is_new_user"] is True
    assert after["user"]["id"] != before["user"]["id"]
    assert after["user"]["phone"] == KG_PHONE
    assert (await me(client, after["access_token"])).json()["id"] == after["user"]["id"]


async def test_delete_without_a_token_is_refused(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.delete(ME), NOT_AUTHENTICATED)
    assert_unauthorized(await client.delete(ME, headers=bearer("not-a-token")), INVALID_TOKEN)


async def test_an_old_login_must_log_in_again_before_deleting(
    client_for: ClientFactory, clock: FakeClock, db_engine: AsyncEngine
) -> None:
    async with client_for(clocks=Clocks(wall=clock), **NO_LIMITS) as client:
        body = await login(client, KG_PHONE)
        clock.advance(301)
        # A refresh keeps the time of the login.
        renewed = (await refresh(client, body["refresh_token"])).json()

        for token in (body["access_token"], renewed["access_token"]):
            answer = await delete_me(client, token)
            assert answer.status_code == 401
            assert answer.json() == RECENT_LOGIN
            assert answer.headers["WWW-Authenticate"] == step_up_challenge(300)
        assert len(await users(db_engine)) == 1
        assert (await me(client, renewed["access_token"])).status_code == 200

        # The frontend logs in again and retries.
        again = await login(client, KG_PHONE)
        assert (await delete_me(client, again["access_token"])).status_code == 204
    assert await users(db_engine) == []


async def test_a_login_within_the_window_may_delete(
    client_for: ClientFactory, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock), **NO_LIMITS) as client:
        body = await login(client)
        clock.advance(299)
        assert (await delete_me(client, body["access_token"])).status_code == 204


async def test_a_login_exactly_the_window_old_may_still_delete(
    client_for: ClientFactory, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock), **NO_LIMITS) as client:
        body = await login(client)
        clock.now = claims(body["access_token"])["auth_time"] + 300.0
        assert (await delete_me(client, body["access_token"])).status_code == 204


async def test_the_window_follows_the_setting(client_for: ClientFactory, clock: FakeClock) -> None:
    async with client_for(clocks=Clocks(wall=clock), recent_login_seconds=60) as client:
        body = await login(client)
        clock.advance(61)
        answer = await delete_me(client, body["access_token"])
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == step_up_challenge(60)


async def test_concurrent_deletes_answer_204_once_and_401_otherwise(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client, KG_PHONE)

    answers = await asyncio.gather(*(delete_me(client, body["access_token"]) for _ in range(4)))

    assert sorted(a.status_code for a in answers) == [204, 401, 401, 401]
    for answer in answers:
        if answer.status_code == 401:
            assert_unauthorized(answer)
    assert await users(db_engine) == []
    events = await event_rows(db_engine)
    assert [row["event"] for row in events].count("user_deleted") == 1


async def test_two_deletes_in_every_interleaving(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    """One delete stopped before each of its statements in turn while the other runs (to
    its end, or until it waits on a lock): one 204, one 401, one `user_deleted` event."""
    for stop in itertools.count():
        body = await login(client, new_phone())
        user_id = int(body["user"]["id"])

        with schedule(("first", stop), ("second", None), ("first", None)) as stage:
            answers = await stage.run(
                first=delete_me(client, body["access_token"]),
                second=delete_me(client, body["access_token"]),
            )

        where = f"the second ran before statement {stop} of the first"
        statuses = sorted(answer.status_code for answer in answers.values())
        assert statuses == [204, 401], (where, [a.text for a in answers.values()])
        for answer in answers.values():
            if answer.status_code == 401:
                assert_unauthorized(answer)
        assert await users(db_engine) == [], where
        deleted = [e for e in await event_rows(db_engine) if e["event"] == "user_deleted"]
        assert [e["user_id"] for e in deleted].count(user_id) == 1, where
        if not stage.stopped:
            break


@pytest.mark.parametrize("refreshes", [1, 5])
async def test_a_delete_racing_a_refresh_leaves_no_live_token(
    client: httpx.AsyncClient, db_engine: AsyncEngine, refreshes: int
) -> None:
    body = await login(client, KG_PHONE)

    answers = await asyncio.gather(
        delete_me(client, body["access_token"]),
        *(refresh(client, body["refresh_token"]) for _ in range(refreshes)),
    )

    deleted, *refreshed = answers
    assert deleted.status_code == 204, deleted.text
    for answer in refreshed:
        assert answer.status_code in (200, 401), answer.text
        if answer.status_code == 401:
            assert_unauthorized(answer, INVALID_REFRESH)
            continue
        pair: dict[str, Any] = answer.json()
        assert_unauthorized(await me(client, pair["access_token"]))
        assert_unauthorized(await refresh(client, pair["refresh_token"]), INVALID_REFRESH)
    assert await users(db_engine) == []
    assert await session_rows(db_engine) == []
    assert await refresh_rows(db_engine) == []


async def test_a_delete_racing_a_refresh_in_every_interleaving(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    """One request stopped before each of its statements in turn while the other runs
    (to its end, or until it waits on a lock): never a 500, a deadlock or a live token,
    and the account's audit trail keeps no client IP."""
    seen: set[int] = set()
    for first, second in (("delete", "refresh"), ("refresh", "delete")):
        for stop in itertools.count():
            body = await login(client, new_phone())
            user_id = int(body["user"]["id"])
            with schedule((first, stop), (second, None), (first, None)) as stage:
                answers = await stage.run(
                    delete=delete_me(client, body["access_token"]),
                    refresh=refresh(client, body["refresh_token"]),
                )
            where = f"{second} ran before statement {stop} of the {first}"
            assert answers["delete"].status_code == 204, (where, answers["delete"].text)
            renewed = answers["refresh"]
            seen.add(renewed.status_code)
            assert renewed.status_code in (200, 401), (where, renewed.text)
            if renewed.status_code == 401:
                assert renewed.json() == INVALID_REFRESH, where
            else:
                pair = renewed.json()
                assert_unauthorized(await me(client, pair["access_token"]))
                assert_unauthorized(await refresh(client, pair["refresh_token"]), INVALID_REFRESH)
            assert await users(db_engine) == [], where
            assert await session_rows(db_engine) == [], where
            assert await refresh_rows(db_engine) == [], where
            own = [e for e in await event_rows(db_engine) if e["user_id"] == user_id]
            assert [e["client_ip"] for e in own] == [None] * len(own), where
            if not stage.stopped:
                break
    # Both orders happened: the refresh first (its pair dies with the account), and the
    # delete first.
    assert seen == {200, 401}


async def test_deletions_are_counted_and_logged_masked(
    client: httpx.AsyncClient, app_logs: Records
) -> None:
    body = await login(client, KG_PHONE)
    assert (await delete_me(client, body["access_token"])).status_code == 204

    metrics = parse_metrics((await client.get("/metrics")).text)

    assert sample(metrics, "phone_auth_account_deletions_total", by="self") == 1.0
    messages = [r.getMessage() for r in app_logs.records]
    assert any("Account deleted" in m and KG_MASKED in m for m in messages)
    assert not any(KG_PHONE in m for m in messages)
    assert not any(body["access_token"] in m or body["refresh_token"] in m for m in messages)


async def test_a_browser_frontend_may_delete(client_for: ClientFactory) -> None:
    shop = "https://shop.example"
    async with client_for(cors_allow_origins=[shop]) as client:
        preflight = await client.options(
            ME,
            headers={
                "Origin": shop,
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "authorization",
            },
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == shop
    assert "DELETE" in preflight.headers["access-control-allow-methods"]
