"""Lean read transactions: the hot read paths' statements, run on the driver directly.

Through an `AsyncSession` a read pays for the ORM, the greenlet bridge and, on
SQLite, several thread hops per statement: about 0.4 ms of CPU for a primary-key
lookup that SQLite answers in microseconds. The reads every page view makes
(progress, rosters, the DataLoaders' batches) are therefore SQLAlchemy Core
statements compiled once per dialect (`Query`) and run here on a connection of
a small pool of our own, in one read-only transaction per operation:

- SQLite: connections with `query_only` set, called on the event loop (a statement
  by key costs microseconds, less than a hop to a thread); `BEGIN` (deferred) gives
  the transaction one snapshot in WAL mode, and a busy database is retried
  asynchronously, never waited for inside the loop.
- PostgreSQL: asyncpg connections (prepared statements cached per connection),
  `REPEATABLE READ, READ ONLY`.

Writes never come here: they keep the `AsyncSession` and its `BEGIN IMMEDIATE` or
row locks (`Database.write()`). Values come back as the ORM would give them:
each column's type processes it (UTC-aware timestamps on both databases).
"""

import asyncio
import contextlib
import json
import logging
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import BigInteger, ColumnElement, String, bindparam, or_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

from coursepulse.models.types import UTCDateTime

log = logging.getLogger("coursepulse.reads")

#: Connections a pool opens at most; an operation holds one while it runs.
DEFAULT_POOL_SIZE = 8
#: How long a lean SQLite statement keeps retrying a busy database before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000

T = TypeVar("T")
Row = tuple[Any, ...]
StatementObserver = Callable[[str], None]


class IdList(TypeDecorator[Sequence[int]]):
    """A list of ids bound as one parameter: a JSON array on SQLite, BIGINT[] on PostgreSQL."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(BigInteger()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Sequence[int] | None, dialect: Dialect) -> Any:
        ids = [int(item) for item in value or ()]
        return ids if dialect.name == "postgresql" else json.dumps(ids)


class InIds(ColumnElement[Any]):
    """`column IN (<ids bound as one parameter>)`: one statement text for any number of ids.

    An expanding IN would compile a new statement for each list length.
    """

    type = NullType()  # a Boolean type would have SQLite compare the IN with `= 1`
    inherit_cache = False

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.name = name


def one_of(column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    """`column` equals one of a fixed set of values (bound once, at compile time)."""
    return or_(*(column == str(value) for value in values))


def in_ids(column: Any, name: str) -> InIds:
    """The condition `column IN (:name)` for a list of ids passed as `name`."""
    return InIds(column, name)


@compiles(InIds, "sqlite")
def _in_ids_sqlite(element: InIds, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    values = compiler.process(bindparam(element.name, type_=IdList()), **kw)
    return f"{column} IN (SELECT value FROM json_each({values}))"  # noqa: S608  (compiled SQL)


@compiles(InIds, "postgresql")
def _in_ids_postgresql(element: InIds, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    values = compiler.process(bindparam(element.name, type_=IdList()), **kw)
    return f"{column} = ANY({values})"


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    #: Values bound in the statement itself (constants), by parameter name.
    constants: dict[str, Any]
    binds: tuple[Callable[[Any], Any] | None, ...]
    results: tuple[Callable[[Any], Any] | None, ...]
    processes_results: bool

    def arguments(self, params: dict[str, Any]) -> tuple[Any, ...]:
        values = {**self.constants, **params} if self.constants else params
        return tuple(
            bind(values[name]) if bind is not None else values[name]
            for name, bind in zip(self.names, self.binds, strict=True)
        )

    def row(self, raw: Sequence[Any]) -> Row:
        if not self.processes_results:
            return tuple(raw)
        return tuple(
            value if process is None or value is None else process(value)
            for process, value in zip(self.results, raw, strict=True)
        )


class Query:
    """A Core statement with named `bindparam`s, compiled once per dialect."""

    __slots__ = ("_compiled", "statement", "unbounded")

    def __init__(self, statement: Executable, *, unbounded: bool = False) -> None:
        self.statement = statement
        #: True when its cost grows with the data (a scan, a sort, a count): on SQLite it
        #: then runs in a thread instead of on the event loop.
        self.unbounded = unbounded
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return found


def _sqlite_utc(value: str) -> datetime:
    """A timestamp as SQLite keeps it (naive UTC text), aware: what UTCDateTime gives."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column type's own converter; one C call for SQLite timestamps instead of two layers."""
    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        return _sqlite_utc
    return type_._cached_result_processor(dialect, None)


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    if any(bind.expanding for bind in compiled.binds.values()):
        raise ValueError("expanding IN is not supported here: use in_ids() or one_of()")
    names = tuple(compiled.positiontup or ())
    constants = {
        name: bind.value
        for name, bind in compiled.binds.items()
        if bind.value is not None or bind.callable is not None
    }
    processors = compiled._bind_processors
    results = tuple(_result_processor(column.type, dialect) for column in compiled._result_columns)
    return _Compiled(
        sql=str(compiled),
        names=names,
        constants={name: value for name, value in constants.items() if name in names},
        binds=tuple(processors.get(name) for name in names),
        results=results,
        processes_results=any(process is not None for process in results),
    )


