"""Command line: `python -m app serve`, `python -m app migrate`,
`python -m app purge-verifications`, `python -m app sync-attempts`.

Every command reads the settings the same way (`load_settings`): a refused setting
is one line on stderr and exit status 2, whichever command read it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta
from functools import partial

from sqlalchemy.exc import SQLAlchemyError

from app.cli import attempts as attempts_cli
from app.cli import users as users_cli
from app.cli.database import EXIT_FAILED, database_error, with_database
from app.core.config import Settings
from app.core.database import Database
from app.core.logging import configure_logging
from app.core.settings_loader import load_settings
from app.models.base import utcnow
from app.services.delivery.service import purge_attempts
from app.services.verification.retention import purge_verifications

logger = logging.getLogger("app.cli")

# `serve --help`: the settings that decide how and where the service runs.
SERVE_SETTINGS = """\
settings that matter (environment variables or .env; every one is in .env.example
and in the README's Settings table):
  HOST, PORT, WORKERS       address and processes (the options above override them)
  ENVIRONMENT               development | test | production (refuses the console
                            provider and weak keys)
  DATABASE_URL              sqlite+aiosqlite:///<file> or postgresql+asyncpg://...
                            (run `python -m app migrate` first)
  VERIFY_PROVIDER           twilio, or console (codes in the log, development only)
  TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_VERIFY_SERVICE_SID
                            Twilio Verify credentials
  JWT_SECRET_KEY            HS256 key (32+ random bytes in production)
  JWT_ALGORITHM, JWT_PRIVATE_KEY, JWT_PRIVATE_KEY_FILE
                            RS256 / ES256 signing
  RATE_LIMIT_STORAGE_URL    memory://, or redis://host:6379/0, redis+sentinel://...
                            or redis+cluster://... (limits shared by replicas)
  TRUSTED_PROXIES           CIDRs whose X-Forwarded-For is believed
  CORS_ALLOW_ORIGINS        browser origins allowed
  METRICS_PORT              /metrics on a port of its own
  GRACEFUL_SHUTDOWN_SECONDS, LIMIT_CONCURRENCY, HTTP_*_TIMEOUT_SECONDS
                            connection bounds
  LOG_LEVEL, LOG_FORMAT     logging
"""

# serve's options and the settings they override.
SERVE_OPTIONS = {"host": "HOST", "port": "PORT", "workers": "WORKERS"}


def _port(text: str) -> int:
    return _whole_number(text, 1, 65535)


def _workers(text: str) -> int:
    return _whole_number(text, 1, 64)


def _whole_number(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    parser = argparse.ArgumentParser(
        prog="python -m app", description="Phone Auth: the service and its maintenance."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    serve = commands.add_parser(
        "serve",
        help="run the service with uvicorn",
        description="Run the service: uvicorn with httptools, WORKERS processes on "
        "HOST:PORT, proxy headers only from TRUSTED_PROXIES.",
        epilog=SERVE_SETTINGS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="address to listen on (overrides HOST; 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, help="port to listen on (overrides PORT; 8000)", metavar="PORT"
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        help="processes (overrides WORKERS; 1, keep 1 in Kubernetes)",
        metavar="N",
    )
    commands.add_parser(
        "migrate",
        help="bring the database (DATABASE_URL) to the newest migration",
        description="Apply every Alembic migration not yet applied to DATABASE_URL. "
        "Run it before starting a new version; it works from any directory.",
    )
    commands.add_parser(
        "purge-verifications",
        help="delete verification rows and delivery attempts older than "
        "VERIFICATION_RETENTION_DAYS (for a CronJob)",
    )
    commands.add_parser(
        "sync-attempts",
        help="store Twilio's delivery attempts (status, price, conversion) created since "
        "the last sync (for a CronJob)",
        description="Read Twilio Verify's delivery attempts created since the last sync "
        "(less ATTEMPTS_SYNC_OVERLAP_SECONDS) and store their delivery status, price and "
        "conversion beside the verifications. Running it twice stores nothing twice.",
    )
    users_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; its exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        # Through the environment, so that uvicorn's workers (which read the settings
        # again, in the processes it starts) see the same values.
        for option, setting in SERVE_OPTIONS.items():
            value = getattr(args, option)
            if value is not None:
                os.environ[setting] = str(value)
    settings = load_settings()
    # Before serving too: uvicorn names the address it listens on while binding it.
    configure_logging(settings)
    if args.command == "serve":
        from app.core.http_server import serve  # uvicorn: not needed by the other commands

        serve(settings)
        return 0
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "users":
        return users_cli.run(settings, args)
    if args.command == "sync-attempts":
        return attempts_cli.run(settings)
    return with_database(settings, partial(_purge, days=settings.verification_retention_days))


def _migrate(settings: Settings) -> int:
    from app.core.migrations import MigrationsMissing, upgrade_to_head

    try:
        upgrade_to_head(settings)
    except MigrationsMissing as exc:
        logger.error("Cannot migrate: %s", exc)
        return EXIT_FAILED
    except (SQLAlchemyError, OSError) as exc:
        logger.error("Cannot migrate: %s", database_error(exc))
        return EXIT_FAILED
    logger.info("Database migrated to the newest revision")
    return 0


async def _purge(database: Database, *, days: int) -> int:
    uow = database.unit_of_work()
    try:
        deleted = await purge_verifications(uow, days)
        attempts = await purge_attempts(uow, utcnow() - timedelta(days=days))
        await uow.commit()
    finally:
        await uow.close()
    logger.info(
        "Purged %d verification rows older than %d days, and %d delivery attempts",
        deleted,
        days,
        attempts,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
