"""The database's two doors: `async with db.read() as tx` and `async with db.write() as tx`.

Both yield a `Transaction` (models/transactions.py). A write commits when its block
ends without an error and rolls back otherwise; a read always rolls back. What a
committed write announces is sent here, once: the courses whose event log grew
(`NOTIFY_CHANNEL`) and the access changes (`ACCESS_CHANNEL`), by NOTIFY inside the
transaction on PostgreSQL (heard only if it commits), then to this process's
`after_commit` and `after_access_change` callbacks.

The driver is chosen by dialect: models/sqlite.py or models/postgres.py.
"""

import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar

import asyncpg
from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from coursepulse.models.access import ACCESS_CHANNEL, AccessNotice
from coursepulse.models.postgres import PLAN_CACHE_MODE, POOL_SIZE, PostgresDriver
from coursepulse.models.slots import ConnectionUse
from coursepulse.models.sql import Query
from coursepulse.models.sqlite import SqliteDriver
from coursepulse.models.transactions import StatementObserver, Transaction

#: PostgreSQL channel on which writes announce courses with new progress events.
NOTIFY_CHANNEL = "coursepulse_progress"
_NOTIFY = Query(select(func.pg_notify(bindparam("channel"), bindparam("payload"))))

_UNAVAILABLE = (
    OSError,
    sqlite3.OperationalError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.AdminShutdownError,
)


def is_unavailable(error: BaseException | None) -> bool:
    """Whether the error says the database cannot be reached or cannot write (down,
    refusing connections, read-only, out of disk), as opposed to a refused statement.
    Drivers' errors may arrive wrapped (SQLAlchemy's): the chain is read."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, IntegrityError):
            return False
        if isinstance(error, _UNAVAILABLE):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        error = getattr(error, "orig", None) or error.__cause__
        seen += 1
    return False


_sql_log = logging.getLogger("coursepulse.sql")

#: True in background work (the webhook worker): statement observers can tell its statements
#: from those of requests (statement counts are per request).
BACKGROUND_WORK: ContextVar[bool] = ContextVar("background_work", default=False)


def _echo(sql: str) -> None:
    _sql_log.info("%s", sql)


class ReadScope(AbstractAsyncContextManager[Transaction]):
    """`async with db.read() as tx`: the read transaction, rolled back as the block ends
    (a class rather than a generator: every request opens one)."""

    __slots__ = ("transaction",)

    def __init__(self, transaction: Transaction) -> None:
        self.transaction = transaction

    async def __aenter__(self) -> Transaction:
        return self.transaction

    async def __aexit__(self, *_exception: object) -> None:
        await self.transaction.end(commit=False)


class Database:
    """The service's database: read and write transactions, and their announcements."""

    def __init__(
        self,
        url: str | URL,
        *,
        pool_size: int | None = None,
        plan_cache_mode: str = PLAN_CACHE_MODE,
    ) -> None:
        #: The URL it was opened with (migrations and the LISTEN connection use it too).
        self.url = make_url(url)
        #: Called with each statement's SQL (statement-count tests, benchmarks).
        self.observers: list[StatementObserver] = []
        backend = self.url.get_backend_name()
        self._driver: SqliteDriver | PostgresDriver
        if backend == "sqlite":
            self._driver = SqliteDriver(self.url.database or "", self.observers)
        elif backend == "postgresql":
            self._driver = PostgresDriver(
                self.url,
                self.observers,
                pool_size=pool_size or POOL_SIZE,
                plan_cache_mode=plan_cache_mode,
            )
        else:
            raise ValueError(f"unsupported database: {backend}")
        #: "sqlite" or "postgresql".
        self.dialect: str = self._driver.dialect.name
        #: Called with the courses that have new events, after each write commits.
        self.after_commit: list[Callable[[set[int]], None]] = []
        #: Called with how many events of each kind each write appended, after it commits.
        self.after_events: list[Callable[[Mapping[str, int]], None]] = []
        #: Called with the access changes (models/access.py) of each write, after it commits.
        self.after_access_change: list[Callable[[list[AccessNotice]], None]] = []
        #: Names this Database in its NOTIFY payloads, so it can skip hearing its own.
        self.origin = secrets.token_hex(6)
        #: True from a write that failed because the database could not take it until
        #: one succeeds again (readiness probes answer 503 meanwhile).
        self.writes_failing = False

    @property
    def read_connections(self) -> int:
        """How many read transactions can hold a connection at once; more wait their turn."""
        return self._driver.read_connections

    def connection_use(self) -> ConnectionUse:
        """This process's connections to the database: how many, held, waited for."""
        return self._driver.connection_use()

    @classmethod
    def from_url(
        cls,
        database_url: str,
        *,
        echo: bool = False,
        pool_size: int | None = None,
        plan_cache_mode: str = PLAN_CACHE_MODE,
    ) -> "Database":
        """The database at the URL; `echo` logs every statement (logger coursepulse.sql);
        `pool_size`: PostgreSQL connections held at most (SQLite has its own);
        `plan_cache_mode`: how PostgreSQL plans the pool's statements."""
        database = cls(database_url, pool_size=pool_size, plan_cache_mode=plan_cache_mode)
        if echo:
            database.observers.append(_echo)
        return database

    def read(self, *, one_statement: bool = False) -> "ReadScope":
        """A read-only transaction, rolled back at the end: one snapshot for the block.

        With `one_statement`, a read that runs a single statement, which is its own
        snapshot: no BEGIN and no ROLLBACK (two round trips on PostgreSQL); a second
        statement raises `SnapshotNeeded`.
        """
        return ReadScope(self._driver.transaction(writing=False, one_statement=one_statement))

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Transaction]:
        """A transaction committed when the block ends without an error (see the module)."""
        transaction = self._driver.transaction(writing=True)
        try:
            try:
                yield transaction
                await self._notify(transaction)
                await transaction.end(commit=True)
            finally:
                await transaction.end(commit=False)
        except BaseException as error:
            if is_unavailable(error):
                self.writes_failing = True
            raise
        self.writes_failing = False
        if transaction.event_courses:
            for callback in self.after_commit:
                callback(set(transaction.event_courses))
        if transaction.event_kinds:
            for count in self.after_events:
                count(transaction.event_kinds)
        if transaction.access_notices:
            for access_callback in self.after_access_change:
                access_callback(list(transaction.access_notices))

    async def _notify(self, transaction: Transaction) -> None:
        """NOTIFY what the transaction announces, inside it (PostgreSQL)."""
        if self.dialect != "postgresql":
            return
        for course_id in sorted(transaction.event_courses):
            await transaction.execute(_NOTIFY, channel=NOTIFY_CHANNEL, payload=str(course_id))
        for notice in transaction.access_notices:
            await transaction.execute(
                _NOTIFY, channel=ACCESS_CHANNEL, payload=notice.encode(self.origin)
            )

    async def ping(self) -> None:
        """Raise unless the database answers (and, after a write failed for want of the
        database, unless it takes writes again)."""
        if not self.writes_failing:
            await self._driver.ping(write=False)
            return
        await self._driver.ping(write=True)
        self.writes_failing = False

    async def dispose(self) -> None:
        await self._driver.close()
