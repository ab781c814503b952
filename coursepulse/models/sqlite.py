"""SQLite, the embedded default: transactions on the standard library's driver.

Statements run on the event loop: SQLite answers a statement by key in microseconds,
less than a hop to aiosqlite's thread costs (`bench/sqlite_driver.py` measures it; the
README gives the figures). A statement whose cost grows with the data
(`Query(unbounded=True)`) runs in a thread instead, so the loop goes on meanwhile.
Connections have no busy timeout, which would sleep inside the loop: a busy database
is retried after an asynchronous pause (`without_waiting`).

- Reads: connections with `query_only` set; `BEGIN` (deferred) gives the transaction
  one snapshot in WAL mode, and readers never wait for writers.
- Writes: one connection per process. Writers of this process take turns (first
  come, first served), then `BEGIN IMMEDIATE` takes the database's write lock (retried while
  another process holds it), so a read is never upgraded to a write halfway.
  Checkpoints of the write-ahead log run in a thread every CHECKPOINT_EVERY commits.
"""

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

from coursepulse.models.slots import ConnectionUse, Slots
from coursepulse.models.sql import Query
from coursepulse.models.transactions import StatementObserver, Transaction

log = logging.getLogger("coursepulse.sqlite")

T = TypeVar("T")
#: How long a statement keeps retrying a busy database before giving up.
BUSY_TIMEOUT_MS = 30_000
#: Read connections open at most; a read transaction holds one while it runs.
READ_CONNECTIONS = 8
#: Commits between two write-ahead log checkpoints.
CHECKPOINT_EVERY = 500
_SELECT_ONE = text("SELECT 1")
#: A write to the file's header: fails on a read-only file.
_USER_VERSION_WRITE = text("PRAGMA user_version = 0")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


async def without_waiting(call: Callable[[], T], *, in_thread: bool = False) -> T:
    """`call()` on the event loop (or in a thread); while SQLite is busy, retried later."""
    delay = 0.001
    waited = 0.0
    while True:
        try:
            return await asyncio.to_thread(call) if in_thread else call()
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or waited * 1000 >= BUSY_TIMEOUT_MS:
                raise
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.05)


def connect(path: str, *, read_only: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (BEGIN is ours to issue), without a busy timeout."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout=0")
    connection.execute("PRAGMA foreign_keys=ON")
    if read_only:
        connection.execute("PRAGMA query_only=1")
    else:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints copy the log into the database file and fsync: done in a thread
        # (`SqliteDriver.committed`), never at COMMIT on the event loop.
        connection.execute("PRAGMA wal_autocheckpoint=0")
    return connection


class SqliteTransaction(Transaction):
    """A transaction on a read connection of the pool, or on the process's write connection."""

    _integrity_errors = (sqlite3.IntegrityError,)

    def __init__(
        self, driver: "SqliteDriver", *, writing: bool, one_statement: bool = False
    ) -> None:
        super().__init__(
            driver.dialect, driver.observers, writing=writing, one_statement=one_statement
        )
        self._driver = driver
        self._connection: sqlite3.Connection | None = None
        #: True while a statement runs (in a thread, a cancelled wait leaves it running).
        self._fetching = False

    async def _begin(self, first: Query) -> None:
        if self.writing:
            self._connection = await self._driver.take_writer()
            connection = self._connection
            self._observe("BEGIN IMMEDIATE")
            try:
                await without_waiting(lambda: connection.execute("BEGIN IMMEDIATE"))
            except BaseException:
                self._driver.give_back_writer(connection, broken=False)
                raise
            return
        self._connection = await self._driver.take_reader()
        if self.one_statement:
            return  # autocommit: the statement is its own snapshot
        self._observe("BEGIN")
        try:
            self._connection.execute("BEGIN")  # deferred: the first read takes the snapshot
        except BaseException:
            self._driver.give_back_reader(self._connection, broken=True)
            raise

    async def _plan_per_run(self) -> None:
        """Nothing to ask: SQLite's plan of a statement is the same for every value of its
        parameters (the plans tests/test_roster_plans.py reads)."""

    async def _fetch(
        self, sql: str, arguments: tuple[Any, ...], *, offload: bool
    ) -> Sequence[Sequence[Any]]:
        connection = self._connection
        assert connection is not None

        def run() -> list[Any]:
            return connection.execute(sql, arguments).fetchall()

        self._fetching = True
        try:
            rows = await without_waiting(run, in_thread=offload)
        except asyncio.CancelledError:
            raise  # the statement may still run in its thread (see `_finish`)
        except BaseException:
            self._fetching = False
            raise
        self._fetching = False
        return rows

    async def _finish(self, *, commit: bool) -> None:
        connection = self._connection
        assert connection is not None
        if self.writing:
            await self._finish_write(connection, commit=commit)
            return
        if self._fetching:
            # Cancelled while a thread ran its statement, which may still be running: the
            # connection is not handed to another reader.
            self._driver.give_back_reader(connection, broken=True)
            return
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("dropping a read connection that failed to roll back", exc_info=True)
            self._driver.give_back_reader(connection, broken=True)
        else:
            self._driver.give_back_reader(connection, broken=False)

    async def _finish_write(self, connection: sqlite3.Connection, *, commit: bool) -> None:
        try:
            if commit:
                await without_waiting(lambda: connection.execute("COMMIT"))
                await self._driver.committed(connection)
                self._driver.give_back_writer(connection, broken=False)
                return
        except BaseException:
            self._rollback_write(connection)
            raise
        self._rollback_write(connection)

    def _rollback_write(self, connection: sqlite3.Connection) -> None:
        """Roll back; a connection that cannot is closed, so it never keeps the write lock."""
        try:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("closing the write connection, which failed to roll back", exc_info=True)
            self._driver.give_back_writer(connection, broken=True)
        else:
            self._driver.give_back_writer(connection, broken=False)


