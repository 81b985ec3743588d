"""Programmatic Alembic: ``cryoneuro db upgrade`` and the test fixtures call :func:`upgrade`.

No alembic.ini is needed; the script location is this package's ``migrations`` folder.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from cryoneuro.registry.db import make_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(db_url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and ``db_url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return config


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(db_url), revision)


def current_revision(db_url: str) -> str | None:
    """The revision the database is at (None for an empty database)."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
