"""Refresh rotation at its edges, on the injected clock: the reuse interval's end, a
token's expiry instant, a rotated child's own expiry, and a grandparent replayed
inside the interval."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.main import Clocks
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    INVALID_REFRESH,
    LOGOUT,
    TEST_CODE,
    TEST_NUMBER,
    TEST_NUMBERS,
    Records,
    assert_unauthorized,
    bearer,
    claims,
    event_rows,
    login,
    me,
    refresh,
    refresh_rows,
    session_rows,
    sha256_hex,
)

# Twilio starts a verification for any number and approves any code.
pytestmark = pytest.mark.usefixtures("twilio_approves")

LIFETIME = 2592000  # REFRESH_TOKEN_EXPIRE_SECONDS's default
INTERVAL = 10  # REFRESH_TOKEN_REUSE_INTERVAL_SECONDS's default


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def _assert_session_lives(db_engine: AsyncEngine) -> None:
    assert [row["revoked_at"] for row in await session_rows(db_engine)] == [None]
    assert "reuse_detected" not in [row["event"] for row in await event_rows(db_engine)]


async def test_a_grandparent_replayed_inside_the_interval_is_refused_and_revokes_nothing(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock)) as client:
        body = await login(client)
        child = (await refresh(client, body["refresh_token"])).json()
        clock.advance(1)
        grandchild = (await refresh(client, child["refresh_token"])).json()
        clock.advance(1)

        # Its child was rotated already: that pair is spent, so it is not handed out
        # again; inside the interval it is a late retry, not theft.
        assert_unauthorized(await refresh(client, body["refresh_token"]), INVALID_REFRESH)

        await _assert_session_lives(db_engine)
        assert (await me(client, grandchild["access_token"])).status_code == 200
        renewed = await refresh(client, grandchild["refresh_token"])
        assert renewed.status_code == 200, renewed.text


async def test_a_retry_exactly_at_the_interval_end_gets_the_pair_and_a_moment_later_revokes(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock)) as client:
        body = await login(client)
        first = await refresh(client, body["refresh_token"])
        assert first.status_code == 200, first.text

        clock.advance(INTERVAL)
        retried = await refresh(client, body["refresh_token"])
        assert retried.status_code == 200, retried.text
        assert retried.json() == first.json()
        await _assert_session_lives(db_engine)

        clock.advance(0.001)
        assert_unauthorized(await refresh(client, body["refresh_token"]), INVALID_REFRESH)
        assert_unauthorized(await refresh(client, first.json()["refresh_token"]), INVALID_REFRESH)

    (session,) = await session_rows(db_engine)
    assert session["revoked_reason"] == "reuse_detected"


async def test_a_refresh_token_is_refused_from_its_expiry_instant_on(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock)) as client:
        late = await login(client)
        in_time = await login(client)
        expiry = {row["token_hash"]: row["expires_at"] for row in await refresh_rows(db_engine)}
        (late_expiry, in_time_expiry) = (
            expiry[sha256_hex(late["refresh_token"])],
            expiry[sha256_hex(in_time["refresh_token"])],
        )

        clock.now = in_time_expiry.timestamp() - 0.001
        assert (await refresh(client, in_time["refresh_token"])).status_code == 200

        clock.now = late_expiry.timestamp()
        assert _at(clock.now) == late_expiry
        assert_unauthorized(await refresh(client, late["refresh_token"]), INVALID_REFRESH)


async def test_a_rotated_token_lives_a_whole_lifetime_from_its_rotation(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock)) as client:
        body = await login(client)
        clock.advance(1000)
        renewed = await refresh(client, body["refresh_token"])

    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["refresh_expires_in"] == LIFETIME
    rows = {row["token_hash"]: row for row in await refresh_rows(db_engine)}
    child = rows[sha256_hex(renewed.json()["refresh_token"])]
    parent = rows[sha256_hex(body["refresh_token"])]
    assert child["created_at"] == _at(clock.now)
    assert child["expires_at"] == _at(clock.now) + timedelta(seconds=LIFETIME)
    assert parent["rotated_at"] == _at(clock.now)
    assert child["parent_id"] == parent["id"]


async def test_session_events_are_dated_by_the_injected_clock(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock)) as client:
        body = await login(client)
        clock.advance(1000)
        child = (await refresh(client, body["refresh_token"])).json()
        refreshed_at = _at(clock.now)
        clock.advance(INTERVAL + 1)
        assert_unauthorized(await refresh(client, body["refresh_token"]), INVALID_REFRESH)
        reused_at = _at(clock.now)
        other = await login(client)
        clock.advance(5)
        assert (await client.post(LOGOUT, headers=bearer(other["access_token"]))).status_code == 204

    assert child["refresh_expires_in"] == LIFETIME
    events = [(row["event"], row["created_at"]) for row in await event_rows(db_engine)]
    assert events[1:3] == [("refresh", refreshed_at), ("reuse_detected", reused_at)]
    assert events[-1] == ("logout", _at(clock.now))


async def test_logout_logs_how_many_sessions_it_ended(
    client_for: ClientFactory, app_logs: Records
) -> None:
    async with client_for(**TEST_NUMBERS) as client:
        first = await login(client, TEST_NUMBER, TEST_CODE)
        await login(client, TEST_NUMBER, TEST_CODE)
        third = await login(client, TEST_NUMBER, TEST_CODE)
        await client.post(LOGOUT, headers=bearer(first["access_token"]))
        await client.post(LOGOUT, headers=bearer(third["access_token"]), json={"scope": "global"})

    user = first["user"]["id"]
    assert [m for m in app_logs.at(logging.INFO) if m.startswith("Logout")] == [
        f"Logout: user={user} sessions ended=1 scope=session",
        f"Logout: user={user} sessions ended=2 scope=global",
    ]


async def test_a_refreshed_access_token_carries_the_session_and_the_rotation(
    client_for: ClientFactory, db_engine: AsyncEngine, clock: FakeClock
) -> None:
    async with client_for(clocks=Clocks(wall=clock)) as client:
        body = await login(client)
        clock.advance(100)
        renewed = (await refresh(client, body["refresh_token"])).json()

    before, after = claims(body["access_token"]), claims(renewed["access_token"])
    child_hash = sha256_hex(renewed["refresh_token"])
    assert {name: after[name] for name in ("sub", "sid", "phone", "market")} == {
        name: before[name] for name in ("sub", "sid", "phone", "market")
    }
    assert (after["market"], after["phone"]) == ("KG", body["user"]["phone"])
    assert after["iat"] == int(clock.now)
    assert after["exp"] == int(clock.now) + 900
    assert after["jti"] == child_hash[:32]
