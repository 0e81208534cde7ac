"""The database failing: unreachable at start, and connections killed mid-request.

The mid-request tests run on PostgreSQL only (`TEST_DATABASE_URL`), where the
server can end a backend with `pg_terminate_backend`, from a separate
connection, at a chosen moment of the request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import respx
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.errors import MSG_DATABASE_UNAVAILABLE
from app.main import create_app
from app.services.login.exceptions import MSG_LOGIN_NOT_STORED
from app.services.sessions.tokens import TokenService
from tests.conftest import SettingsFactory, running
from tests.helpers import CODE, KG_PHONE, ME, NO_LIMITS, REFRESH, SEND, VERIFY, Records, bearer
from tests.twilio_fixtures import (
    CHECK_PATH,
    StatefulTwilio,
    checked,
    form,
    mock_check,
    mock_start,
    twilio_error,
)

UNREACHABLE_URLS = {
    "postgresql-closed-port": "postgresql+asyncpg://postgres@127.0.0.1:1/x",
    "sqlite-missing-directory": "sqlite+aiosqlite:////nonexistent-phone-auth-dir/x.db",
}


@pytest.mark.parametrize("url", list(UNREACHABLE_URLS.values()), ids=list(UNREACHABLE_URLS))
async def test_database_unreachable_at_start(
    make_settings: SettingsFactory, twilio: respx.MockRouter, url: str
) -> None:
    mock_start(twilio)
    check = mock_check(twilio)
    settings = make_settings(database_url=url)
    token = TokenService(settings).issue(
        user_id=1, session_id="s" * 32, phone=KG_PHONE, market="KG"
    )
    async with running(create_app(settings)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "unreachable"
        assert (await client.get("/healthz")).status_code == 200

        sent = await client.post(SEND, json={"phone": KG_PHONE})
        assert sent.status_code == 503, sent.text
        assert sent.json() == {"success": False, "detail": MSG_DATABASE_UNAVAILABLE}

        verified = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": CODE})
        assert verified.status_code == 503, verified.text
        assert verified.json() == {"detail": MSG_DATABASE_UNAVAILABLE}
        assert check.call_count == 0

        me = await client.get(ME, headers=bearer(token.token))
        assert me.status_code == 503, me.text
        assert me.json() == {"detail": MSG_DATABASE_UNAVAILABLE}

        patched = await client.patch(ME, json={"name": "x"}, headers=bearer(token.token))
        assert patched.status_code == 503, patched.text

        refreshed = await client.post(REFRESH, json={"refresh_token": "x" * 43})
        assert refreshed.status_code == 503, refreshed.text
        assert refreshed.json() == {"detail": MSG_DATABASE_UNAVAILABLE}

        # Input errors are still answered without the database.
        assert (await client.post(SEND, json={"phone": "555"})).status_code == 400
        # A broken token is still 401, not 503.
        assert (await client.get(ME, headers=bearer("x.y.z"))).status_code == 401


# ---------------------------------------------------------------- PostgreSQL, mid-request
@pytest.fixture
def postgres_dsn(make_settings: SettingsFactory, on_postgres: bool) -> str:
    if not on_postgres:
        pytest.skip("needs TEST_DATABASE_URL (PostgreSQL): connections are killed there")
    return make_settings().database_url.replace("postgresql+asyncpg://", "postgresql://")


def _terminate_from_another_thread(dsn: str, pids: list[int]) -> None:
    """End `pids` from a separate connection, and wait until they are gone."""

    async def terminate() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.fetch(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid = ANY($1::int[]) "
                "AND pid <> pg_backend_pid()",
                pids,
            )
        finally:
            await connection.close()

    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(terminate())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(20)
    assert not errors, errors


@contextmanager
def kill_at_statement(engine: AsyncEngine, dsn: str, starts_with: str) -> Iterator[list[str]]:
    """Kill the backend of the app's connection just before it runs `starts_with` (once)."""
    killed: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if killed or not statement.lstrip().upper().startswith(starts_with.upper()):
            return
        pid = conn.connection.driver_connection.get_server_pid()
        _terminate_from_another_thread(dsn, [pid])
        killed.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield killed
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


