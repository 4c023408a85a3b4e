"""Apply pgqueue's migrations to a database: ``pgqueue migrate`` and the worker's start-up."""

from __future__ import annotations

import os
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool

from pgqueue.database import sqlalchemy_url

VERSION_TABLE = "pgqueue_alembic_version"
HEAD = "pgqueue@head"


def url_from_environment() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("DATABASE_URL is not set: give the database to migrate")
    return url


def schema_from_environment() -> str:
    return os.environ.get("PGQUEUE_SCHEMA_NAME") or "public"


def alembic_config(url: str | None = None, schema: str | None = None, **attributes: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("pgqueue.migrations")))
    config.attributes["url"] = url
    config.attributes["schema"] = schema
    config.attributes.update(attributes)
    return config


def upgrade(url: str, schema: str = "public", revision: str = HEAD) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    # One advisory lock so replicas starting together do not migrate at the same time.
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT pg_advisory_lock(7341590)")
        try:
            command.upgrade(alembic_config(url, schema, connection=connection), revision)
        finally:
            connection.exec_driver_sql("SELECT pg_advisory_unlock(7341590)")
            connection.commit()
    engine.dispose()


def downgrade(url: str, schema: str = "public", revision: str = "base") -> None:
    command.downgrade(alembic_config(url, schema), revision)
