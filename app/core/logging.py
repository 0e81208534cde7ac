"""One logging configuration for the service and uvicorn: JSON lines in
production, readable lines in development, both with the request's context."""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

from app.core.config import Settings
from app.core.request_context import phone_var, request_id_var, route_var

_CONTEXT_FIELDS = ("request_id", "route", "status", "duration_ms", "phone")
_encode = json.JSONEncoder(ensure_ascii=True, default=str).encode


class ContextFilter(logging.Filter):
    """Copy the request's context onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        if getattr(record, "route", None) is None:
            record.route = route_var.get()
        record.phone = phone_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the request context."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry)


class ConsoleFormatter(logging.Formatter):
    """A readable line, with the request id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [{request_id[:8]}]" if request_id else line


def configure_logging(settings: Settings) -> None:
    """Send every log line through one handler at `LOG_LEVEL`, in `LOG_FORMAT`."""
    fmt = settings.log_format or ("json" if settings.is_production else "console")
    # No formatter here shows the caller, thread or process: skip finding them for
    # every record (the logging documentation's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"context": {"()": ContextFilter}},
            "formatters": {
                "json": {"()": JsonFormatter},
                "console": {
                    "()": ConsoleFormatter,
                    "format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                },
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": fmt,
                    "filters": ["context"],
                    "stream": "ext://sys.stderr",
                },
            },
            "loggers": {
                "app": {"level": settings.log_level},
                # uvicorn sets up its own handlers first; route its loggers through ours.
                "uvicorn": {"level": settings.log_level, "handlers": [], "propagate": True},
                "uvicorn.error": {"handlers": [], "propagate": True},
                # Our middleware logs every request with its route and duration.
                "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
                # These log URLs, statements and their parameters (phone numbers,
                # token hashes) at INFO/DEBUG: never below WARNING.
                "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"},
                "aiosqlite": {"level": "WARNING"},
                "asyncpg": {"level": "WARNING"},
                "sqlalchemy": {"level": "WARNING"},
                "aiohttp": {"level": "WARNING"},
                "redis": {"level": "WARNING"},
                # Seven lines of plugin set-up on every `migrate`.
                "alembic.runtime.plugins": {"level": "WARNING"},
            },
            "root": {"level": settings.log_level, "handlers": ["stderr"]},
        }
    )
