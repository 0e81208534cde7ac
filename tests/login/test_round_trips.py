"""On PostgreSQL a send writes in two statements (its row before the code goes out, the
provider's sid after) and a check-and-login in two, each committed on its own: a whole
login costs the database four round trips, not a dozen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import respx
from sqlalchemy import event, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.auth_event import AuthEvent
from app.models.login_session import LoginSession, RefreshToken
from tests.conftest import ClientFactory
from tests.helpers import CODE, KG_PHONE, SEND, VERIFY
from tests.twilio_fixtures import mock_check, mock_start


@pytest.fixture(autouse=True)
def _postgres_only(on_postgres: bool) -> None:
    if not on_postgres:
        pytest.skip(
            "TEST_DATABASE_URL is not set: the one-statement writes are PostgreSQL's "
            "(SQLite runs the same steps in transactions)"
        )


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL every engine of this process sends while the block runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()[:3]))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(Engine, "before_cursor_execute", record)


async def rows(engine: AsyncEngine, model: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(model.__table__))).all())


async def test_send_then_first_login_take_two_and_two_statements(
    client_for: ClientFactory, twilio: respx.MockRouter, db_engine: AsyncEngine
) -> None:
    mock_start(twilio)
    mock_check(twilio, "approved")
    async with client_for() as client:
        with statements() as sent:
            assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        # The row, before Twilio is asked; then its sid, the older codes expired.
        assert sent == ["INSERT INTO verifications", "WITH expired_other_pending AS"]

        with statements() as sent:
            answer = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})
        assert answer.status_code == 200, answer.text
        assert answer.json()["is_new_user"] is True
        # Take an attempt; then mark the code used, make the user, open the session.
        assert sent == ["UPDATE verifications SET", "WITH approved_verification AS"]

    [session] = await rows(db_engine, LoginSession)
    [token] = await rows(db_engine, RefreshToken)
    [login] = await rows(db_engine, AuthEvent)
    assert token.session_id == session.id
    assert (login.event, login.session_id, login.user_id) == ("login", session.id, session.user_id)
    assert login.phone_masked == "+996*****3456"


async def test_a_returning_user_logs_in_with_the_same_two(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    mock_check(twilio, "approved")
    async with client_for(rate_limit_enabled=False) as client:
        for _ in range(2):
            await client.post(SEND, json={"phone": KG_PHONE})
            with statements() as sent:
                answer = await client.post(
                    VERIFY, json={"phone": KG_PHONE, "verification_code": CODE}
                )
        assert answer.json()["is_new_user"] is False
        assert len(sent) == 2
