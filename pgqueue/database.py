"""Connections: URL forms for psycopg and SQLAlchemy, and connection options.

pgqueue's own code talks to PostgreSQL through psycopg 3 directly (one statement per claim or
write-back batch, no ORM on the hot path). SQLAlchemy is used for the models and migrations, and
by host applications that enqueue through their session.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.rows import dict_row

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def psycopg_url(url: str) -> str:
    """A libpq URL from any of the usual spellings (``postgresql+psycopg://`` included)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def sqlalchemy_url(url: str) -> str:
    """A SQLAlchemy URL using the psycopg 3 driver."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)


def connect_options(schema: str) -> dict[str, Any]:
    """Keyword arguments for ``psycopg.connect``: put pgqueue's schema first on the path."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    if schema == "public":
        return {}
    return {"options": f"-c search_path={schema},public"}


async def connect_async(url: str, schema: str = "public", **kwargs: Any) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection returning rows as dicts."""
    return await psycopg.AsyncConnection.connect(
        psycopg_url(url), autocommit=True, row_factory=dict_row, **connect_options(schema), **kwargs
    )


def connect(url: str, schema: str = "public", **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.Connection.connect(
        psycopg_url(url), autocommit=True, row_factory=dict_row, **connect_options(schema), **kwargs
    )
