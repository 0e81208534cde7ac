"""`python -m app users …`: the admin API's operations for operators, with the service's
settings (this is how the first admin is made: `users grant-role +996… admin`).

Each command prints its result (the user as JSON; `{"id": …, "deleted": true}` for
`delete`) on stdout and exits 0, or prints a one-line reason on stderr and exits 1.
Changes are audited with no acting admin (`actor_id` null).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from app.core.config import Settings
from app.core.database import Database, UnitOfWork, create_engine
from app.core.errors import DATABASE_DOWN_ERRORS, AppError
from app.core.metrics import Metrics
from app.core.phone import PhoneError, parse_phone
from app.schemas.admin import AdminUserOut
from app.services.admin.exceptions import UserNotFound
from app.services.admin.service import AdminService, AdminUser, parse_id
from app.services.ops.service import migration_problem
from app.services.sessions.service import SessionService
from app.services.sessions.tokens import TokenService
from app.services.users.service import UserService

logger = logging.getLogger("app.cli")

USER_COMMANDS = ("show", "disable", "enable", "revoke-sessions", "delete")
ROLE_COMMANDS = ("grant-role", "revoke-role")
DEFAULT_REASON = "disabled from the command line"


class CommandError(Exception):
    """A command that cannot run; the message is the one line the operator reads."""


def register(commands: Any) -> None:
    """Add `users` and its subcommands to the `python -m app` parser's subcommands."""
    users = commands.add_parser(
        "users", help="show, disable, enable, revoke sessions of, or change roles of a user"
    )
    actions = users.add_subparsers(dest="action", required=True)
    helps = {
        "show": "print the user as JSON",
        "disable": "disable the user and revoke every session",
        "enable": "enable the user again",
        "revoke-sessions": "revoke every session of the user",
        "delete": "delete the user and its personal data (as DELETE /users/me does)",
    }
    for name in USER_COMMANDS:
        action = actions.add_parser(name, help=helps[name])
        action.add_argument("user", metavar="PHONE_OR_ID", help="+996555123456 or a user id")
        if name == "disable":
            action.add_argument("--reason", default=DEFAULT_REASON, help="kept with the account")
    for name in ROLE_COMMANDS:
        action = actions.add_parser(name, help=f"{name.split('-')[0]} one role")
        action.add_argument("user", metavar="PHONE_OR_ID", help="+996555123456 or a user id")
        action.add_argument("role", metavar="ROLE", help="e.g. admin")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `users ACTION …`; 0 on success, 1 with a one-line reason on stderr."""
    try:
        view = asyncio.run(_run(settings, args))
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if isinstance(view, AdminUser):
        print(AdminUserOut.model_validate(_fields(view)).model_dump_json())
    else:
        print(json.dumps({"id": str(view), "deleted": True}))
    return 0


def _fields(view: AdminUser) -> dict[str, Any]:
    names = [name for name in AdminUserOut.model_fields if name != "active_sessions"]
    return {
        **{name: getattr(view.user, name) for name in names},
        "active_sessions": view.active_sessions,
    }


async def _run(settings: Settings, args: argparse.Namespace) -> AdminUser | int:
    database = Database(create_engine(settings))
    metrics = Metrics()  # the command's own; /metrics counts the service's actions
    users = UserService(metrics)
    admin = AdminService(users, SessionService(settings, TokenService(settings), users), metrics)
    uow = database.unit_of_work()
    try:
        problem = await migration_problem(database)
        if problem is not None:
            raise CommandError(problem)
        view = await _act(uow, admin, args)
        await uow.commit()
        return view
    except AppError as exc:
        await uow.rollback()
        raise CommandError(exc.message) from exc
    except DATABASE_DOWN_ERRORS as exc:
        raise CommandError(
            f"the database cannot be used ({type(getattr(exc, 'orig', None) or exc).__name__})"
        ) from exc
    finally:
        await uow.close()
        await database.dispose()


async def _act(uow: UnitOfWork, admin: AdminService, args: argparse.Namespace) -> AdminUser | int:
    """The command's user afterwards, or the id of the user it deleted."""
    user_id = await _resolve(uow, admin, args.user)
    action: str = args.action
    if action == "delete":
        await admin.delete(uow, None, user_id)
        logger.info("users delete: user %s", user_id)
        return user_id
    actions: dict[str, Callable[[], Awaitable[AdminUser]]] = {
        "show": lambda: admin.user(uow, user_id),
        "disable": lambda: admin.disable(uow, None, user_id, args.reason),
        "enable": lambda: admin.enable(uow, None, user_id),
        "revoke-sessions": lambda: admin.revoke_sessions(uow, None, user_id),
        "grant-role": lambda: admin.grant_role(uow, None, user_id, args.role),
        "revoke-role": lambda: admin.revoke_role(uow, None, user_id, args.role),
    }
    view = await actions[action]()
    logger.info("users %s: user %s", action, user_id)
    return view


async def _resolve(uow: UnitOfWork, admin: AdminService, text: str) -> int:
    """The id of the user a phone number (any accepted format) or an id names."""
    text = text.strip()
    if text.startswith("+"):
        try:
            phone = parse_phone(text)
        except PhoneError as exc:
            raise CommandError(f"{text!r}: {exc}") from exc
        page = await admin.by_phone(uow, phone)
        if not page.items:
            raise CommandError(f"no user with the number {phone.masked}")
        return page.items[0].user.id
    user_id = parse_id(text)
    if user_id is None:
        raise CommandError(f"{text!r} is neither a phone number (+…) nor a user id")
    try:
        await admin.user(uow, user_id)
    except UserNotFound as exc:
        raise CommandError(f"no user with id {user_id}") from exc
    return user_id
