"""The one transaction type every resolver works in: `async with db.read() as tx`.

A `Transaction` runs Core statements (models/sql.py) and gives back rows. Reads and
writes are the same type; a read transaction refuses nothing, the database does
(SQLite `query_only`, PostgreSQL `READ ONLY`). Statements of one transaction run one
at a time, in the order they are awaited, on one connection that is taken when the
first statement runs (a transaction that runs none costs nothing) and given back
when the block ends.

A write transaction also carries what its commit announces: the courses whose
event log it appended to (`event_courses`) and the access changes it recorded
(`access_notices`, models/access.py). Database.write() sends them.
"""

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError

from coursepulse import telemetry
from coursepulse.models.access import AccessNotice
from coursepulse.models.sql import Compiled, Query, Statement, as_query

StatementObserver = Callable[[str], None]


class SnapshotNeeded(Exception):
    """A read begun as one statement (`one_statement`) asked for a second: its reads
    would not share a snapshot. The operation runs again in a transaction."""


class Transaction(ABC):
    """One database transaction (see the module's docstring)."""

    def __init__(
        self,
        dialect: Dialect,
        observers: list[StatementObserver],
        *,
        writing: bool,
        one_statement: bool = False,
    ) -> None:
        self.dialect = dialect
        #: True for `db.write()` transactions.
        self.writing = writing
        #: A read of exactly one statement, run without BEGIN and ROLLBACK (one
        #: statement is one snapshot by itself); a second raises `SnapshotNeeded`.
        self.one_statement = one_statement and not writing
        #: Statements run so far (BEGIN, COMMIT and ROLLBACK not counted).
        self.statements = 0
        #: Courses whose event log this transaction appended to (announced after commit).
        self.event_courses: set[int] = set()
        #: How many events of each kind it appended (counted after commit: metrics).
        self.event_kinds: Counter[str] = Counter()
        #: Access changes this transaction recorded (announced after commit).
        self.access_notices: list[AccessNotice] = []
        self._observers = observers
        self._turn = asyncio.Lock()
        self._begun = False
        self._ended = False

    async def all(self, statement: Statement, **params: Any) -> list[Any]:
        """Every row the statement gives (none for a statement without RETURNING)."""
        return (await self._run(statement, params))[1]

    async def _run(
        self, statement: Statement, params: dict[str, Any]
    ) -> tuple[Compiled, list[Any]]:
        query = as_query(statement)
        compiled = query.compiled(self.dialect)
        arguments = compiled.arguments(params)
        async with self._turn:
            if self._ended:
                raise RuntimeError("this transaction has ended")
            if not self._begun:
                await self._begin(query)
                self._begun = True
            elif self.one_statement:
                raise SnapshotNeeded()
            if query.plan_per_run:
                await self._plan_per_run()
            self.statements += 1
            for observe in self._observers:
                observe(compiled.sql)
            try:
                if telemetry.tracing_now():
                    raw = await self._traced_fetch(compiled.sql, arguments, query.unbounded)
                else:
                    raw = await self._fetch(compiled.sql, arguments, offload=query.unbounded)
            except self._integrity_errors as error:
                raise IntegrityError(compiled.sql, arguments, error) from error
        return compiled, compiled.rows(raw)

    async def _traced_fetch(
        self, sql: str, arguments: tuple[Any, ...], unbounded: bool
    ) -> Sequence[Sequence[Any]]:
        """`_fetch` inside a span for the statement (its SQL; never its parameters), a child
        of the request's span."""
        from opentelemetry.trace import SpanKind  # installed where tracing is on

        tracer = telemetry.tracer()
        assert tracer is not None
        operation = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "SQL"
        system = "postgresql" if self.dialect.name == "postgresql" else "sqlite"
        with tracer.start_as_current_span(
            f"{operation} {system}",
            kind=SpanKind.CLIENT,
            attributes={"db.system": system, "db.operation": operation, "db.statement": sql},
            # A driver's error message may quote a row (PostgreSQL's DETAIL): only its type.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await self._fetch(sql, arguments, offload=unbounded)
            except Exception as error:
                telemetry.mark_failed(span, error)
                raise

    async def first(self, statement: Statement, **params: Any) -> Any | None:
        """The first row, or None."""
        rows = await self.all(statement, **params)
        return rows[0] if rows else None

    async def scalars(self, statement: Statement, **params: Any) -> list[Any]:
        """The first element of every row: a column's value, or the row of a whole table."""
        compiled, rows = await self._run(statement, params)
        return compiled.first_elements(rows)

    async def scalar(self, statement: Statement, **params: Any) -> Any | None:
        """The first element of the first row (see `scalars`), or None."""
        compiled, rows = await self._run(statement, params)
        return compiled.first_elements(rows[:1])[0] if rows else None

    async def execute(self, statement: Statement, **params: Any) -> None:
        """Run a statement for its effect."""
        await self.all(statement, **params)

    async def end(self, *, commit: bool) -> None:
        """Commit or roll back (once; a statement still running finishes first)."""
        async with self._turn:
            if self._ended:
                return
            self._ended = True
            if self._begun:
                await self._finish(commit=commit)

    def _observe(self, sql: str) -> None:
        for observe in self._observers:
            observe(sql)

    #: The driver's errors for a broken constraint (raised as SQLAlchemy's IntegrityError).
    _integrity_errors: tuple[type[BaseException], ...] = ()

    @abstractmethod
    async def _begin(self, first: Query) -> None:
        """Take a connection and begin the transaction on it (with `one_statement`, only
        take the connection), for its first statement `first`."""

    @abstractmethod
    async def _plan_per_run(self) -> None:
        """Before a statement that asks for a plan of its own (`Query.plan_per_run`): the
        driver makes sure it gets one."""

    @abstractmethod
    async def _fetch(
        self, sql: str, arguments: tuple[Any, ...], *, offload: bool
    ) -> Sequence[Sequence[Any]]:
        """The driver's rows for one statement."""

    @abstractmethod
    async def _finish(self, *, commit: bool) -> None:
        """Commit or roll back, and give the connection back."""
