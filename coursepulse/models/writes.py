"""Lean write transactions for the hottest change: a student completing a lesson.

A completion touches a handful of rows by key. Through the ORM's `AsyncSession` it
cost about 5 ms of CPU, and on SQLite the database's single write lock was held
across every one of its awaited statements, while the event loop served other
requests in between. Here the same statements (Core, compiled once per dialect,
see models/reads.py) run on a connection of our own:

- SQLite: one connection per process, used on the event loop. Writers of this
  process take turns on an `asyncio.Lock`; `BEGIN IMMEDIATE` is retried
  asynchronously while another process (or the ORM's connections) holds the lock.
  The transaction then runs to COMMIT without giving the loop away, so the
  database lock is held for microseconds.
- PostgreSQL: asyncpg connections; row locks (`FOR UPDATE`) order concurrent
  changes as in the ORM path, and NOTIFY is sent inside the transaction.

Every other change keeps the ORM (`Database.write()`).
"""

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from coursepulse.models.reads import (
    DEFAULT_POOL_SIZE,
    Query,
    ReadTransaction,
    StatementObserver,
    open_sqlite,
    sqlite_without_waiting,
)

log = logging.getLogger("coursepulse.writes")


class WriteTransaction(ReadTransaction):
    """A read-write transaction; `first`/`all` run any compiled statement (RETURNING too)."""

    def __init__(self, dialect: Dialect, observers: list[StatementObserver]) -> None:
        super().__init__(dialect, observers)
        #: Courses whose event log this transaction appended to (announced after commit).
        self.event_courses: set[int] = set()

    async def execute(self, query: Query, **params: Any) -> None:
        """Run a statement that returns no rows."""
        await self.all(query, **params)


class _SqliteWrite(WriteTransaction):
    def __init__(
        self, dialect: Dialect, observers: list[StatementObserver], connection: sqlite3.Connection
    ) -> None:
        super().__init__(dialect, observers)
        self.connection = connection

    async def _fetch(self, sql: str, arguments: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        return self.connection.execute(sql, arguments).fetchall()


class _PostgresWrite(WriteTransaction):
    def __init__(
        self, dialect: Dialect, observers: list[StatementObserver], connection: asyncpg.Connection
    ) -> None:
        super().__init__(dialect, observers)
        self.connection = connection

    async def _fetch(self, sql: str, arguments: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        return await self.connection.fetch(sql, *arguments)


class SessionWrite(WriteTransaction):
    """A `WriteTransaction` inside an ORM session's transaction (`Database.write()`).

    Pending ORM changes are flushed before each statement, so both see the same rows.
    """

    def __init__(self, session: AsyncSession) -> None:
        assert session.bind is not None
        super().__init__(session.bind.dialect, [])
        self.session = session

    async def _fetch(self, sql: str, arguments: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        await self.session.flush()
        connection = await self.session.connection()
        result = await connection.exec_driver_sql(sql, arguments)
        return result.fetchall() if result.returns_rows else []


class Writer:
    """Runs write transactions on the lean path (see the module's docstring)."""

    def __init__(self, url: URL, dialect: Dialect, size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.dialect = dialect
        self.size = size
        self.observers: list[StatementObserver] = []
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_turn = asyncio.Lock()
        self._postgres: asyncio.LifoQueue[asyncpg.Connection] = asyncio.LifoQueue()
        self._postgres_opened = 0

    async def run(
        self,
        work: Callable[[WriteTransaction], Any],
        notify: Callable[[WriteTransaction], Any] | None = None,
    ) -> Any:
        """`await work(transaction)` in one transaction, committed when it returns.

        `notify(transaction)` runs just before COMMIT (PostgreSQL's NOTIFY is
        transactional); an exception rolls everything back and propagates.
        """
        if self.dialect.name == "sqlite":
            return await self._run_sqlite(work, notify)
        return await self._run_postgres(work, notify)

    def _observe(self, sql: str) -> None:
        for observe in self.observers:
            observe(sql)

    async def _run_sqlite(self, work: Callable[..., Any], notify: Callable[..., Any] | None) -> Any:
        async with self._sqlite_turn:
            if self._sqlite is None:
                self._sqlite = open_sqlite(self.url.database or "", read_only=False)
                self._sqlite.execute("PRAGMA synchronous=NORMAL")
            connection = self._sqlite
            self._observe("BEGIN IMMEDIATE")
            await sqlite_without_waiting(lambda: connection.execute("BEGIN IMMEDIATE"))
            transaction = _SqliteWrite(self.dialect, self.observers, connection)
            try:
                result = await work(transaction)
                if notify is not None:
                    await notify(transaction)
                await sqlite_without_waiting(lambda: connection.execute("COMMIT"))
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return transaction, result

    async def _run_postgres(
        self, work: Callable[..., Any], notify: Callable[..., Any] | None
    ) -> Any:
        connection, block = await self._begin_postgres()
        transaction = _PostgresWrite(self.dialect, self.observers, connection)
        try:
            result = await work(transaction)
            if notify is not None:
                await notify(transaction)
            await block.commit()
            return transaction, result
        except BaseException:
            if not connection.is_closed() and connection.is_in_transaction():
                with contextlib.suppress(Exception):
                    await block.rollback()
            raise
        finally:
            # A refused change (a domain error) leaves the connection as good as before.
            if not connection.is_closed() and not connection.is_in_transaction():
                self._postgres.put_nowait(connection)
            else:
                self._drop(connection)

    async def _begin_postgres(self) -> tuple[asyncpg.Connection, Any]:
        """A pooled connection in a new transaction; idle ones the server dropped are replaced."""
        while True:
            connection, fresh = await self._checkout_postgres()
            block = connection.transaction()
            self._observe("BEGIN")
            try:
                await block.start()
            except Exception:
                self._drop(connection)
                if fresh:
                    raise
                log.info("replacing a write connection that went stale", exc_info=True)
                continue
            return connection, block

    def _drop(self, connection: asyncpg.Connection) -> None:
        self._postgres_opened -= 1
        connection.terminate()

    async def _checkout_postgres(self) -> tuple[asyncpg.Connection, bool]:
        """A connection, and whether it was opened just now."""
        while not self._postgres.empty():
            connection = self._postgres.get_nowait()
            if not connection.is_closed():
                return connection, False
            self._postgres_opened -= 1
        if self._postgres_opened < self.size:
            self._postgres_opened += 1
            try:
                dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
                return await asyncpg.connect(dsn), True
            except BaseException:
                self._postgres_opened -= 1
                raise
        return await self._postgres.get(), False

    async def close(self) -> None:
        if self._sqlite is not None:
            async with self._sqlite_turn:
                self._sqlite.close()
                self._sqlite = None
        while not self._postgres.empty():
            await self._postgres.get_nowait().close(timeout=5)