class ReadTransaction(ABC):
    """One read-only transaction: every statement sees the same snapshot.

    Statements run one at a time; once the transaction has ended, using it raises.
    """

    def __init__(
        self, dialect: Dialect, observers: list[StatementObserver], connection: Any = None
    ) -> None:
        self.dialect = dialect
        self._observers = observers
        #: The driver connection the statements run on (None when another layer owns it).
        self.connection = connection
        self._turn = asyncio.Lock()
        self.ended = False

    async def all(self, query: Query, **params: Any) -> list[Row]:
        """Every row of the query, each column processed by its type."""
        compiled = query.compiled(self.dialect)
        for observe in self._observers:
            observe(compiled.sql)
        arguments = compiled.arguments(params)
        async with self._turn:
            if self.ended:
                raise RuntimeError("this read transaction has ended")
            raw = await self._fetch(compiled.sql, arguments, offload=query.unbounded)
        return [compiled.row(item) for item in raw]

    async def first(self, query: Query, **params: Any) -> Row | None:
        """The first row, or None."""
        rows = await self.all(query, **params)
        return rows[0] if rows else None

    @abstractmethod
    async def _fetch(
        self, sql: str, arguments: tuple[Any, ...], *, offload: bool = False
    ) -> Sequence[Sequence[Any]]: ...


class ReadPool(ABC):
    """Connections for read transactions, opened on demand up to `size`."""

    def __init__(self, dialect: Dialect, size: int) -> None:
        self.dialect = dialect
        self.size = size
        #: Called with each statement's SQL (statement-count tests, benchmarks).
        self.observers: list[StatementObserver] = []
        self._idle: list[Any] = []
        #: One slot per connection in use; a slot freed (returned or dropped) wakes a waiter.
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def begin(self) -> ReadTransaction:
        """A read transaction on a pooled connection; give it back with `end`.

        An idle connection that fails to begin (the server restarted or dropped it)
        is discarded and the next one tried; a newly opened one that fails raises.
        """
        await self._slots.acquire()
        try:
            while True:
                connection, fresh = await self._checkout()
                for observe in self.observers:
                    observe("BEGIN")
                try:
                    return await self._begin(connection)
                except Exception:
                    await self._close_quietly(connection)
                    if fresh:
                        raise
                    log.info("replacing a read connection that went stale", exc_info=True)
                except BaseException:
                    await self._close_quietly(connection)
                    raise
        except BaseException:
            self._slots.release()
            raise

    async def end(self, transaction: ReadTransaction) -> None:
        """Roll the transaction back and return its connection (dropped if it broke)."""
        connection = transaction.connection
        try:
            async with transaction._turn:  # a statement still running finishes first
                transaction.ended = True
                await self._rollback(connection)
        except Exception:
            # Nothing was written; a connection that cannot roll back is broken: drop it.
            log.warning("dropping a read connection that failed to roll back", exc_info=True)
            await self._close_quietly(connection)
        except BaseException:
            await self._close_quietly(connection)
            raise
        else:
            if self._closed:
                await self._close_quietly(connection)
            else:
                self._idle.append(connection)
        finally:
            self._slots.release()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await self._close_quietly(connection)

    async def _checkout(self) -> tuple[Any, bool]:
        """An idle connection, or a new one (True): a slot is already held."""
        if self._closed:
            raise RuntimeError("the read pool is closed")
        if self._idle:
            return self._idle.pop(), False
        return await self._open(), True

    async def _close_quietly(self, connection: Any) -> None:
        # A broken connection may fail to close; it is dropped either way.
        with contextlib.suppress(Exception):
            await self._close_connection(connection)

    @abstractmethod
    async def _open(self) -> Any: ...

    @abstractmethod
    async def _begin(self, connection: Any) -> ReadTransaction: ...

    @abstractmethod
    async def _rollback(self, connection: Any) -> None: ...

    @abstractmethod
    async def _close_connection(self, connection: Any) -> None: ...


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


