"""Statements: SQLAlchemy Core on the tables, compiled once per dialect, rows read by name.

A `Query` wraps a Core statement with named `bindparam`s. Compiled for a dialect it
knows its SQL text, how to bind each parameter and how to turn each driver row into
the row type its columns describe (models/rows.py):

- whole tables, e.g. `select(courses)`: that table's row type (`CourseRow`);
- several whole tables, e.g. `select(courses, enrollments)` over an outer join: a
  tuple of their rows, a side the join found nothing for being None (an alias of a
  table reads as the table);
- any other columns: a named tuple of the columns' keys (label them to rename).

Values come back as the column types give them (UTC-aware timestamps on both
databases). Whether a statement may run on the event loop is the statement's own
business: `Query(..., unbounded=True)` marks one whose cost grows with the data.
"""

import json
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ColumnElement, String, Table, bindparam, or_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import Label
from sqlalchemy.sql.selectable import Alias, Join
from sqlalchemy.types import NullType, TypeDecorator, TypeEngine

from coursepulse.models.rows import row_type_of
from coursepulse.models.types import UTCDateTime


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


class NullsLast(ColumnElement[Any]):
    """An ORDER BY term on a nullable column with NULLs last in either direction, spelled
    so that each engine can walk an index for it (see `nulls_last`)."""

    inherit_cache = False

    def __init__(self, column: ColumnElement[Any], *, descending: bool) -> None:
        self.column = column
        self.descending = descending


def nulls_last(column: Any, *, descending: bool) -> NullsLast:
    """Order by `column`, NULLs last ascending and descending alike.

    PostgreSQL puts NULLs last ascending and needs `DESC NULLS LAST` (an index built in
    that order) descending; SQLite puts NULLs first ascending (index on `column IS NULL,
    column`) and last descending.
    """
    return NullsLast(column, descending=descending)


@compiles(NullsLast, "postgresql")
def _nulls_last_postgresql(element: NullsLast, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} DESC NULLS LAST" if element.descending else f"{column} ASC"


@compiles(NullsLast, "sqlite")
def _nulls_last_sqlite(element: NullsLast, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} DESC" if element.descending else f"{column} IS NULL, {column} ASC"


class OuterFirst(Join):
    """An inner join whose left table SQLite must loop over first (see `outer_first`)."""

    inherit_cache = True


def outer_first(left: Any, right: Any, onclause: ColumnElement[bool]) -> OuterFirst:
    """`left JOIN right ON onclause`, walked from `left` on SQLite too.

    For an order that an index of `left` gives (names on users), SQLite's planner would
    rather start from `right`'s WHERE and sort everything it finds; a CROSS JOIN is how
    SQLite is told which table is the outer loop. PostgreSQL chooses well by itself.
    """
    return OuterFirst(left, right, onclause)


@compiles(OuterFirst, "sqlite")
def _outer_first_sqlite(element: OuterFirst, compiler: SQLCompiler, **kw: Any) -> str:
    kw["asfrom"] = True
    left = compiler.process(element.left, **kw)
    right = compiler.process(element.right, **kw)
    kw.pop("asfrom")
    return f"{left} CROSS JOIN {right} ON {compiler.process(element.onclause, **kw)}"


RowMaker = Callable[[Sequence[Any]], Any]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement compiled for one dialect: its SQL and how to bind and read it."""

    sql: str
    names: tuple[str, ...]
    #: Values bound in the statement itself (constants), by parameter name.
    constants: dict[str, Any]
    binds: tuple[Callable[[Any], Any] | None, ...]
    #: Where a result column's values need converting (a timestamp given its UTC offset):
    #: each such column's position and converter, the others are taken as they come.
    converted: tuple[tuple[int, Callable[[Any], Any]], ...]
    make_row: RowMaker
    #: True when a row is one table's row type (its first element is the row itself).
    whole_row: bool

    def arguments(self, params: dict[str, Any]) -> tuple[Any, ...]:
        """The driver's positional arguments for these named parameters."""
        values = {**self.constants, **params} if self.constants else params
        return tuple(
            bind(values[name]) if bind is not None else values[name]
            for name, bind in zip(self.names, self.binds, strict=True)
        )

    def first_elements(self, rows: list[Any]) -> list[Any]:
        """Each row's first element: the row itself for one table's row type."""
        return rows if self.whole_row else [row[0] for row in rows]

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Any]:
        """The driver's rows as the statement's row type, each value processed by its type."""
        make = self.make_row
        converted = self.converted
        if not converted:
            return [make(item) for item in raw]
        rows = []
        for item in raw:
            values = list(item)
            for index, convert in converted:
                value = values[index]
                if value is not None:
                    values[index] = convert(value)
            rows.append(make(values))
        return rows


