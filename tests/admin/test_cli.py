"""`python -m app users …`: the admin operations for operators, in process (through
`app.__main__.main`) and as the subprocess an operator runs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.__main__ import main
from tests.conftest import JWT_SECRET
from tests.helpers import (
    INVALID_REFRESH,
    assert_unauthorized,
    bearer,
    event_rows,
    login,
    me,
    new_phone,
    refresh,
    user_row,
)

ROOT = Path(__file__).resolve().parent.parent.parent
USERS = "/api/v1/admin/users"
BAD_ROLE = "Role names are 1-32 characters: a lowercase letter, then a-z, 0-9, _, : or -."


def _env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "development",
        "JWT_SECRET_KEY": JWT_SECRET,
        "VERIFY_PROVIDER": "console",
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def cli(
    clean_settings_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    migrated: str,
) -> Any:
    """`await cli("show", "+996…")`: (exit status, stdout, stderr) of the command run in
    process with the service's settings from the environment."""
    for key, value in _env(migrated).items():
        monkeypatch.setenv(key, value)

    async def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            status = await asyncio.to_thread(main, ["users", *argv])
        except SystemExit as exc:
            status = int(exc.code or 0)
        out, err = capsys.readouterr()
        return status, out, err

    return run


async def test_grant_role_makes_the_first_admin(
    client: httpx.AsyncClient, db_engine: AsyncEngine, cli: Any
) -> None:
    phone = new_phone()
    user = await login(client, phone)
    assert (await client.get(USERS, headers=bearer(user["access_token"]))).status_code == 403
    digits = phone[4:]

    status, out, err = await cli("grant-role", f"+996 {digits[:3]} {digits[3:]}", "admin")

    assert (status, err) == (0, "")
    shown = json.loads(out)
    assert shown["id"] == user["user"]["id"]
    assert shown["roles"] == ["admin"]
    assert (await client.get(USERS, headers=bearer(user["access_token"]))).status_code == 200
    [event] = [e for e in await event_rows(db_engine) if e["event"] == "roles_changed"]
    assert (event["actor_id"], event["details"]) == (
        None,
        {"roles": ["admin"], "previous_roles": []},
    )


async def test_show_prints_the_user_as_json(client: httpx.AsyncClient, cli: Any) -> None:
    phone = new_phone()
    user = await login(client, phone)

    status, out, _ = await cli("show", user["user"]["id"])

    assert status == 0
    shown = json.loads(out)
    assert out.count("\n") == 1
    assert {k: shown[k] for k in ("id", "phone", "market", "roles", "is_active")} == {
        "id": user["user"]["id"],
        "phone": phone,
        "market": "KG",
        "roles": [],
        "is_active": True,
    }
    assert shown["active_sessions"] == 1


async def test_disable_and_enable(
    client: httpx.AsyncClient, db_engine: AsyncEngine, cli: Any
) -> None:
    phone = new_phone()
    user = await login(client, phone)

    status, out, _ = await cli("disable", phone, "--reason", "chargeback fraud")

    assert status == 0
    assert json.loads(out)["is_active"] is False
    assert_unauthorized(await me(client, user["access_token"]))
    assert_unauthorized(await refresh(client, user["refresh_token"]), INVALID_REFRESH)
    row = await user_row(db_engine, user["user"]["id"])
    assert (row["is_active"], row["disabled_reason"]) == (False, "chargeback fraud")

    status, out, _ = await cli("enable", phone)

    assert status == 0
    assert json.loads(out)["is_active"] is True
    assert (await me(client, (await login(client, phone))["access_token"])).status_code == 200
    kinds = [
        (e["event"], e["actor_id"])
        for e in await event_rows(db_engine)
        if e["user_id"] == int(user["user"]["id"])
    ]
    assert kinds == [
        ("login", None),
        ("user_disabled", None),
        ("user_enabled", None),
        ("login", None),
    ]


async def test_revoke_sessions_and_revoke_role(
    client: httpx.AsyncClient, db_engine: AsyncEngine, cli: Any
) -> None:
    phone = new_phone()
    user = await login(client, phone)
    await cli("grant-role", phone, "support")
    await cli("grant-role", phone, "admin")

    status, out, _ = await cli("revoke-role", user["user"]["id"], "admin")
    assert status == 0
    assert json.loads(out)["roles"] == ["support"]

    status, out, _ = await cli("revoke-sessions", phone)
    assert status == 0
    assert json.loads(out)["active_sessions"] == 0
    assert_unauthorized(await me(client, user["access_token"]))
    assert (await user_row(db_engine, user["user"]["id"]))["is_active"] is True


async def test_delete(client: httpx.AsyncClient, db_engine: AsyncEngine, cli: Any) -> None:
    phone = new_phone()
    user = await login(client, phone)

    status, out, err = await cli("delete", phone)

    assert (status, err) == (0, "")
    assert json.loads(out) == {"id": user["user"]["id"], "deleted": True}
    assert_unauthorized(await me(client, user["access_token"]))
    [event] = [e for e in await event_rows(db_engine) if e["event"] == "user_deleted"]
    assert (event["user_id"], event["actor_id"]) == (int(user["user"]["id"]), None)
    status, out, err = await cli("show", user["user"]["id"])
    assert (status, out, err) == (1, "", f"error: no user with id {user['user']['id']}\n")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (("show", "+996555000001"), "error: no user with the number +996*****0001\n"),
        (("disable", "987654"), "error: no user with id 987654\n"),
        (("enable", "abc"), "error: 'abc' is neither a phone number (+…) nor a user id\n"),
        (("show", "+99655"), "error: '+99655': Enter a valid phone number.\n"),
    ],
)
async def test_an_unknown_user_exits_1_with_one_line(
    db_engine: AsyncEngine, cli: Any, argv: tuple[str, ...], reason: str
) -> None:
    status, out, err = await cli(*argv)

    assert (status, out, err) == (1, "", reason)


@pytest.mark.parametrize("role", ["Admin", "x" * 40, "a b"])
async def test_a_bad_role_name_exits_1_and_changes_nothing(
    client: httpx.AsyncClient, db_engine: AsyncEngine, cli: Any, role: str
) -> None:
    user = await login(client)

    for action in ("grant-role", "revoke-role"):
        status, out, err = await cli(action, user["user"]["id"], role)
        assert (status, out, err) == (1, "", f"error: {BAD_ROLE}\n")

    assert (await user_row(db_engine, user["user"]["id"]))["roles"] == []


async def test_a_missing_argument_is_a_usage_error(cli: Any) -> None:
    status, _, err = await cli("grant-role", "+996555123456")

    assert status == 2
    assert "the following arguments are required: ROLE" in err


async def _subprocess(database_url: str, *argv: str) -> tuple[int, str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWILIO_", "TEST_", "RATE_LIMIT", "JWT_", "DATABASE_"))
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "users",
        *argv,
        cwd=ROOT,
        env=env | _env(database_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_as_a_subprocess(
    client: httpx.AsyncClient, db_engine: AsyncEngine, database_url: str
) -> None:
    phone = new_phone()
    user = await login(client, phone)

    status, out, err = await _subprocess(database_url, "grant-role", phone, "admin")

    assert (status, err) == (0, "")
    assert json.loads(out)["roles"] == ["admin"]
    assert (await client.get(USERS, headers=bearer(user["access_token"]))).status_code == 200

    status, out, err = await _subprocess(database_url, "disable", "+996555000002")

    assert (status, out, err) == (1, "", "error: no user with the number +996*****0002\n")
