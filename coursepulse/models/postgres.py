"""PostgreSQL, the engine for scale: transactions on connections of asyncpg's own pool.

asyncpg prepares each statement once per connection and keeps it. Reads are
`REPEATABLE READ, READ ONLY` (one snapshot for a whole operation); writes are
`READ COMMITTED`, ordered by row locks (`FOR UPDATE`, `FOR SHARE`) where rules
need it. NOTIFY sent inside a write is heard only once it commits.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, get_args

import asyncpg
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.engine import URL

from coursepulse.models.slots import ConnectionUse, Slots
from coursepulse.models.sql import Query
from coursepulse.models.transactions import StatementObserver, Transaction
from coursepulse.settings import PlanCacheMode

log = logging.getLogger("coursepulse.postgres")

#: Connections the pool opens at most, unless told otherwise (COURSEPULSE_DB_POOL_SIZE);
#: a transaction holds one while it runs.
POOL_SIZE = 10
#: How PostgreSQL plans the pool's prepared statements, unless told otherwise
#: (COURSEPULSE_DB_PLAN_CACHE_MODE): once per statement and connection, for any parameters.
#: The service's statements are short walks down indexes chosen to serve every parameter
#: value (tests/test_roster_plans.py reads these plans); left to choose (`auto`), PostgreSQL
#: plans a roster page anew on each run, because its LIMIT and OFFSET parameters make the
#: generic plan look dearer: planning then costs more than running it.
PLAN_CACHE_MODE = "force_generic_plan"
#: The values PostgreSQL's plan_cache_mode takes.
PLAN_CACHE_MODES: tuple[str, ...] = get_args(PlanCacheMode)
#: How long a connection may wait for its next transaction before it goes back to the
#: pool, which closes it after asyncpg's own idle time (an idle process lets go of its
#: connections).
IDLE_SECONDS = 60.0
#: Every this many transactions a connection goes back to the pool instead of waiting
#: beside it, so asyncpg still replaces connections that have served its max_queries.
POOL_RETURN_EVERY = 1000
#: Errors that say a pooled connection was lost (server restarted, connection cut).
_LOST = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # the server's goodbye arrived while BEGIN was sent
    asyncpg.AdminShutdownError,
    asyncpg.PostgresConnectionError,
    ConnectionError,
)


def dsn_of(url: URL) -> str:
    """asyncpg's DSN for a SQLAlchemy URL such as postgresql+asyncpg://user@host/db."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


#: How each kind of transaction begins: reads see one snapshot and change nothing.
_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_BEGIN_WRITE = "BEGIN"
#: The rest of the transaction plans each statement for its parameters (`Query.plan_per_run`).
_PLAN_PER_RUN = "SET LOCAL plan_cache_mode = force_custom_plan"
#: "on" where the server takes no writes (a replica, default_transaction_read_only).
_SHOW_READ_ONLY = text("SHOW transaction_read_only")