class Query:
    """A Core statement with named `bindparam`s, compiled once per dialect."""

    __slots__ = ("_compiled", "plan_per_run", "statement", "unbounded")

    def __init__(
        self, statement: Executable, *, unbounded: bool = False, plan_per_run: bool = False
    ) -> None:
        self.statement = statement
        #: True when its cost grows with the data (a scan, a sort, a count): on SQLite it
        #: then runs in a thread instead of on the event loop.
        self.unbounded = unbounded
        #: True when no one plan suits every value of its parameters (a walk down an index
        #: for a large course, a sort for a small one): PostgreSQL then plans each run for
        #: its own values, where it otherwise plans a statement once per connection.
        self.plan_per_run = plan_per_run
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = compile_statement(self.statement, dialect)
        return found


Statement = Query | Executable


def as_query(statement: Statement) -> Query:
    """A Query for a statement written in place (tests, one-off commands): compiled per call."""
    return statement if isinstance(statement, Query) else Query(statement)


def _sqlite_utc(value: str) -> datetime:
    """A timestamp as SQLite keeps it (naive UTC text), aware: what UTCDateTime gives.

    Parsed with its offset appended: one C call, where parsing and then replacing the
    timezone is two objects (timestamps are most of what a roster page converts).
    """
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # text written with an offset of its own
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The column type's own converter; one C call for SQLite timestamps instead of two layers."""
    if isinstance(type_, UTCDateTime):
        if dialect.name == "sqlite":
            return _sqlite_utc
        if dialect.name == "postgresql" and dialect.driver == "asyncpg":
            # asyncpg gives every `timestamptz` aware and in UTC, whatever the session's zone.
            return None
        return _aware_utc
    return type_._cached_result_processor(dialect, None)


def _aware_utc(value: datetime) -> datetime:
    """A driver's timestamp in UTC (`UTCDateTime.process_result_value`; asyncpg gives
    `timestamptz` in UTC already)."""
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _column_of(entry: Any) -> Column[Any] | None:
    """The table column a result column is, if it is one (through an alias of the table)."""
    for candidate in entry.objects:
        if isinstance(candidate, Column) and isinstance(candidate.table, Table):
            return candidate
        if (
            isinstance(candidate, Column)
            and isinstance(candidate.table, Alias)
            and isinstance(candidate.table.element, Table)
        ):
            return candidate.table.element.c[candidate.key]
    return None


def _name_of(entry: Any) -> str:
    """A result column's name in its row: its label, or its column's own key."""
    if any(isinstance(candidate, Label) for candidate in entry.objects):
        return str(entry.keyname)
    column = _column_of(entry)
    return str(column.key if column is not None else entry.keyname)


def _whole_tables(columns: list[Column[Any] | None]) -> list[Table] | None:
    """The tables whose columns, all of them and in order, make up the result; else None."""
    tables: list[Table] = []
    index = 0
    while index < len(columns):
        column = columns[index]
        if column is None:
            return None
        table = column.table
        assert isinstance(table, Table)
        width = len(table.columns)
        if [item for item in columns[index : index + width]] != list(table.columns):
            return None
        tables.append(table)
        index += width
    return tables or None


def _row_maker(entries: list[Any]) -> RowMaker:
    """How a driver row becomes the statement's row type (see the module's docstring)."""
    tables = _whole_tables([_column_of(entry) for entry in entries])
    if tables is not None and len(tables) == 1:
        return row_type_of(tables[0])._make
    if tables is not None:
        spans: list[tuple[int, int, int, Callable[[Sequence[Any]], Any]]] = []
        start = 0
        for table in tables:
            width = len(table.columns)
            key = start + [column.primary_key for column in table.columns].index(True)
            spans.append((start, start + width, key, row_type_of(table)._make))
            start += width

        def joined(raw: Sequence[Any]) -> tuple[Any, ...]:
            return tuple(
                make(raw[begin:end]) if raw[key] is not None else None
                for begin, end, key, make in spans
            )

        return joined
    keys = [_name_of(entry) for entry in entries]
    if len(set(keys)) != len(keys):
        raise ValueError(f"columns of one statement need distinct names (label them): {keys}")
    return namedtuple("Row", keys)._make  # type: ignore[misc]


def compile_statement(statement: Executable, dialect: Dialect) -> Compiled:
    """The statement's SQL for the dialect, with its binds and its row type."""
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if any(bind.expanding for bind in compiled.binds.values()):
        raise ValueError("expanding IN is not supported here: use in_ids() or one_of()")
    names = tuple(compiled.positiontup or ())
    constants = {
        name: bind.effective_value
        for name, bind in compiled.binds.items()
        if not bind.required or bind.value is not None or bind.callable is not None
    }
    processors = compiled._bind_processors
    entries = list(compiled._result_columns)
    results = tuple(_result_processor(entry.type, dialect) for entry in entries)
    return Compiled(
        sql=str(compiled),
        names=names,
        constants={name: value for name, value in constants.items() if name in names},
        binds=tuple(processors.get(name) for name in names),
        converted=tuple(
            (index, process) for index, process in enumerate(results) if process is not None
        ),
        make_row=_row_maker(entries) if entries else tuple,
        whole_row=bool(entries) and len(_whole_tables([_column_of(e) for e in entries]) or ()) == 1,
    )
