"""Alembic environment for pgqueue.

pgqueue keeps its own version table (``pgqueue_alembic_version``) and its own branch label
(``pgqueue``), so it sits beside a host application's Alembic history without touching it. The
URL comes from the caller (``pgqueue.migrate``) or ``DATABASE_URL``; the schema from the caller or
``PGQUEUE_SCHEMA_NAME`` (default ``public``).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, inspect, pool, text

from pgqueue.database import connect_options, sqlalchemy_url
from pgqueue.migrate import VERSION_TABLE, schema_from_environment, url_from_environment
from pgqueue.models import metadata

config = context.config

# Created by migration 0002 for dashboards; views are not models, so autogenerate skips them.
DASHBOARD_VIEWS = frozenset({
    "pgqueue_status_by_format", "pgqueue_queue_lag", "pgqueue_throughput_per_minute",
    "pgqueue_duration_percentiles", "pgqueue_failure_reasons", "pgqueue_live_workers",
    "pgqueue_queue_lag_by_priority", "pgqueue_results_by_extractor_version",  # migration 0005
})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # ``records`` belongs to PyBase: never create, drop or compare it, and compare the foreign
    # key to it only where the table exists (the migration adds it only then).
    if type_ == "table" and (name == "records" or name in DASHBOARD_VIEWS):
        return False
    referred = getattr(obj, "referred_table", None) if type_ == "foreign_key_constraint" else None
    if referred is not None and referred.name == "records":
        return bool(config.attributes.get("records_exists"))
    return not (type_ == "table" and name == VERSION_TABLE)


def checked_schema(schema: str) -> str:
    """The schema name, if it is a plain lower-case identifier. ``alembic`` run by hand takes
    it from the environment unchecked, and it is written into SQL below."""
    try:
        connect_options(schema)
    except ValueError:
        raise SystemExit(
            f"pgqueue: invalid schema name {schema!r} (PGQUEUE_SCHEMA_NAME): use lower-case "
            "letters, digits and _, starting with a letter or _, at most 63 characters"
        ) from None
    return schema


def run_with(connection: Connection) -> None:
    schema = checked_schema(config.attributes.get("schema") or schema_from_environment())
    # CREATE SCHEMA IF NOT EXISTS wants CREATE on the database even when the schema exists: a
    # role that only owns its schema (managed PostgreSQL, deploy/postgres/roles.sql) lacks it.
    exists = connection.execute(text("SELECT to_regnamespace(:schema) IS NOT NULL"), {"schema": schema})
    if schema != "public" and not exists.scalar():
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    connection.execute(text("SELECT set_config('search_path', :path, false)"), {"path": f'"{schema}"'})
    config.attributes["records_exists"] = inspect(connection).has_table("records", schema=schema)
    # Alembic leaves a transaction it did not begin to its owner: end ours first, so the
    # migration commits its own.
    connection.commit()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        version_table_schema=schema,
        include_object=include_object,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    url = config.attributes.get("url") or url_from_environment()
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_with(connection)


if context.is_offline_mode():
    raise SystemExit("pgqueue migrations run online only: set DATABASE_URL")
run_migrations_online()
