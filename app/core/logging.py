"""One logging configuration for the service and uvicorn."""

from __future__ import annotations

import logging.config

from app.core.config import Settings


def configure_logging(settings: Settings) -> None:
    """Send every log line through one handler at `LOG_LEVEL`."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "console": {
                    "format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                },
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "console",
                    "stream": "ext://sys.stderr",
                },
            },
            "loggers": {
                "app": {"level": settings.log_level},
                "uvicorn": {"level": settings.log_level},
                "uvicorn.access": {"level": "WARNING"},
                # httpx logs full request URLs at INFO; keep it quiet.
                "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"},
            },
            "root": {"level": settings.log_level, "handlers": ["stderr"]},
        }
    )