class PostgresTransaction(Transaction):
    """A transaction on a connection acquired from the pool at its first statement.

    BEGIN, COMMIT and ROLLBACK are sent as plain statements: the connection's own state
    (`is_in_transaction`) is then the only record of the transaction, which `_release`
    reads to hand every connection back outside any transaction.
    """

    _integrity_errors = (asyncpg.IntegrityConstraintViolationError,)

    def __init__(
        self, driver: "PostgresDriver", *, writing: bool, one_statement: bool = False
    ) -> None:
        super().__init__(
            driver.dialect, driver.observers, writing=writing, one_statement=one_statement
        )
        self._driver = driver
        self._connection: Any = None
        #: True while a statement of a `one_statement` read is under way.
        self._fetching = False
        #: True once the transaction plans its statements for each run (`Query.plan_per_run`).
        self._planning_per_run = False

    async def _begin(self, first: Query) -> None:
        if first.plan_per_run and self.one_statement and self._driver.plans_once:
            # Planned per run in a transaction of its own (SET LOCAL ends with it).
            self.one_statement = False
        # Connections go to transactions in the order they asked (see `PostgresDriver.turns`).
        await self._driver.turns.take()
        try:
            await self._take_connection()
        except BaseException:
            self._driver.turns.give_back()
            raise

    async def _take_connection(self) -> None:
        driver = self._driver
        if self.one_statement:
            self._connection = await driver.acquire()
            return
        pool = await driver.pool()
        begin = _BEGIN_WRITE if self.writing else _BEGIN_READ
        # An idle connection the server dropped fails here: it is discarded and the
        # next one tried, up to a pool's worth; a new connection that fails raises.
        for attempt in range(driver.pool_size + 1):
            connection = await driver.acquire()
            self._observe("BEGIN")
            try:
                await connection.execute(begin)
            except _LOST:
                await _discard(pool, connection)
                if attempt == self._driver.pool_size:
                    raise
                continue
            except BaseException:
                # BEGIN failed or was cancelled half-way (the operation ended meanwhile).
                await _release(pool, connection, interrupted=True)
                raise
            self._connection = connection
            return

    async def _plan_per_run(self) -> None:
        if self._driver.plans_once and not self._planning_per_run:
            # `_begin` made sure this is a transaction, whose end ends the setting.
            self._observe(_PLAN_PER_RUN)
            await self._connection.execute(_PLAN_PER_RUN)
            self._planning_per_run = True

    async def _fetch(
        self, sql: str, arguments: tuple[Any, ...], *, offload: bool
    ) -> Sequence[Sequence[Any]]:
        if self.one_statement:
            return await self._fetch_alone(sql, arguments)
        return await self._connection.fetch(sql, *arguments)

    async def _fetch_alone(self, sql: str, arguments: tuple[Any, ...]) -> Sequence[Sequence[Any]]:
        """The rows of a statement run outside any transaction. On an idle connection the
        server dropped it runs again on the next, up to a pool's worth, as BEGIN would:
        a read changes nothing."""
        pool = await self._driver.pool()
        for attempt in range(self._driver.pool_size + 1):
            self._fetching = True
            try:
                rows = await self._connection.fetch(sql, *arguments)
            except _LOST as error:
                # An argument the driver cannot encode (its DataError is a ValueError) says
                # nothing about the connection: raised as it is, never retried.
                if attempt == self._driver.pool_size or isinstance(error, ValueError):
                    self._fetching = False
                    raise
                stale, self._connection = self._connection, None
                await _discard(pool, stale)
                self._fetching = False
                self._connection = await self._driver.acquire()
                continue
            except asyncpg.PostgresError:
                self._fetching = False  # refused, and the connection is ready again
                raise
            self._fetching = False
            return rows
        raise AssertionError("unreachable")

    async def _finish(self, *, commit: bool) -> None:
        try:
            await self._end(commit=commit)
        finally:
            self._driver.turns.give_back()

    async def _end(self, *, commit: bool) -> None:
        if self.one_statement:
            # Nothing to end; a statement cut short is waited for (see `_release`).
            if self._connection is not None:
                await self._driver.give_back(self._connection, interrupted=self._fetching)
            return
        connection, ended = self._connection, False
        try:
            if commit:
                await connection.execute("COMMIT")
            elif _open(connection):  # a connection the server dropped has nothing to end
                await connection.execute("ROLLBACK")
            ended = True
        finally:
            await self._driver.give_back(connection, interrupted=not ended)


async def _discard(pool: asyncpg.Pool, connection: Any) -> None:
    """Close a connection the server dropped; the pool opens a fresh one in its place.
    (One that was lost may have gone back to the pool already.)"""
    log.info("replacing a connection that went stale", exc_info=True)
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()
        await pool.release(connection)


async def _release(pool: asyncpg.Pool, connection: Any, *, interrupted: bool = False) -> None:
    """Give the connection back to the pool, outside any transaction.

    After a BEGIN, COMMIT or ROLLBACK that failed or was cancelled half-way (as when a
    websocket closes and cancels its operations), the connection first finishes what it
    was doing and rolls back whatever it began; one that cannot is closed, and the pool
    opens a fresh one. A connection the server dropped has gone back to the pool already.
    """
    try:
        if _open(connection) and (interrupted or connection.is_in_transaction()):
            # Waits for a cancelled statement to end; harmless outside a transaction.
            await connection.execute("ROLLBACK")
    except Exception:
        log.info("closing a connection that could not roll back", exc_info=True)
        connection.terminate()
    except BaseException:  # cancelled once more while it rolled back
        connection.terminate()
        raise
    finally:
        await _return_to_pool(pool, connection)


async def _return_to_pool(pool: asyncpg.Pool, connection: Any) -> None:
    """Hand a connection back to asyncpg's pool (one the pool took back already is left)."""
    with contextlib.suppress(asyncpg.InterfaceError):
        await pool.release(connection)


