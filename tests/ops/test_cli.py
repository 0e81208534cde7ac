"""The command line as an operator meets it: `python -m app serve | migrate |
purge-verifications` run as processes, from a directory of their own, with settings
from the environment."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from app.services.ops.service import HEAD_REVISION
from tests.conftest import ROOT
from tests.helpers import free_port
from tests.ops.conftest import EXIT_TIMEOUT, PYTHON, STARTUP_TIMEOUT

WEAK_SECRET = "hunter2-is-my-password"
AUTH_TOKEN_VALUE = "0123456789abcdef0123456789abcdef"
DB_PASSWORD = "pw-Zq81xLm0"
MIGRATE_FIRST = "run `python -m app migrate` first"


def command_env(**settings: str) -> dict[str, str]:
    """The environment of a command: none of the runner's settings, only `settings`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in Settings.model_fields and not key.startswith("TEST_")
    }
    env |= {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **settings}
    return env


def run(args: list[str], cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`args` (after the interpreter) run to its end in `cwd`."""
    return subprocess.run(  # noqa: S603
        [str(PYTHON), *args],
        cwd=cwd,
        env=command_env(**settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


BAD = {
    "MARKETS": "notjson",
    "RATE_LIMIT_SEND_PER_PHONE": "1/fortnight",
    "VERIFICATION_RETENTION_DAYS": "0",
    "ENVIRONMENT": "production",
    "JWT_SECRET_KEY": WEAK_SECRET,
    "TWILIO_AUTH_TOKEN": AUTH_TOKEN_VALUE,
    "DATABASE_URL": f"postgresql+asyncpg://app:{DB_PASSWORD}@127.0.0.1:1/phone_auth",
}


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "app", "serve"],
        ["-m", "app", "migrate"],
        ["-m", "app", "purge-verifications"],
        ["-m", "app", "sync-attempts"],
        ["-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
    ],
    ids=["serve", "migrate", "purge-verifications", "sync-attempts", "alembic"],
)
def test_bad_settings_are_one_line_each_and_exit_2_on_every_command(
    args: list[str], tmp_path: Path
) -> None:
    done = run(args, tmp_path, **BAD)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        "MARKETS",
        "RATE_LIMIT_SEND_PER_PHONE",
        "VERIFICATION_RETENTION_DAYS",
        "JWT_SECRET_KEY",
    ], done.stderr
    assert all(re.search(r": must .+; e\.g\. [A-Z_]+=", line) for line in lines), lines
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    for secret in (WEAK_SECRET, AUTH_TOKEN_VALUE, DB_PASSWORD):
        assert secret not in output


@pytest.mark.parametrize(
    "settings",
    [
        {"RATE_LIMIT_SEND_PER_PHONE": "1/fortnight"},
        {"MARKETS": '{"KG": {"region": "KG", "language": "ru", "sms_budget": "9/eon"}}'},
        {"JWT_ALGORITHM": "RS256", "JWT_PRIVATE_KEY": "not a key"},
    ],
    ids=["limits", "budget", "private-key"],
)
def test_purge_refuses_what_serve_refuses(
    settings: dict[str, str], migrated_sqlite: str, tmp_path: Path
) -> None:
    """Settings only the service's start used to parse: refused by every command now."""
    done = run(
        ["-m", "app", "purge-verifications"],
        tmp_path,
        DATABASE_URL=migrated_sqlite,
        ENVIRONMENT="development",
        **settings,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line.split(":", 1)[0] in settings
    assert "Purged" not in done.stdout + done.stderr


def test_migrate_creates_the_tables_from_any_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = tmp_path / "fresh.db"

    done = run(
        ["-m", "app", "migrate"],
        elsewhere,
        DATABASE_URL=f"sqlite+aiosqlite:///{path}",
        ENVIRONMENT="development",
    )

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "setup plugin" not in done.stderr  # Alembic's set-up, of no use to an operator
    assert "Database migrated to the newest revision" in done.stderr
    with sqlite3.connect(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        [(revision,)] = connection.execute("SELECT version_num FROM alembic_version")
    assert {"users", "verifications", "auth_sessions", "refresh_tokens"} <= tables
    assert revision == HEAD_REVISION
    assert list(elsewhere.iterdir()) == []  # nothing written where it ran


@pytest.mark.parametrize(
    "command",
    [["purge-verifications"], ["users", "show", "+996555123456"]],
    ids=["purge-verifications", "users"],
)
def test_a_command_on_a_database_not_migrated_says_to_migrate_first(
    tmp_path: Path, command: list[str]
) -> None:
    """From a directory without the service's database (DATABASE_URL's default, a SQLite
    file there, is then empty): one line saying what to run, no traceback."""
    done = run(
        ["-m", "app", *command],
        tmp_path,
        ENVIRONMENT="development",
        JWT_SECRET_KEY="k" * 48,  # no warning of a random key
    )

    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.endswith(
        f"The database is not migrated, this version needs {HEAD_REVISION}: {MIGRATE_FIRST}"
    )
    assert done.stdout == ""


def test_serve_takes_host_port_and_workers_over_the_settings(
    migrated_sqlite: str, tmp_path: Path
) -> None:
    """And says where it listens, so that a newcomer knows what to open."""
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:  # the child keeps its own copy
        process = subprocess.Popen(  # noqa: S603
            [
                *(str(PYTHON), "-m", "app", "serve"),
                *("--host", "127.0.0.1", "--port", str(port), "--workers", "2"),
            ],
            cwd=tmp_path,
            # Neither could be listened on: the flags' values are.
            env=command_env(
                DATABASE_URL=migrated_sqlite,
                ENVIRONMENT="test",
                VERIFY_PROVIDER="console",
                HOST="192.0.2.1",
                PORT="1",
                WORKERS="1",
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        answer: httpx.Response | None = None
        while answer is None and time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None, f"no answer on --port {port} (exit {process.poll()})"
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok"}
        while log.read_text(encoding="utf-8").count("Started server process") < 2:
            assert time.monotonic() < deadline, "--workers 2 did not start two workers"
            time.sleep(0.2)
    finally:
        process.terminate()
        process.communicate(timeout=EXIT_TIMEOUT)
    assert f"running on http://127.0.0.1:{port} " in log.read_text(encoding="utf-8")


def test_serve_help_lists_its_options_and_the_settings_that_matter(tmp_path: Path) -> None:
    done = run(["-m", "app", "serve", "--help"], tmp_path, VERIFICATION_RETENTION_DAYS="0")

    assert done.returncode == 0, done.stderr
    text = done.stdout
    for option in ("--host HOST", "--port PORT", "--workers N"):
        assert option in text
    for setting in (
        "HOST",
        "PORT",
        "WORKERS",
        "ENVIRONMENT",
        "DATABASE_URL",
        "VERIFY_PROVIDER",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_VERIFY_SERVICE_SID",
        "JWT_SECRET_KEY",
        "JWT_ALGORITHM",
        "JWT_PRIVATE_KEY",
        "RATE_LIMIT_STORAGE_URL",
        "TRUSTED_PROXIES",
        "METRICS_PORT",
    ):
        assert re.search(rf"\b{setting}\b", text), setting
    # Every name it lists is a setting (HTTP_*_TIMEOUT_SECONDS stands for two).
    listed = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9*]+)+\b", text)) - {
        "HTTP_*_TIMEOUT_SECONDS"
    }
    assert {name.lower() for name in listed} <= set(Settings.model_fields), listed


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"VERIFY_PROVIDER": "console"}, "The console provider sends no SMS"),
        ({"VERIFY_PROVIDER": "twilio"}, "Twilio is not configured"),
    ],
    ids=["console", "twilio-not-configured"],
)
def test_sync_attempts_without_an_attempts_list_says_so_and_exits_0(
    settings: dict[str, str], said: str, tmp_path: Path
) -> None:
    """Nothing is called: no provider, and no database (none exists in `tmp_path`)."""
    done = run(["-m", "app", "sync-attempts"], tmp_path, ENVIRONMENT="development", **settings)

    assert done.returncode == 0, done.stdout + done.stderr
    output = done.stdout + done.stderr
    assert said in output
    assert "no delivery attempts to sync" in output
    assert "Traceback" not in output
    assert not (tmp_path / "phone_auth.db").exists()
