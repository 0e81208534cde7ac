"""`python -m app sync-attempts` as the CronJob runs it (`app.cli.attempts.run`, in a
thread of its own as the command's own event loop needs), Twilio faked with respx."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli import attempts as attempts_cli
from tests.conftest import SettingsFactory
from tests.delivery.conftest import NOW, Clock, add_verification, stored, watermark
from tests.delivery.support import (
    ATTEMPTS_PATH,
    FakeAttempts,
    attempt,
    attempt_sid,
    verification_sid,
)

PHONES = ("+996555123456", "+996700445566", "+12025550143")


def cli_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "app.cli"]


async def sync_command(settings: SettingsFactory, sync_clock: Clock, **overrides: object) -> int:
    run = partial(attempts_cli.run, settings(**overrides), clock=sync_clock)
    return await asyncio.to_thread(run)


@pytest.fixture
def three_attempts(fake_attempts: FakeAttempts) -> FakeAttempts:
    fake_attempts.add(
        *(
            attempt(attempt_sid(n), verification_sid(n), NOW - timedelta(minutes=n), to=phone)
            for n, phone in enumerate(PHONES, start=1)
        )
    )
    return fake_attempts


async def test_a_sync_logs_one_summary_line_and_a_second_changes_nothing(
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    three_attempts: FakeAttempts,
    sync_clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await add_verification(db_engine, verification_sid(1), NOW - timedelta(minutes=2))
    caplog.set_level(logging.INFO, logger="app")

    first = await sync_command(make_settings, sync_clock, attempts_sync_page_size=2)
    rows = await stored(db_engine)
    sync_clock.advance(300)
    second = await sync_command(make_settings, sync_clock, attempts_sync_page_size=2)

    assert (first, second) == (0, 0)
    assert cli_lines(caplog) == [
        (
            logging.INFO,
            "Synced twilio delivery attempts created after 2026-11-29T12:00:00Z: 2 pages, "
            "3 fetched, 3 new, 0 updated, 0 unchanged, 2 unmatched; "
            "watermark 2026-11-30T11:59:00Z",
        ),
        (
            logging.INFO,
            "Synced twilio delivery attempts created after 2026-11-30T11:29:00Z: 2 pages, "
            "3 fetched, 0 new, 0 updated, 3 unchanged, 2 unmatched; "
            "watermark 2026-11-30T11:59:00Z",
        ),
    ]
    assert await stored(db_engine) == rows
    assert await watermark(db_engine) == NOW - timedelta(minutes=1)
    for phone in PHONES:
        assert phone[1:] not in caplog.text


async def test_bad_credentials_are_one_error_line_and_exit_1(
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    twilio: respx.MockRouter,
    sync_clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    twilio.get(ATTEMPTS_PATH).mock(
        httpx.Response(401, json={"code": 20003, "message": "Authenticate", "status": 401})
    )
    caplog.set_level(logging.INFO, logger="app")

    status = await sync_command(make_settings, sync_clock)

    assert status == 1
    [(level, line)] = cli_lines(caplog)
    assert level == logging.ERROR
    assert line.startswith(
        "Delivery attempts sync failed: Twilio list_attempts: HTTP 401, Twilio code 20003; "
        "watermark not moved"
    )
    assert all(record.exc_info is None for record in caplog.records)
    assert await stored(db_engine) == {}


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"verify_provider": "console"}, attempts_cli.MSG_CONSOLE),
        ({"twilio_auth_token": None}, attempts_cli.MSG_NO_TWILIO),
    ],
    ids=["console", "twilio-not-configured"],
)
async def test_without_an_attempts_list_nothing_is_called_and_it_exits_0(
    make_settings: SettingsFactory,
    db_engine: AsyncEngine,
    fake_attempts: FakeAttempts,
    sync_clock: Clock,
    caplog: pytest.LogCaptureFixture,
    overrides: dict[str, object],
    said: str,
) -> None:
    caplog.set_level(logging.INFO, logger="app")

    status = await sync_command(make_settings, sync_clock, **overrides)

    assert status == 0
    assert cli_lines(caplog) == [(logging.INFO, said)]
    assert fake_attempts.requests == []
    assert await stored(db_engine) == {}
