"""Engine and session helpers for SQLite (embedded default) and PostgreSQL.

Every unit of work is one transaction: `Database.write()` for anything that
changes rows, `Database.read()` for queries. On SQLite a write transaction
starts with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout instead
of failing when a read transaction tries to upgrade to a write.
"""

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import bindparam, event, func, select, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from coursepulse.models.access import ACCESS_CHANNEL, ACCESS_NOTICES, AccessNotice
from coursepulse.models.reads import Query, ReadPool, ReadTransaction, create_read_pool
from coursepulse.models.writes import Writer, WriteTransaction

T = TypeVar("T")

_WRITE_OPTION = "coursepulse_write"
#: PostgreSQL channel on which writes announce courses with new progress events.
NOTIFY_CHANNEL = "coursepulse_progress"
#: Session.info key: ids of courses whose event log this transaction appended to.
EVENT_COURSES = "coursepulse.event_courses"
SQLITE_BUSY_TIMEOUT_MS = 30_000
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
    Drivers' errors arrive wrapped (SQLAlchemy, its asyncpg adapter): the chain is read."""
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


def create_engine(database_url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine for the URL, with SQLite connections set up for concurrent use."""
    url = make_url(database_url)
    kwargs: dict[str, Any] = {"echo": echo}
    if url.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Database:
    """The engine and the two kinds of transaction the service uses."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(
            engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )
        #: Called with the courses that have new events, after each write commits.
        self.after_commit: list[Callable[[set[int]], None]] = []
        #: Called with the access changes (models/access.py) of each write, after it commits.
        self.after_access_change: list[Callable[[list[AccessNotice]], None]] = []
        #: Names this Database in its NOTIFY payloads, so it can skip hearing its own.
        self.origin = secrets.token_hex(6)
        self._reads: ReadPool | None = None
        self._writer: Writer | None = None
        #: True from a write that failed because the database could not take it until
        #: one succeeds again (readiness probes answer 503 meanwhile).
        self.writes_failing = False

    @asynccontextmanager
    async def _watching_writes(self) -> AsyncIterator[None]:
        """Records whether writes reach the database (see `writes_failing`)."""
        try:
            yield
        except BaseException as error:
            if is_unavailable(error):
                self.writes_failing = True
            raise
        self.writes_failing = False

    @property
    def reads(self) -> ReadPool:
        """The pool of lean read transactions (models/reads.py), opened on first use."""
        if self._reads is None:
            self._reads = create_read_pool(self.engine.url, self.engine.dialect)
        return self._reads

    @classmethod
    def from_url(cls, database_url: str, *, echo: bool = False) -> "Database":
        return cls(create_engine(database_url, echo=echo))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for queries; its transaction is rolled back at the end."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block ends without error.

        Courses whose event log grew are announced: by NOTIFY inside the
        transaction on PostgreSQL (heard only once committed), and to the
        `after_commit` callbacks of this process.
        """
        async with self._watching_writes(), self._write_sessions() as session:
            async with session.begin():
                yield session
                courses: set[int] = session.info.pop(EVENT_COURSES, set())
                if courses and self.dialect == "postgresql":
                    for course_id in sorted(courses):
                        await session.execute(
                            text("SELECT pg_notify(:channel, :payload)"),
                            {"channel": NOTIFY_CHANNEL, "payload": str(course_id)},
                        )
                notices = await self._announce_access_changes(session)
            for callback in self.after_commit:
                if courses:
                    callback(courses)
            if notices:
                for access_callback in self.after_access_change:
                    access_callback(notices)

    async def _announce_access_changes(self, session: AsyncSession) -> list[AccessNotice]:
        """The session's access notices, sent by NOTIFY in its transaction on PostgreSQL."""
        notices: list[AccessNotice] = session.info.pop(ACCESS_NOTICES, [])
        if notices and self.dialect == "postgresql":
            for notice in notices:
                await session.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": ACCESS_CHANNEL, "payload": notice.encode(self.origin)},
                )
        return notices

    @property
    def writer(self) -> Writer:
        """The lean write path (models/writes.py), opened on first use."""
        if self._writer is None:
            self._writer = Writer(self.engine.url, self.engine.dialect)
        return self._writer

    async def change(self, work: Callable[[WriteTransaction], Awaitable[T]]) -> T:
        """`work` in one lean write transaction; its courses' new events are announced
        as `write()` does: NOTIFY inside the transaction, `after_commit` after it."""

        async def notify(transaction: WriteTransaction) -> None:
            if self.dialect == "postgresql":
                for course_id in sorted(transaction.event_courses):
                    await transaction.execute(
                        _NOTIFY, channel=NOTIFY_CHANNEL, payload=str(course_id)
                    )

        async with self._watching_writes():
            transaction, result = await self.writer.run(work, notify)
        if transaction.event_courses:
            for callback in self.after_commit:
                callback(set(transaction.event_courses))
        return result

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[ReadTransaction]:
        """A lean read transaction (models/reads.py) for the block."""
        transaction = await self.reads.begin()
        try:
            yield transaction
        finally:
            await self.reads.end(transaction)

    def shared_reader(self) -> "SharedReader":
        """One read transaction for a whole GraphQL operation (see `SharedReader`)."""
        return SharedReader(self)

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query (and, after a write failed
        for want of the database, unless it takes a write transaction again)."""
        if not self.writes_failing:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return
        async with self.write() as session:
            if self.dialect == "postgresql":
                # A replica, or a server set read-only (as done when a disk fills up).
                if await session.scalar(text("SHOW transaction_read_only")) == "on":
                    raise RuntimeError("the database takes no writes (read-only)")
            else:
                # BEGIN IMMEDIATE took the write lock; a write shows a read-only file.
                await session.execute(text("PRAGMA user_version = 0"))

    async def dispose(self) -> None:
        if self._reads is not None:
            await self._reads.close()
        if self._writer is not None:
            await self._writer.close()
        await self.engine.dispose()


class SharedReader:
    """A read session shared by the resolvers and DataLoaders of one operation.

    One transaction means one consistent view of the data (a percentage and the
    lessons it counts agree) and one BEGIN instead of one per batch. The hot reads
    use the lean transaction (`reads()`); the rest use the ORM `session()`. Each is
    opened on first use; the session is used by one caller at a time.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._session: AsyncSession | None = None
        self._lock = asyncio.Lock()
        self._reads: ReadTransaction | None = None
        self._reads_lock = asyncio.Lock()

    async def reads(self) -> ReadTransaction:
        """The operation's lean read transaction (models/reads.py), begun on first use."""
        if self._reads is None:
            async with self._reads_lock:
                if self._reads is None:
                    self._reads = await self._db.reads.begin()
        return self._reads

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._lock:
            if self._session is None:
                self._session = self._db._sessions()
            yield self._session

    async def close(self) -> None:
        """End the transaction; the next use opens a new one (and sees newer commits)."""
        async with self._lock:
            session, self._session = self._session, None
        async with self._reads_lock:
            reads, self._reads = self._reads, None
        try:
            if reads is not None:
                await self._db.reads.end(reads)
        finally:
            if session is not None:
                await session.close()