class SqliteDriver:
    """The connections of one SQLite database file."""

    def __init__(self, path: str, observers: list[StatementObserver]) -> None:
        if path in ("", ":memory:"):
            raise ValueError(
                "an in-memory SQLite database cannot be shared by the service's connections;"
                " use a file, e.g. sqlite+aiosqlite:///coursepulse.db"
            )
        self.path = path
        self.dialect = SQLiteDialect_aiosqlite()
        self.observers = observers
        self._idle_readers: list[sqlite3.Connection] = []
        self._reader_slots = Slots(READ_CONNECTIONS)
        self._writer: sqlite3.Connection | None = None
        #: This process's writers take turns at the one write connection.
        self._writer_turn = Slots(1)
        self._commits = 0
        self._closed = False
        self.read_connections = READ_CONNECTIONS

    def connection_use(self) -> ConnectionUse:
        """The read connections and the write connection together."""
        readers, writer = self._reader_slots.use(), self._writer_turn.use()
        return ConnectionUse(
            readers.size + writer.size,
            readers.in_use + writer.in_use,
            readers.waiting + writer.waiting,
        )

    def transaction(self, *, writing: bool, one_statement: bool = False) -> SqliteTransaction:
        return SqliteTransaction(self, writing=writing, one_statement=one_statement)

    async def take_reader(self) -> sqlite3.Connection:
        """A read connection (idle or new); `give_back_reader` frees its slot."""
        await self._reader_slots.take()
        try:
            if self._closed:
                raise RuntimeError("the database has been closed")
            if self._idle_readers:
                return self._idle_readers.pop()
            return connect(self.path, read_only=True)
        except BaseException:
            self._reader_slots.give_back()
            raise

    def give_back_reader(self, connection: sqlite3.Connection, *, broken: bool) -> None:
        if broken or self._closed:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
        else:
            self._idle_readers.append(connection)
        self._reader_slots.give_back()

    async def take_writer(self) -> sqlite3.Connection:
        """The write connection, this process's writers taking turns."""
        await self._writer_turn.take()
        try:
            if self._closed:
                raise RuntimeError("the database has been closed")
            if self._writer is None:
                self._writer = connect(self.path, read_only=False)
            return self._writer
        except BaseException:
            self._writer_turn.give_back()
            raise

    def give_back_writer(self, connection: sqlite3.Connection, *, broken: bool) -> None:
        if broken or self._closed:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
            if self._writer is connection:
                self._writer = None
        self._writer_turn.give_back()

    async def committed(self, connection: sqlite3.Connection) -> None:
        """Counts commits; every CHECKPOINT_EVERY, moves the log into the file (in a thread)."""
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY:
            return
        try:
            await asyncio.to_thread(connection.execute, "PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            log.warning("a write-ahead log checkpoint failed", exc_info=True)

    async def ping(self, *, write: bool) -> None:
        """Raise unless the file answers a read (and, with `write`, takes a write)."""
        transaction = self.transaction(writing=write)
        try:
            if write:
                # BEGIN IMMEDIATE took the write lock; a write shows a read-only file.
                await transaction.execute(_USER_VERSION_WRITE)
            else:
                await transaction.execute(_SELECT_ONE)
            await transaction.end(commit=write)
        finally:
            await transaction.end(commit=False)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle_readers = self._idle_readers, []
        for connection in idle:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
        await self._writer_turn.take()
        try:
            if self._writer is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._writer.close()
                self._writer = None
        finally:
            self._writer_turn.give_back()