def app_engine(app: FastAPI) -> AsyncEngine:
    engine: AsyncEngine = app.state.database.engine
    return engine


async def rows(engine: AsyncEngine, table: str) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(text(f"SELECT * FROM {table} ORDER BY id"))  # noqa: S608
        return [dict(row._mapping) for row in result]


async def _send(client: httpx.AsyncClient, phone: str = KG_PHONE) -> None:
    sent = await client.post(SEND, json={"phone": phone})
    assert sent.status_code == 200, sent.text


async def _verify(
    client: httpx.AsyncClient, phone: str = KG_PHONE, code: str = CODE
) -> httpx.Response:
    return await client.post(VERIFY, json={"phone": phone, "verification_code": code})


@pytest.mark.postgres
async def test_connection_killed_after_twilio_approved(
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    postgres_dsn: str,
    twilio: respx.MockRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The login is one statement on PostgreSQL: killed, it leaves nothing half-written."""
    mock_start(twilio)
    check = mock_check(twilio)
    app = create_app(make_settings(**NO_LIMITS))
    async with running(app) as client:
        logging.getLogger().addHandler(caplog.handler)
        await _send(client)
        store_login = "WITH approved_verification"
        with kill_at_statement(app_engine(app), postgres_dsn, store_login) as killed:
            answer = await _verify(client)
        assert killed, "the login never ran its statement"
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"detail": MSG_LOGIN_NOT_STORED}
        assert check.call_count == 1

        [verification] = await rows(db_engine, "verifications")
        assert verification["status"] == "pending"  # not marked used: the statement failed
        assert verification["failed_attempts"] == 1  # the check's attempt stays taken
        assert await rows(db_engine, "users") == []
        assert await rows(db_engine, "auth_sessions") == []
        assert await rows(db_engine, "refresh_tokens") == []
        assert await rows(db_engine, "auth_events") == []
        assert any(
            "Code approved" in record.getMessage() and "new code" in record.getMessage()
            for record in caplog.records
        ), "the log must say that an approved code could not be stored"

        # Twilio has spent the code and no longer knows the verification.
        twilio.post(CHECK_PATH).mock(return_value=twilio_error(20404, 404))
        assert (await _verify(client)).status_code == 400
        mock_check(twilio)
        await _send(client)
        retried = await _verify(client)
        assert retried.status_code == 200, retried.text
        assert retried.json()["is_new_user"] is True
        users = await rows(db_engine, "users")
        assert [user["phone"] for user in users] == [KG_PHONE]
        me = await client.get(ME, headers=bearer(retried.json()["access_token"]))
        assert me.status_code == 200
    statuses = sorted(row["status"] for row in await rows(db_engine, "verifications"))
    assert statuses == ["approved", "expired"]


@pytest.mark.postgres
async def test_connection_killed_at_the_attempt_reservation(
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    postgres_dsn: str,
    twilio: respx.MockRouter,
) -> None:
    mock_start(twilio)
    check = mock_check(twilio)
    app = create_app(make_settings(**NO_LIMITS))
    async with running(app) as client:
        await _send(client)
        with kill_at_statement(app_engine(app), postgres_dsn, "UPDATE verifications") as killed:
            answer = await _verify(client)
        assert killed
        assert answer.status_code == 503, answer.text
        assert answer.json() == {"detail": MSG_DATABASE_UNAVAILABLE}
        assert check.call_count == 0
        [row] = await rows(db_engine, "verifications")
        assert row["status"] == "pending"
        assert row["failed_attempts"] == 0

        retried = await _verify(client)
        assert retried.status_code == 200, retried.text
        assert len(await rows(db_engine, "users")) == 1


@pytest.mark.postgres
async def test_connection_killed_before_the_code_is_sent(
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    postgres_dsn: str,
    twilio: respx.MockRouter,
) -> None:
    """The row is stored before Twilio is asked: without it, no code goes out."""
    start = mock_start(twilio)
    mock_check(twilio)
    app = create_app(make_settings(**NO_LIMITS))
    async with running(app) as client:
        with kill_at_statement(
            app_engine(app), postgres_dsn, "INSERT INTO verifications"
        ) as killed:
            sent = await client.post(SEND, json={"phone": KG_PHONE})
        assert killed
        assert sent.status_code == 503, sent.text
        assert sent.json() == {"success": False, "detail": MSG_DATABASE_UNAVAILABLE}
        assert start.call_count == 0
        assert await rows(db_engine, "verifications") == []

        await _send(client)
        assert (await _verify(client)).status_code == 200
        assert len(await rows(db_engine, "users")) == 1


@pytest.mark.postgres
async def test_connection_killed_while_storing_the_sid_of_a_sent_code(
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    postgres_dsn: str,
    twilio: respx.MockRouter,
    app_logs: Records,
) -> None:
    """Twilio texted the code and the write of its sid failed: the code still logs in,
    checked by number, since its row was stored before Twilio was asked."""
    stateful = StatefulTwilio(twilio, CODE)
    app = create_app(make_settings(**NO_LIMITS))
    logging.getLogger("app").addHandler(app_logs)
    async with running(app) as client:
        with kill_at_statement(
            app_engine(app), postgres_dsn, "WITH expired_other_pending"
        ) as killed:
            sent = await client.post(SEND, json={"phone": KG_PHONE})
        assert killed
        assert sent.status_code == 200, sent.text
        assert stateful.start_route.call_count == 1
        [row] = await rows(db_engine, "verifications")
        assert (row["status"], row["provider_sid"], row["failed_attempts"]) == ("pending", "", 0)
        [error] = [m for m in app_logs.at(logging.ERROR) if "could not be stored" in m]
        assert "+996*****3456" in error
        assert KG_PHONE not in error

        assert (await _verify(client, code="000000")).status_code == 400
        verified = await _verify(client)
        assert verified.status_code == 200, verified.text
        assert verified.json()["is_new_user"] is True
        assert form(stateful.check_route.calls.last.request) == {"To": KG_PHONE, "Code": CODE}
        [row] = await rows(db_engine, "verifications")
        assert (row["status"], row["failed_attempts"]) == ("approved", 1)

        # The next send replaces it as any pending code.
        await _send(client)
        statuses = [row["status"] for row in await rows(db_engine, "verifications")]
        assert statuses == ["approved", "pending"]


@pytest.mark.postgres
@pytest.mark.parametrize("pre_ping", [False, True], ids=["closed-check", "pre-ping"])
async def test_pool_connections_killed_while_twilio_answers(
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    postgres_dsn: str,
    twilio: respx.MockRouter,
    pre_ping: bool,
) -> None:
    """No connection is held across the Twilio call, and dead pooled ones are replaced,
    with DATABASE_POOL_PRE_PING or without it."""
    mock_start(twilio)
    app = create_app(make_settings(database_pool_pre_ping=pre_ping, **NO_LIMITS))
    pids: set[int] = set()

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        pids.add(dbapi_connection.driver_connection.get_server_pid())

    async with running(app) as client:
        event.listen(app_engine(app).sync_engine, "connect", on_connect)
        await _send(client)
        assert pids

        async def check_and_kill(request: httpx.Request) -> httpx.Response:
            await asyncio.to_thread(_terminate_from_another_thread, postgres_dsn, sorted(pids))
            return checked("approved", KG_PHONE, sid=form(request)["VerificationSid"])

        twilio.post(CHECK_PATH).mock(side_effect=check_and_kill)
        answer = await _verify(client)
        assert answer.status_code == 200, answer.text
        assert len(await rows(db_engine, "users")) == 1
        [row] = await rows(db_engine, "verifications")
        assert row["status"] == "approved"
