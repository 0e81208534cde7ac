"""Concurrent refreshes of one token never fork the session (SQLite, and PostgreSQL in CI)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import (
    INVALID_REFRESH,
    assert_unauthorized,
    login,
    me,
    refresh,
    refresh_rows,
    session_rows,
    sha256_hex,
)

# Twilio starts a verification for any number and approves any code.
pytestmark = pytest.mark.usefixtures("twilio_approves")


async def test_concurrent_refreshes_of_one_token_get_one_pair(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client)

    answers = await asyncio.gather(*(refresh(client, body["refresh_token"]) for _ in range(10)))

    ok = [answer for answer in answers if answer.status_code == 200]
    assert ok, [answer.text for answer in answers]
    for answer in answers:
        if answer.status_code != 200:
            assert_unauthorized(answer, INVALID_REFRESH)
    pairs = {(a.json()["access_token"], a.json()["refresh_token"]) for a in ok}
    assert len(pairs) == 1
    assert all(answer.json() == ok[0].json() for answer in ok)

    rows = await refresh_rows(db_engine)
    (parent,) = [row for row in rows if row["token_hash"] == sha256_hex(body["refresh_token"])]
    children = [row for row in rows if row["parent_id"] == parent["id"]]
    assert len(children) == 1
    assert children[0]["token_hash"] == sha256_hex(ok[0].json()["refresh_token"])
    assert len(rows) == 2
    assert [row["revoked_at"] for row in await session_rows(db_engine)] == [None]

    # The one child is live and carries the session on.
    pair = ok[0].json()
    assert (await me(client, pair["access_token"])).status_code == 200
    assert (await refresh(client, pair["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_of_two_sessions_stay_apart(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    first = await login(client)
    second = await login(client)

    answers = await asyncio.gather(
        *(refresh(client, body["refresh_token"]) for body in (first, second) for _ in range(5))
    )

    assert {answer.status_code for answer in answers} <= {200, 401}
    first_pairs = {a.json()["refresh_token"] for a in answers[:5] if a.status_code == 200}
    second_pairs = {a.json()["refresh_token"] for a in answers[5:] if a.status_code == 200}
    assert len(first_pairs) == 1
    assert len(second_pairs) == 1
    assert first_pairs != second_pairs
    assert len(await refresh_rows(db_engine)) == 4