def _open(connection: Any) -> bool:
    """Whether the pooled connection is still open (and ours to use)."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # the pool took back a connection that was lost
        return False


class PostgresDriver:
    """asyncpg's pool for one database, created on first use."""

    def __init__(
        self,
        url: URL,
        observers: list[StatementObserver],
        *,
        pool_size: int = POOL_SIZE,
        plan_cache_mode: str = PLAN_CACHE_MODE,
    ) -> None:
        if plan_cache_mode not in PLAN_CACHE_MODES:
            raise ValueError(f"plan_cache_mode must be one of {', '.join(PLAN_CACHE_MODES)}")
        self.dsn = dsn_of(url)
        self.pool_size = pool_size
        self.plan_cache_mode = plan_cache_mode
        #: True when the pool's statements are planned once per connection, so those that
        #: need a plan per run say so (`Query.plan_per_run`).
        self.plans_once = plan_cache_mode == "force_generic_plan"
        self.dialect = PGDialect_asyncpg()
        self.observers = observers
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        #: One turn per pooled connection, taken before asking the pool for one and given
        #: back after returning it. The semaphore serves waiters first come, first served;
        #: asyncpg's pool does not (a connection given back goes to whoever asks next, and
        #: a waiter woken too late waits again, at the end of the line): under load some
        #: requests waited a second while others passed them.
        self.turns = Slots(pool_size)
        #: Reads and writes share the pool.
        self.read_connections = pool_size
        #: Connections taken from the pool that wait, outside any transaction, for the next
        #: one (the latest given back last), each with the moment it was given back. Taking
        #: and giving back one of these is a list operation: asyncpg's own release shields
        #: a task and arms a timeout each time, a tenth of a progress read's CPU.
        self._idle: list[tuple[Any, float]] = []
        #: Connections given back so far (every POOL_RETURN_EVERY-th goes to the pool).
        self._given_back = 0
        #: The pool being closed, which waits for the connections still in use.
        self._closing: asyncpg.Pool | None = None

    async def acquire(self) -> Any:
        """A connection outside any transaction: the one given back last, or the pool's."""
        idle = self._idle
        while idle:
            connection, since = idle.pop()
            if _open(connection) and time.monotonic() - since < IDLE_SECONDS:
                return connection
            await _return_to_pool(await self.pool(), connection)
        return await (await self.pool()).acquire()

    async def give_back(self, connection: Any, *, interrupted: bool = False) -> None:
        """Keep a connection for the next transaction; after an interruption, or in a
        transaction still, it is first brought back outside any (see `_release`) and
        returned to the pool. One kept too long goes back to the pool, which closes it."""
        closing = self._closing
        if closing is not None:  # the pool it came from is closing: it waits for this one
            await _release(closing, connection, interrupted=interrupted)
            return
        if interrupted or not _open(connection) or connection.is_in_transaction():
            await _release(await self.pool(), connection, interrupted=interrupted)
            return
        self._given_back += 1
        if self._given_back % POOL_RETURN_EVERY == 0:
            # The pool's own checks (asyncpg replaces a connection after max_queries).
            await _return_to_pool(await self.pool(), connection)
            return
        idle = self._idle
        now = time.monotonic()
        idle.append((connection, now))
        if now - idle[0][1] >= IDLE_SECONDS:
            oldest, _since = idle.pop(0)
            await _return_to_pool(await self.pool(), oldest)

    async def pool(self) -> asyncpg.Pool:
        """The pool, created at the first transaction (a server that is down is tried again)."""
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=0,
                        max_size=self.pool_size,
                        server_settings={
                            "application_name": "coursepulse",
                            "plan_cache_mode": self.plan_cache_mode,
                        },
                        init=_init_connection,
                        reset=_keep_state,
                    )
        return self._pool

    def connection_use(self) -> ConnectionUse:
        return self.turns.use()

    def transaction(self, *, writing: bool, one_statement: bool = False) -> PostgresTransaction:
        return PostgresTransaction(self, writing=writing, one_statement=one_statement)

    async def ping(self, *, write: bool) -> None:
        """Raise unless the server answers (and, with `write`, takes writes: not a replica,
        not set read-only as done when a disk fills up)."""
        # A write transaction: a read one is READ ONLY whatever the server's setting. It
        # begins like every other, so an idle connection the server dropped is replaced.
        transaction = self.transaction(writing=True)
        try:
            read_only = await transaction.scalar(_SHOW_READ_ONLY)
        finally:
            await transaction.end(commit=False)
        if write and read_only == "on":
            raise RuntimeError("the database takes no writes (read-only)")

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            self._closing = pool
            try:
                idle, self._idle = self._idle, []
                for connection, _since in idle:
                    await _return_to_pool(pool, connection)
                await pool.close()
            except Exception:
                log.warning("closing the pool failed; terminating it", exc_info=True)
                pool.terminate()
            finally:
                self._closing = None


async def _init_connection(connection: asyncpg.Connection) -> None:
    """Every new connection speaks UTC (timestamps come back aware either way)."""
    await connection.execute("SET TIME ZONE 'UTC'")


async def _keep_state(_connection: asyncpg.Connection) -> None:
    """Nothing to reset when a connection comes back: every transaction ended with COMMIT or
    ROLLBACK, and none sets session state, listens or takes a session lock. (asyncpg's
    default reset is one more round trip per transaction.)"""
