"""A database connection that comes back by itself.

Each loop of the worker owns one ``Link``. A statement that fails because the connection is
gone raises ``DatabaseUnavailable`` after dropping the connection; the next call reconnects.
Loops decide what to do meanwhile (keep outcomes, retry later) and wait with ``Backoff``.
"""

from __future__ import annotations

import random
from typing import Any

import anyio
import psycopg
import structlog
from psycopg.rows import dict_row

from pgqueue.database import connect_options, psycopg_url

log = structlog.get_logger("pgqueue.link")

# Dead peers are noticed in seconds, not after the kernel's two hours.
KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


class DatabaseUnavailable(Exception):
    """The database could not be reached, or the connection broke mid-statement.

    ``connection_lost`` is False when the server answered with an error of this kind on a
    working connection (a statement timeout, say): the database was there all along.
    """

    def __init__(self, message: str, *, connection_lost: bool = True) -> None:
        super().__init__(message)
        self.connection_lost = connection_lost


class Link:
    def __init__(self, url: str, schema: str, name: str, *, prepare: bool = True) -> None:
        self.url = psycopg_url(url)
        self.schema = schema
        self.name = name
        # psycopg prepares a statement on the server after a few runs; behind PgBouncer's
        # transaction pooling the next run may land on a server connection that has it
        # already, or not at all ("prepared statement _pg3_0 already exists").
        self.prepare_options: dict[str, Any] = {} if prepare else {"prepare_threshold": None}
        self.connection: psycopg.AsyncConnection[dict[str, Any]] | None = None

    async def connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        if self.connection is not None and not self.connection.closed:
            return self.connection
        try:
            self.connection = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=5,
                application_name=f"pgqueue-{self.name}",
                **KEEPALIVE,
                **self.prepare_options,
                **connect_options(self.schema),
            )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(str(exc).strip()) from exc
        return self.connection

    async def fetch(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        connection = await self.connect()
        try:
            cursor = await connection.execute(query.encode(), params)
            return await cursor.fetchall() if cursor.description else []
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            lost = connection.broken or connection.closed
            await self.close()
            raise DatabaseUnavailable(str(exc).strip(), connection_lost=lost) from exc

    async def close(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            with anyio.CancelScope(shield=True):
                try:
                    await connection.close()
                except Exception:
                    log.debug("link_close_failed", link=self.name)


class Backoff:
    """Waits that grow from ``first`` to ``cap`` seconds with jitter; ``reset`` after success."""

    def __init__(self, first: float = 0.2, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * 2**self.attempt)
        self.attempt += 1
        return delay * (0.5 + random.random() / 2)

    async def wait(self) -> None:
        await anyio.sleep(self.next_delay())

    def reset(self) -> None:
        self.attempt = 0
