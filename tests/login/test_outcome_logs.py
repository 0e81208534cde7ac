"""The lines an operator reads about a login's outcome, word for word: who logged in
(user, market, new or not, masked number), a disabled user refused, an approved code
whose login could not be stored and why."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.logging import ContextFilter
from app.main import Clocks
from app.services.login.exceptions import MSG_LOGIN_NOT_STORED
from tests.conftest import ClientFactory, FakeClock
from tests.db_failures import FAILURES, failing_statements
from tests.helpers import (
    CODE,
    DISABLED,
    KG_MASKED,
    KG_PHONE,
    NO_LIMITS,
    SEND,
    VERIFY,
    Records,
    claims,
    disable_user,
    login,
    refresh,
    users,
    verifications,
)
from tests.twilio_fixtures import mock_approving

STORE_STATEMENT = "INSERT INTO auth_sessions"


@pytest.fixture
def failing_store() -> Iterator[list[BaseException]]:
    """The login's session insert fails with the exception the test puts in the list."""
    with failing_statements(lambda statement: STORE_STATEMENT in statement) as failures:
        yield failures


@pytest.mark.usefixtures("twilio_approves")
async def test_a_login_is_logged_with_its_user_market_novelty_and_masked_number(
    client_for: ClientFactory, db_engine: AsyncEngine, app_logs: Records
) -> None:
    async with client_for(**NO_LIMITS) as client:
        first = await login(client, KG_PHONE)
        second = await login(client, KG_PHONE)

    user_id = first["user"]["id"]
    assert second["user"]["id"] == user_id
    logins = [m for m in app_logs.at(logging.INFO) if m.startswith("Login:")]
    assert logins == [
        f"Login: user={user_id} market=KG new=True phone={KG_MASKED}",
        f"Login: user={user_id} market=KG new=False phone={KG_MASKED}",
    ]


@pytest.mark.usefixtures("twilio_approves")
async def test_a_disabled_users_refused_login_is_logged_with_the_masked_number(
    client_for: ClientFactory, db_engine: AsyncEngine, app_logs: Records
) -> None:
    async with client_for(**NO_LIMITS) as client:
        await login(client, KG_PHONE)
        await disable_user(db_engine, KG_PHONE)
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        refused = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    assert (refused.status_code, refused.json()) == (403, DISABLED)
    assert app_logs.at(logging.WARNING) == [f"Login refused for disabled user {KG_MASKED}"]


@pytest.mark.parametrize(("failure", "named"), FAILURES)
async def test_an_approved_code_whose_login_is_not_stored_is_logged_with_the_cause(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    app_logs: Records,
    failing_store: list[BaseException],
    failure: BaseException,
    named: str,
) -> None:
    """The driver's error is named when there is one (SQLAlchemy's wrapper says less)."""
    mock_approving(twilio)
    async with client_for(**NO_LIMITS) as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        failing_store.append(failure)
        answer = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})

    assert (answer.status_code, answer.json()) == (503, {"detail": MSG_LOGIN_NOT_STORED})
    assert await users(db_engine) == []
    [row] = await verifications(db_engine)
    assert row.status == "pending"
    assert app_logs.at(logging.ERROR) == [
        f"Code approved for {KG_MASKED} but the login could not be stored ({named}): "
        "asking for a new code"
    ]


@pytest.mark.usefixtures("twilio_approves")
async def test_the_session_keeps_the_time_of_the_code_check_for_later_tokens(
    client_for: ClientFactory,
) -> None:
    """A refreshed access token carries the `auth_time` of the login's code check (the
    app's wall clock), not the moment the row was written."""
    wall = FakeClock(time.time() - 120)
    async with client_for(clocks=Clocks(wall=wall), **NO_LIMITS) as client:
        body = await login(client, KG_PHONE)
        wall.advance(30)
        refreshed = await refresh(client, body["refresh_token"])

    assert refreshed.status_code == 200, refreshed.text
    logged_in_at = int(wall.now) - 30
    assert claims(body["access_token"])["auth_time"] == logged_in_at
    assert claims(refreshed.json()["access_token"])["auth_time"] == logged_in_at


@pytest.mark.usefixtures("twilio_approves")
async def test_every_line_of_a_send_and_a_verify_carries_the_masked_number(
    client_for: ClientFactory, app_logs: Records
) -> None:
    """The number is known once the body is read: from then on each line of the request,
    its access line too, names it masked (as production's handler writes it)."""
    app_logs.addFilter(ContextFilter())
    async with client_for(**NO_LIMITS) as client:
        await login(client, KG_PHONE)

    access = {
        r.getMessage(): getattr(r, "phone", None)
        for r in app_logs.records
        if r.name == "app.access"
    }
    assert access == {f"POST {SEND} 200": KG_MASKED, f"POST {VERIFY} 200": KG_MASKED}
