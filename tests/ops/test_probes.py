"""/healthz and /readyz: liveness touches nothing, readiness names the failed check."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import respx
from alembic.script import ScriptDirectory

from alembic import command
from app.main import create_app
from app.services.ops.service import HEAD_REVISION
from tests.conftest import ROOT, ClientFactory, SettingsFactory, alembic_config, running
from tests.helpers import SEND, Records, ThrowawayRedis
from tests.ops.conftest import parse_metrics, sample
from tests.twilio_fixtures import START_PATH, twilio_error

CLOSED_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:1/x"


async def test_healthz_touches_no_dependency(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        database_url=CLOSED_DATABASE,
        rate_limit_storage_url="redis://127.0.0.1:1",
        twilio_auth_token=None,
    )
    async with running(create_app(settings)) as client:
        answer = await asyncio.wait_for(client.get("/healthz"), timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("settings", "status"),
    [
        pytest.param({}, 200, id="ready"),
        pytest.param({"database_url": CLOSED_DATABASE}, 503, id="database-down"),
    ],
)
async def test_head_on_the_probes_answers_their_status_without_a_body(
    make_settings: SettingsFactory, settings: dict[str, str], status: int
) -> None:
    """Monitors and load balancers that probe with HEAD get what GET would answer."""
    async with running(create_app(make_settings(**settings))) as client:
        health = await asyncio.wait_for(client.head("/healthz"), timeout=5)
        ready = await asyncio.wait_for(client.head("/readyz"), timeout=15)
        got = await asyncio.wait_for(client.get("/readyz"), timeout=15)
    assert health.status_code == 200
    assert ready.status_code == got.status_code == status
    assert health.content == ready.content == b""
    assert health.headers["x-request-id"]


async def test_readyz_200_when_everything_answers(client: httpx.AsyncClient) -> None:
    answer = await client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "ok",
        "checks": {"database": "ok", "provider": "ok"},
        "providers": {"twilio": "ok"},
    }
    # A second probe (the migrations check is cached) still says ready.
    again = await client.get("/readyz")
    assert again.status_code == 200
    assert again.json() == answer.json()


async def test_readyz_503_naming_the_database_when_it_is_unreachable(
    make_settings: SettingsFactory,
) -> None:
    # The process starts although the database is down: only readiness says so.
    async with running(create_app(make_settings(database_url=CLOSED_DATABASE))) as client:
        assert (await client.get("/healthz")).status_code == 200
        answer = await asyncio.wait_for(client.get("/readyz"), timeout=15)
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "unreachable"
    assert body["checks"]["provider"] == "ok"


async def _readyz_on_sqlite(make_settings: SettingsFactory, path: Path) -> httpx.Response:
    url = f"sqlite+aiosqlite:///{path}"
    async with running(create_app(make_settings(database_url=url))) as client:
        return await client.get("/readyz")


async def test_readyz_503_on_a_database_never_migrated(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    answer = await _readyz_on_sqlite(make_settings, tmp_path / "empty.db")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"
    assert answer.json()["checks"]["database"] != "ok"


async def test_readyz_names_missing_migrations_on_a_database_never_migrated(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    answer = await _readyz_on_sqlite(make_settings, tmp_path / "empty.db")
    assert answer.status_code == 503
    assert "migrations" in answer.json()["checks"]["database"]


async def test_a_database_never_migrated_says_what_to_run_once_in_the_log(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    app = create_app(make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"))
    records = Records()
    logging.getLogger("app").addHandler(records)
    try:
        async with running(app) as client:
            first = await client.get("/readyz")
            second = await client.get("/readyz")
    finally:
        logging.getLogger("app").removeHandler(records)

    assert first.status_code == second.status_code == 503
    assert first.json()["checks"]["database"] == (
        f"migrations not at head (none applied != {HEAD_REVISION}): "
        "run `python -m app migrate` first"
    )
    assert records.at(logging.WARNING, "app.services.ops") == [
        f"The database is not migrated, this version needs {HEAD_REVISION}: "
        "run `python -m app migrate` first"
    ]


async def test_readyz_503_when_migrations_are_behind_head(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    path = tmp_path / "old.db"
    config = alembic_config(f"sqlite+aiosqlite:///{path}")
    await asyncio.to_thread(command.upgrade, config, "0001")
    answer = await _readyz_on_sqlite(make_settings, path)
    assert answer.status_code == 503
    state = answer.json()["checks"]["database"]
    assert state.startswith("migrations not at head"), state

    await asyncio.to_thread(command.upgrade, config, "head")
    assert (await _readyz_on_sqlite(make_settings, path)).status_code == 200


async def test_readyz_503_naming_the_provider_without_twilio_credentials(
    client_for: ClientFactory,
) -> None:
    async with client_for(twilio_account_sid=None, twilio_auth_token=None) as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "provider": "not configured"},
    }


async def test_readyz_stays_200_and_says_degraded_while_redis_cannot_be_reached(
    client_for: ClientFactory, app_logs: Records
) -> None:
    async with client_for(rate_limit_storage_url="redis://127.0.0.1:1") as client:
        answer = await asyncio.wait_for(client.get("/readyz"), timeout=15)
        again = await asyncio.wait_for(client.get("/readyz"), timeout=15)
        metrics = parse_metrics((await client.get("/metrics")).text)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "degraded",
        "checks": {"database": "ok", "provider": "ok", "rate_limit_storage": "degraded"},
        "rate_limit_storage": {"topology": "single"},
        "providers": {"twilio": "ok"},
    }
    assert again.json() == answer.json()
    assert sample(metrics, "phone_auth_rate_limit_storage_degraded") == 1.0
    assert sample(metrics, "phone_auth_rate_limit_fallbacks_total") == 1.0
    [error] = app_logs.at(logging.ERROR, "app.services.limits.windows")
    assert error.startswith("Rate-limit storage unreachable")


async def test_readyz_follows_a_redis_that_stops_and_comes_back(
    client_for: ClientFactory, throwaway_redis: ThrowawayRedis, app_logs: Records
) -> None:
    async with client_for(rate_limit_storage_url=throwaway_redis.url) as client:
        before = await client.get("/readyz")
        throwaway_redis.stop()
        during = await asyncio.wait_for(client.get("/readyz"), timeout=15)
        degraded = parse_metrics((await client.get("/metrics")).text)
        throwaway_redis.start()
        after = await client.get("/readyz")
        recovered = parse_metrics((await client.get("/metrics")).text)

    assert [before.status_code, during.status_code, after.status_code] == [200, 200, 200]
    assert [r.json()["checks"]["rate_limit_storage"] for r in (before, during, after)] == [
        "ok",
        "degraded",
        "ok",
    ]
    assert [r.json()["status"] for r in (before, during, after)] == ["ok", "degraded", "ok"]
    assert sample(degraded, "phone_auth_rate_limit_storage_degraded") == 1.0
    assert sample(recovered, "phone_auth_rate_limit_storage_degraded") == 0.0
    assert sample(recovered, "phone_auth_rate_limit_fallbacks_total") == 1.0
    assert len(app_logs.at(logging.ERROR, "app.services.limits.windows")) == 1


@pytest.mark.redis
async def test_readyz_200_with_a_real_redis(client_for: ClientFactory, redis_url: str) -> None:
    async with client_for(rate_limit_storage_url=redis_url) as client:
        answer = await client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"] == {
        "database": "ok",
        "provider": "ok",
        "rate_limit_storage": "ok",
    }
    assert answer.json()["rate_limit_storage"] == {"topology": "single"}


async def test_readyz_stays_200_while_the_twilio_circuit_is_open(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    down = twilio.post(START_PATH).mock(return_value=twilio_error(20500, 500, "Internal error"))
    async with client_for(rate_limit_enabled=False, twilio_max_retries=0) as client:
        for attempt in range(5):
            phone = f"+99655512345{attempt}"
            failed = await client.post(SEND, json={"phone": phone})
            assert failed.status_code == 502, (attempt, failed.text)
        assert down.call_count == 5

        fast = await client.post(SEND, json={"phone": "+996555123459"})
        assert fast.status_code == 503, fast.text
        assert int(fast.headers["Retry-After"]) >= 1
        assert down.call_count == 5  # failed fast, Twilio not called

        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        metrics = parse_metrics((await client.get("/metrics")).text)
    assert sample(metrics, "phone_auth_twilio_circuit_open") == 1.0


def test_readiness_knows_the_newest_migration() -> None:
    """/readyz compares the database with HEAD_REVISION: it must be Alembic's head."""
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))

    assert script.get_current_head() == HEAD_REVISION


SERVE_AND_LIST_MODULES = """
import asyncio, sys
from app.main import app

async def serve() -> None:
    async with app.router.lifespan_context(app):
        print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))

asyncio.run(serve())
"""


def test_serving_with_in_process_limits_imports_neither_alembic_nor_redis(
    tmp_path: Path,
) -> None:
    """Alembic is for migrating and redis-py for shared limits: a serving process with
    in-process limits stays 16 MB lighter without them."""
    env = {k: v for k, v in os.environ.items() if k not in ("RATE_LIMIT_STORAGE_URL",)}
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", SERVE_AND_LIST_MODULES],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
    )

    loaded = done.stdout.split()
    assert "sqlalchemy" in loaded
    assert "alembic" not in loaded
    assert "redis" not in loaded
