"""The audit trail: login, refresh, reuse detected and logout, with who, from where and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import LOGOUT, bearer, claims, event_rows, login, now, refresh

# Twilio starts a verification for any number and approves any code.
pytestmark = pytest.mark.usefixtures("twilio_approves")

PHONE = "+996555123456"
MASKED = "+996*****3456"
CLIENT = "203.0.113.7"
FORWARDED = {"X-Forwarded-For": CLIENT}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def test_every_session_event_is_audited(
    client_for: ClientFactory, db_engine: AsyncEngine
) -> None:
    started = now() - timedelta(seconds=1)
    async with client_for(
        refresh_token_reuse_interval_seconds=0, trusted_proxies=["127.0.0.1"]
    ) as client:
        client.headers.update(FORWARDED)
        body = await login(client, PHONE)
        child = (await refresh(client, body["refresh_token"])).json()
        assert (await refresh(client, body["refresh_token"])).status_code == 401  # reuse
        second = await login(client, "+996555654321")
        assert (
            await client.post(LOGOUT, headers=bearer(second["access_token"]))
        ).status_code == 204
    del child

    events = await event_rows(db_engine)
    first_sid = claims(body["access_token"])["sid"]
    second_sid = claims(second["access_token"])["sid"]
    assert [(e["event"], e["session_id"]) for e in events] == [
        ("login", first_sid),
        ("refresh", first_sid),
        ("reuse_detected", first_sid),
        ("login", second_sid),
        ("logout", second_sid),
    ]
    first_user = int(body["user"]["id"])
    second_user = int(second["user"]["id"])
    assert [e["user_id"] for e in events] == [first_user] * 3 + [second_user] * 2
    assert [e["phone_masked"] for e in events] == [MASKED] * 3 + ["+996*****4321"] * 2
    assert {e["client_ip"] for e in events} == {CLIENT}
    for event in events:
        assert started <= _aware(event["created_at"]) <= now() + timedelta(seconds=1)
        for value in event.values():
            assert PHONE not in str(value)
            assert "555123456" not in str(value)


async def test_the_socket_peer_is_the_client_without_a_trusted_proxy(
    client_for: ClientFactory, db_engine: AsyncEngine
) -> None:
    async with client_for() as client:
        client.headers.update(FORWARDED)  # not trusted: ignored
        await login(client)

    (event,) = await event_rows(db_engine)
    assert event["client_ip"] == "127.0.0.1"


async def test_failed_refreshes_and_logouts_write_no_event(
    client_for: ClientFactory, db_engine: AsyncEngine
) -> None:
    async with client_for() as client:
        body = await login(client)
        assert (await refresh(client, "x" * 43)).status_code == 401
        assert (await client.post(LOGOUT)).status_code == 401
        assert (await client.post(LOGOUT, headers=bearer("bad"))).status_code == 401
        # A retry within the interval hands back the same pair: one refresh, one event.
        await refresh(client, body["refresh_token"])
        await refresh(client, body["refresh_token"])

    assert [e["event"] for e in await event_rows(db_engine)] == ["login", "refresh"]


async def test_global_logout_is_audited(client_for: ClientFactory, db_engine: AsyncEngine) -> None:
    async with client_for() as client:
        body = await login(client, PHONE)
        await client.post(LOGOUT, json={"scope": "global"}, headers=bearer(body["access_token"]))

    logout = [e for e in await event_rows(db_engine) if e["event"] == "logout"]
    assert len(logout) == 1
    assert logout[0]["user_id"] == int(body["user"]["id"])
    assert logout[0]["phone_masked"] == MASKED
    assert logout[0]["client_ip"] == "127.0.0.1"
