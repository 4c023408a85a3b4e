"""A database connection that comes back by itself.

A worker has two links: one shared by its claimer, completer, heartbeat and maintenance (one
statement at a time; psycopg serialises them), and one for LISTEN. A statement that fails
because the connection is gone raises ``DatabaseUnavailable`` after dropping the connection;
the next call reconnects. Loops decide what to do meanwhile (keep outcomes, retry later) and
wait with ``Backoff``.

A server that refuses connections ("too many clients") is a normal condition when many workers
share it: the link says so once, with the numbers, and the loops back off with jitter.
"""

from __future__ import annotations

import random
from typing import Any

import anyio
import psycopg
import structlog
from psycopg.rows import dict_row

from pgqueue import sql
from pgqueue.database import connect_options, psycopg_url

log = structlog.get_logger("pgqueue.link")

# Dead peers are noticed in seconds, not after the kernel's two hours.
KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


class DatabaseUnavailable(Exception):
    """The database could not be reached, or the connection broke mid-statement.

    ``connection_lost`` is False when the server answered with an error of this kind on a
    working connection (a statement timeout, say): the database was there all along.
    """

    def __init__(self, message: str, *, connection_lost: bool = True, server_full: bool = False) -> None:
        super().__init__(message)
        self.connection_lost = connection_lost
        self.server_full = server_full


def is_server_full(exc: psycopg.Error) -> bool:
    return exc.sqlstate == "53300" or "too many clients" in str(exc)


def log_unavailable(logger: Any, link: Link, exc: DatabaseUnavailable, **fields: Any) -> None:
    """A loop's note that the database is away; quiet while the server is full (the link has
    said so once already)."""
    report = logger.debug if exc.server_full else logger.warning
    report("database_unavailable", link=link.name, error=str(exc), **fields)


class Link:
    def __init__(
        self, url: str, schema: str, name: str, *, needs: int = 1, quiet_when_full: bool = False,
        prepare: bool = True,
    ) -> None:
        self.url = psycopg_url(url)
        self.quiet_when_full = quiet_when_full  # another link of this worker reports it
        self.schema = schema
        self.name = name
        self.needs = needs  # connections this worker process opens, for the server-full report
        # psycopg prepares a statement on the server after a few runs; behind PgBouncer's
        # transaction pooling the next run may land on a server connection that has it
        # already, or not at all ("prepared statement _pg3_0 already exists").
        self.prepare_options: dict[str, Any] = {} if prepare else {"prepare_threshold": None}
        self.connection: psycopg.AsyncConnection[dict[str, Any]] | None = None
        self._connecting = anyio.Lock()
        self.max_connections: int | None = None  # the server's, once known
        self.refused = False  # the server is full: said once, until a connection succeeds
        self.generation = 0  # connections opened so far: a change tells the loops it came back

    async def connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        async with self._connecting:  # loops sharing the link open one connection, not several
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
                full = is_server_full(exc)
                if full and not self.refused:
                    self.refused = True
                    if not self.quiet_when_full:
                            log.warning(
                            "database_full", link=self.name, connections_needed=self.needs,
                            max_connections=self.max_connections or "unknown until connected",
                            reason="the server refuses new connections; waiting with backoff")
                raise DatabaseUnavailable(str(exc).strip(), server_full=full) from exc
            self.generation += 1
            if self.refused or self.max_connections is None:
                try:
                    await self._note_capacity(self.connection)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    await self.close()
                    raise DatabaseUnavailable(str(exc).strip()) from exc
            return self.connection

    async def _note_capacity(self, connection: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        cursor = await connection.execute(sql.SERVER_CAPACITY.encode())
        row = await cursor.fetchone()
        if row is None:
            return
        self.max_connections = int(row["max_connections"])
        if self.refused and self.quiet_when_full:
            self.refused = False
        elif self.refused:
            self.refused = False
            log.info("database_connected", link=self.name, connections_needed=self.needs,
                     max_connections=self.max_connections, in_use=row["in_use"])

    async def fetch(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        connection = await self.connect()
        try:
            cursor = await connection.execute(query.encode(), params)
            return await cursor.fetchall() if cursor.description else []
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            lost = connection.broken or connection.closed
            # A statement timeout leaves a working connection: keep it. Another loop may have
            # opened a new one meanwhile: close only the one that broke.
            if lost and self.connection is connection:
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
