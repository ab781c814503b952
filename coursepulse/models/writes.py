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
    PostgresTransaction,
    Query,
    ReadTransaction,
    StatementObserver,
    open_sqlite,
    sqlite_without_waiting,
)

log = logging.getLogger("coursepulse.writes")
#: Commits between two write-ahead log checkpoints of the SQLite write connection.
CHECKPOINT_EVERY = 500


class WriteTransaction(ReadTransaction):
    """A read-write transaction; `first`/`all` run any compiled statement (RETURNING too)."""

    def __init__(
        self, dialect: Dialect, observers: list[StatementObserver], connection: Any = None
    ) -> None:
        super().__init__(dialect, observers, connection)
        #: Courses whose event log this transaction appended to (announced after commit).
        self.event_courses: set[int] = set()

    async def execute(self, query: Query, **params: Any) -> None:
        """Run a statement that returns no rows."""
        await self.all(query, **params)


class _SqliteWrite(WriteTransaction):
    connection: sqlite3.Connection

    async def _fetch(
        self, sql: str, arguments: tuple[Any, ...], *, offload: bool = False
    ) -> Sequence[Sequence[Any]]:
        # Keys only, under the write lock: never given to a thread, never yielding.
        return self.connection.execute(sql, arguments).fetchall()


class _PostgresWrite(PostgresTransaction, WriteTransaction):
    """The read path's asyncpg statements, in a read-write transaction."""


class SessionTransaction(WriteTransaction):
    """The lean statements inside an ORM session's transaction (`write()` or `read()`).

    Lets a rule written once on `ReadTransaction`/`WriteTransaction` serve the ORM paths
    too. Pending ORM changes are flushed before each statement, so both see the same rows.
    """

    def __init__(self, session: AsyncSession) -> None:
        assert session.bind is not None
        super().__init__(session.bind.dialect, [])
        self.session = session

    async def _fetch(
        self, sql: str, arguments: tuple[Any, ...], *, offload: bool = False
    ) -> Sequence[Sequence[Any]]:
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
        self._sqlite_commits = 0
        self._postgres_idle: list[asyncpg.Connection] = []
        #: One slot per PostgreSQL connection in use; a freed slot wakes a waiter.
        self._postgres_slots = asyncio.Semaphore(size)

    async def run(
        self,
        work: Callable[[WriteTransaction], Any],
        notify: Callable[[WriteTransaction], Any] | None = None,
    ) -> Any:
        """`await work(transaction)` in one transaction, committed when it returns.

        `notify(transaction)` runs just before COMMIT (PostgreSQL's NOTIFY is
        transactional); an exception rolls everything back and propagates.
        Returns (transaction, what `work` returned).
        """
        if self.dialect.name == "sqlite":
            return await self._run_sqlite(work, notify)
        async with self._postgres_slots:
            return await self._run_postgres(work, notify)

    def _observe(self, sql: str) -> None:
        for observe in self.observers:
            observe(sql)

    def _sqlite_connection(self) -> sqlite3.Connection:
        if self._sqlite is None:
            connection = open_sqlite(self.url.database or "", read_only=False)
            connection.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints copy the log into the database file and fsync: done in a thread
            # (`_checkpoint`), never at COMMIT on the event loop.
            connection.execute("PRAGMA wal_autocheckpoint=0")
            self._sqlite = connection
        return self._sqlite

    async def _run_sqlite(self, work: Callable[..., Any], notify: Callable[..., Any] | None) -> Any:
        async with self._sqlite_turn:
            connection = self._sqlite_connection()
            self._observe("BEGIN IMMEDIATE")
            await sqlite_without_waiting(lambda: connection.execute("BEGIN IMMEDIATE"))
            transaction = _SqliteWrite(self.dialect, self.observers, connection)
            try:
                result = await work(transaction)
                if notify is not None:
                    await notify(transaction)
                await sqlite_without_waiting(lambda: connection.execute("COMMIT"))
            except BaseException:
                self._sqlite_rollback(connection)
                raise
            self._sqlite_commits += 1
            if self._sqlite_commits % CHECKPOINT_EVERY == 0:
                await self._checkpoint(connection)
            return transaction, result

    def _sqlite_rollback(self, connection: sqlite3.Connection) -> None:
        """Roll back; a connection that cannot is closed, so it never keeps the write lock."""
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("closing the write connection, which failed to roll back", exc_info=True)
            with contextlib.suppress(sqlite3.Error):
                connection.close()
            self._sqlite = None

    async def _checkpoint(self, connection: sqlite3.Connection) -> None:
        """Move the write-ahead log into the database file, in a thread."""
        try:
            await asyncio.to_thread(connection.execute, "PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            log.warning("a write-ahead log checkpoint failed", exc_info=True)

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
                self._postgres_idle.append(connection)
            else:
                connection.terminate()

    async def _begin_postgres(self) -> tuple[asyncpg.Connection, Any]:
        """A connection in a new transaction; idle ones the server dropped are replaced."""
        while True:
            fresh = not self._postgres_idle
            connection = await self._open_postgres() if fresh else self._postgres_idle.pop()
            self._observe("BEGIN")
            try:
                block = connection.transaction()
                await block.start()
            except Exception:
                connection.terminate()
                if fresh:
                    raise
                log.info("replacing a write connection that went stale", exc_info=True)
                continue
            except BaseException:
                connection.terminate()
                raise
            return connection, block

    async def _open_postgres(self) -> asyncpg.Connection:
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return await asyncpg.connect(dsn)

    async def close(self) -> None:
        if self._sqlite is not None:
            async with self._sqlite_turn:
                if self._sqlite is not None:
                    self._sqlite.close()
                    self._sqlite = None
        idle, self._postgres_idle = self._postgres_idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                await connection.close(timeout=5)
