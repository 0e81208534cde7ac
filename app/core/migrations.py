"""`python -m app migrate`: Alembic's upgrade to head with the service's settings.

The migrations live in `alembic/` beside the `app` package (where the Dockerfile
copies them), so they are found from any working directory, and neither the
alembic command nor its `alembic.ini` needs to be at hand. Alembic is imported
only here, only by this command: a serving process never loads it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from app.core.config import Settings

if TYPE_CHECKING:
    from alembic.config import Config

PROJECT_DIR = Path(__file__).resolve().parents[2]
SCRIPT_LOCATION = PROJECT_DIR / "alembic"


class MigrationsMissing(RuntimeError):
    """The alembic directory is not beside the app package."""


def alembic_config(settings: Settings) -> Config:
    """Alembic's configuration: the migrations beside the package, the database and
    the logging of `settings` (env.py reads both from `config.attributes`)."""
    from alembic.config import Config

    if not (SCRIPT_LOCATION / "env.py").is_file():
        raise MigrationsMissing(f"no migrations at {SCRIPT_LOCATION} (the alembic directory)")
    ini = PROJECT_DIR / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("path_separator", "os")
    config.attributes["settings"] = settings
    config.attributes["configure_logger"] = False
    return config


def upgrade_to_head(settings: Settings) -> None:
    """Apply every migration not yet applied to `DATABASE_URL`."""
    from alembic import command

    # Alembic announces each of its plugins at INFO; the migrations it runs are news.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    command.upgrade(alembic_config(settings), "head")