async def sqlite_without_waiting(call: Callable[[], T], *, in_thread: bool = False) -> T:
    """`call()` on the event loop (or in a thread); when SQLite is busy, retry later.

    SQLite answers an indexed statement in microseconds, less than a hop to a thread
    costs, so the lean path calls it directly. Its connections have no busy timeout
    (which would sleep inside the event loop): a busy database is retried here after
    an asynchronous pause, for up to SQLITE_BUSY_TIMEOUT_MS in all.
    """
    delay = 0.001
    waited = 0.0
    while True:
        try:
            return await asyncio.to_thread(call) if in_thread else call()
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or waited * 1000 >= SQLITE_BUSY_TIMEOUT_MS:
                raise
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 0.05)


class _SqliteTransaction(ReadTransaction):
    connection: sqlite3.Connection

    async def _fetch(
        self, sql: str, arguments: tuple[Any, ...], *, offload: bool = False
    ) -> Sequence[Sequence[Any]]:
        def run() -> list[Any]:
            return self.connection.execute(sql, arguments).fetchall()

        if offload:
            # A statement whose cost grows with the data runs in a thread (SQLite lets
            # the event loop go on meanwhile); the transaction's turn keeps it alone.
            return await sqlite_without_waiting(run, in_thread=True)
        return await sqlite_without_waiting(run)


def open_sqlite(path: str, *, read_only: bool) -> sqlite3.Connection:
    """A connection for the lean path: autocommit (we issue BEGIN), no busy timeout."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout=0")
    connection.execute("PRAGMA foreign_keys=ON")
    if read_only:
        connection.execute("PRAGMA query_only=1")
    return connection


class SqliteReadPool(ReadPool):
    """SQLite connections that may only read (`PRAGMA query_only`), used on the event loop.

    Only bounded, indexed statements belong here (a page, a few rows by key): each runs
    to completion on the event loop. In WAL mode readers do not wait for writers.
    """

    def __init__(self, dialect: Dialect, path: str, size: int = DEFAULT_POOL_SIZE) -> None:
        super().__init__(dialect, size)
        self.path = path

    async def _open(self) -> sqlite3.Connection:
        return open_sqlite(self.path, read_only=True)

    async def _begin(self, connection: sqlite3.Connection) -> ReadTransaction:
        connection.execute("BEGIN")  # deferred: the first read takes the snapshot
        return _SqliteTransaction(self.dialect, self.observers, connection)

    async def _rollback(self, connection: sqlite3.Connection) -> None:
        connection.execute("ROLLBACK")

    async def _close_connection(self, connection: sqlite3.Connection) -> None:
        connection.close()


class PostgresTransaction(ReadTransaction):
    """Statements on one asyncpg connection (read-only here, read-write in writes.py)."""

    connection: asyncpg.Connection

    async def _fetch(
        self, sql: str, arguments: tuple[Any, ...], *, offload: bool = False
    ) -> Sequence[Sequence[Any]]:
        return await self.connection.fetch(sql, *arguments)


class PostgresReadPool(ReadPool):
    """asyncpg connections; each transaction is REPEATABLE READ, READ ONLY."""

    def __init__(self, dialect: Dialect, dsn: str, size: int = DEFAULT_POOL_SIZE) -> None:
        super().__init__(dialect, size)
        self.dsn = dsn

    async def _open(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn)

    async def _begin(self, connection: asyncpg.Connection) -> ReadTransaction:
        await connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return PostgresTransaction(self.dialect, self.observers, connection)

    async def _rollback(self, connection: asyncpg.Connection) -> None:
        await connection.execute("ROLLBACK")

    async def _close_connection(self, connection: asyncpg.Connection) -> None:
        await connection.close(timeout=5)


def create_read_pool(url: URL, dialect: Dialect, size: int = DEFAULT_POOL_SIZE) -> ReadPool:
    """The read pool for the database the engine's URL names."""
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return PostgresReadPool(dialect, dsn, size)
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:"):
            raise ValueError(
                "an in-memory SQLite database cannot be shared by the service's connections;"
                " use a file, e.g. sqlite+aiosqlite:///coursepulse.db"
            )
        return SqliteReadPool(dialect, path, size)
    raise ValueError(f"unsupported database: {url.get_backend_name()}")
