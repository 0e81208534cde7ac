"""A session belongs to one user, and the first revocation of a session stands."""

from __future__ import annotations

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import Database
from app.services.sessions.repository import SessionRepository
from tests.conftest import JWT_SECRET
from tests.helpers import (
    INVALID_TOKEN,
    LOGOUT,
    assert_unauthorized,
    bearer,
    claims,
    header,
    login,
    me,
    session_rows,
)

# Twilio starts a verification for any number and approves any code.
pytestmark = pytest.mark.usefixtures("twilio_approves")


async def test_a_token_naming_another_users_session_is_refused(client: httpx.AsyncClient) -> None:
    mine, theirs = await login(client), await login(client)
    forged_claims = {**claims(mine["access_token"]), "sid": claims(theirs["access_token"])["sid"]}
    forged = jwt.encode(
        forged_claims, JWT_SECRET, algorithm="HS256", headers=header(mine["access_token"])
    )

    assert (await me(client, mine["access_token"])).status_code == 200
    assert_unauthorized(await me(client, forged), INVALID_TOKEN)


async def test_revoking_a_revoked_session_keeps_its_first_revocation(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    body = await login(client)
    assert (await client.post(LOGOUT, headers=bearer(body["access_token"]))).status_code == 204
    (before,) = await session_rows(db_engine)

    uow = Database(db_engine).unit_of_work()
    try:
        await SessionRepository(uow).revoke(before["id"], "reuse_detected")
        await uow.commit()
    finally:
        await uow.close()

    (after,) = await session_rows(db_engine)
    assert (after["revoked_reason"], after["revoked_at"]) == ("logout", before["revoked_at"])
