"""Running a command on the database: once it is known to be migrated, with database
trouble as one line in the log rather than a traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.services.ops.service import migration_problem

logger = logging.getLogger("app.cli")

EXIT_FAILED = 1


def with_database(settings: Settings, command: Callable[[Database], Awaitable[int]]) -> int:
    """Run `command` on the database once it is known to be migrated; its exit status,
    or 1 after one line in the log when the database is not migrated or fails."""

    async def run() -> int:
        database = Database(create_engine(settings))
        try:
            problem = await migration_problem(database)
            if problem is not None:
                logger.error("%s", problem)
                return EXIT_FAILED
            return await command(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except (SQLAlchemyError, OSError) as exc:
        logger.error("Database error: %s", database_error(exc))
        return EXIT_FAILED


def database_error(exc: BaseException) -> str:
    """The error's type and first line (SQL parameters are hidden by the engine)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
