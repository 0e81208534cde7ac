"""Command line: `python -m app serve`, `python -m app purge-verifications`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from app.cli import users as users_cli
from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.logging import configure_logging
from app.services.verification.retention import purge_verifications

logger = logging.getLogger("app.cli")


async def _purge(settings: Settings) -> int:
    database = Database(create_engine(settings))
    uow = database.unit_of_work()
    try:
        deleted = await purge_verifications(uow, settings.verification_retention_days)
        await uow.commit()
        return deleted
    finally:
        await uow.close()
        await database.dispose()


def main(argv: list[str] | None = None) -> int:
    """Run a maintenance command."""
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "serve",
        help="run the service with uvicorn (HOST, PORT; TRUSTED_PROXIES for proxy headers)",
    )
    commands.add_parser(
        "purge-verifications",
        help="delete verification rows older than VERIFICATION_RETENTION_DAYS (for a CronJob)",
    )
    users_cli.register(commands)
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        from app.core.http_server import serve  # uvicorn: not needed by the other commands

        serve(settings)
        return 0
    configure_logging(settings)
    if args.command == "users":
        return users_cli.run(settings, args)
    if args.command == "purge-verifications":
        deleted = asyncio.run(_purge(settings))
        logger.info(
            "Purged %d verification rows older than %d days",
            deleted,
            settings.verification_retention_days,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
