"""Readiness: can this process serve logins right now?"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.database import Database
from app.services.limits.service import LoginLimits

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"
DEGRADED = "degraded"

# The newest migration in alembic/versions, written here so that serving never
# imports Alembic and its memory; a test keeps the two the same.
HEAD_REVISION = "0005"
MIGRATE_FIRST = "run `python -m app migrate` first"


@dataclass
class ReadinessChecker:
    """Checks the database (and its migrations), the limit storage and the provider."""

    database: Database
    limits: LoginLimits
    provider_configured: bool
    head: str = HEAD_REVISION
    # Each configured provider's state ("ok", "circuit open"): detail only, a provider
    # failing over to another does not make a pod unready.
    provider_states: Callable[[], dict[str, str]] = field(default=dict)
    _migrated: bool = False
    _warned: bool = False

    async def check(self) -> dict[str, str]:
        """Each check's state: "ok", "degraded" (serving, with less) or why not."""
        database, storage = await asyncio.gather(self._database(), self._storage())
        checks = {
            "database": database,
            "provider": OK if self.provider_configured else "not configured",
        }
        if storage is not None:
            checks["rate_limit_storage"] = storage
        return checks

    def storage(self) -> dict[str, str | int | None] | None:
        """The Redis behind the limits: its topology and, with Sentinel, the failovers
        this process has seen (`failovers`, `last_failover_at`); None without Redis."""
        state = self.limits.storage_state
        if state is None:
            return None
        detail: dict[str, str | int | None] = {"topology": state.topology}
        if state.topology == "sentinel":
            detail["failovers"] = state.failovers
            detail["last_failover_at"] = (
                None
                if state.last_failover is None
                else datetime.fromtimestamp(state.last_failover, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        return detail

    def providers(self) -> dict[str, str]:
        """Each configured provider and whether it is failing fast right now."""
        return self.provider_states()

    async def _storage(self) -> str | None:
        """Without Redis the limits are the process's own and logins keep working, so the
        pod stays in the Service: every pod would leave it at once otherwise."""
        if not self.limits.shared:
            return None
        return OK if await self.limits.ping() else DEGRADED

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                async with self.database.engine.connect() as connection:
                    if self._migrated:
                        await connection.execute(text("SELECT 1"))
                        return "ok"
                    current = await _current_revision(connection)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            logger.warning("Readiness: database check failed (%s)", type(exc).__name__)
            return "unreachable"
        if current != self.head:
            if not self._warned:
                # Once per process: the probe asks every few seconds.
                self._warned = True
                logger.warning("%s", not_migrated_message(current, self.head))
            return (
                f"migrations not at head ({current or 'none applied'} != {self.head}): "
                f"{MIGRATE_FIRST}"
            )
        # Migrations only move forward while a version runs.
        self._migrated = True
        return "ok"


async def migration_problem(database: Database, head: str = HEAD_REVISION) -> str | None:
    """Why this version cannot use `database` yet (its migrations are not at `head`),
    or None when it can. Connection errors are the caller's."""
    async with database.engine.connect() as connection:
        current = await _current_revision(connection)
    return None if current == head else not_migrated_message(current, head)


def not_migrated_message(current: str | None, head: str) -> str:
    """One line for an operator: where the database is, and what to run."""
    where = f"at revision {current}" if current else "not migrated"
    return f"The database is {where}, this version needs {head}: {MIGRATE_FIRST}"


async def _current_revision(connection: AsyncConnection) -> str | None:
    """The applied revision, or None on a database never migrated."""
    try:
        result = await connection.execute(text("SELECT version_num FROM alembic_version"))
    except (ProgrammingError, OperationalError) as exc:
        if exc.connection_invalidated:
            raise
        # The database answers but has no alembic_version table.
        return None
    return result.scalar_one_or_none()


def overall(checks: dict[str, str]) -> str:
    """The overall state: unavailable when a check failed, else degraded when one is,
    else ok."""
    states = set(checks.values())
    if not states <= {OK, DEGRADED}:
        return "unavailable"
    return DEGRADED if DEGRADED in states else OK
