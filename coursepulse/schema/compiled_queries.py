"""Queries answered by a plan compiled once per document, without graphql-core's executor.

graphql-core's executor works out on every request, for every field, what depends on the
document alone: which fields an object's selection holds, how each is resolved and how
its value is completed by its type, and it wraps each step for errors, awaitables and
incremental delivery. For a query whose shape allows it, `compile_query` works that out
once: the result is a tree of completers, one per selected field, which a request runs
with its own variables and context.

A query compiles when its document has no directive (so what is selected does not depend
on the variables), every selected object type is concrete (no interface or union, no
`is_type_of`) and no introspection field is asked for. Fields are resolved as
graphql-core resolves them: arguments by `get_argument_values`, the field's own resolver
with a resolve info of the same content, plain scalar and enum fields read directly
(`executor.plain_leaf_of`). Resolvers that return awaitables are awaited together, a
round at a time, as graphql-core gathers them (so DataLoaders batch alike).

Anything the general executor would report (a resolver's error, null in a non-null
field, a value its type cannot serialize) raises `Fallback`: the operation is then run
by graphql-core from the start, which answers it as it always has. A query only reads,
so running it again changes nothing; it costs the second run, on the error path only.

Relies on graphql-core 3.3's `collect_fields`, `collect_subfields`, `get_argument_values`
and `GraphQLResolveInfo` (pinned in pyproject.toml); tests/test_compiled_queries.py
compares both executors' answers.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    OperationType,
    default_field_resolver,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    GroupedFieldSet,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values
from graphql.pyutils import Path, Undefined

from coursepulse.schema.executor import Leaf, RowReader, plain_leaf_of, read_leaf, read_row
from coursepulse.schema.operation_plans import OperationPlan, coerce_variables


class Fallback(Exception):
    """The operation needs graphql-core's executor: it has something to report."""


#: Completes a resolved value by its type: (run, value, path) -> the result's value.
Complete = Callable[["_Run", Any, Path], Any]
#: A resolver's awaitable and where its completed value goes: (object, key, awaitable,
#: field, path).
_Pending = tuple[dict[str, Any], str, Any, "_Resolved", Path]


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A selected field with a resolver of its own (or arguments)."""

    key: str
    definition: GraphQLField
    nodes: list[FieldNode]
    parent: GraphQLObjectType
    with_arguments: bool
    complete: Complete


#: One entry of an object's selection: a plain leaf (key, leaf), `__typename` (key,
#: type name) or a resolved field.
_Entry = tuple[str, Leaf] | tuple[str, str] | _Resolved


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """A query's completers, made once for its document."""

    schema: GraphQLSchema
    plan: OperationPlan
    root: Complete
    is_awaitable: Callable[[Any], bool]


class _Run:
    """One request's run of a compiled query."""

    __slots__ = ("compiled", "context", "pending", "variable_values")

    def __init__(self, compiled: CompiledQuery, context: Any, variables: VariableValues) -> None:
        self.compiled = compiled
        self.context = context
        self.variable_values = variables
        self.pending: list[_Pending] = []


class _NotCompiled(Exception):
    """The query has a shape left to graphql-core's executor."""


_NO_VARIABLES = VariableValues({}, {})


def compile_query(
    schema: GraphQLSchema, plan: OperationPlan, is_awaitable: Callable[[Any], bool]
) -> CompiledQuery | None:
    """The query's compiled form; None when it is not a query or has a shape (see the
    module's docstring) left to graphql-core. The document is validated and has no
    directive: the caller checks both."""
    operation = plan.operation
    if operation.operation is not OperationType.QUERY or schema.query_type is None:
        return None
    if any(details.variable_signatures for details in plan.fragments.values()):
        return None  # fragment arguments: what a fragment selects depends on them
    try:
        grouped, defers, _ = collect_fields(
            schema, plan.fragments, _NO_VARIABLES, schema.query_type, operation
        )
        if defers:
            return None
        root = _object(_Compiler(schema, plan), schema.query_type, grouped)
    except (_NotCompiled, RecursionError):
        return None
    return CompiledQuery(schema, plan, root, is_awaitable)


class _Compiler:
    """What compiling one operation needs at every level."""

    def __init__(self, schema: GraphQLSchema, plan: OperationPlan) -> None:
        self.schema = schema
        self.plan = plan

    def subfields(
        self, object_type: GraphQLObjectType, details: FieldDetailsList
    ) -> GroupedFieldSet:
        grouped, defers, _ = collect_subfields(
            self.schema, self.plan.fragments, _NO_VARIABLES, self.plan.operation, object_type,
            details,
        )  # fmt: skip
        if defers:
            raise _NotCompiled
        return grouped


def _object(
    compiler: _Compiler, object_type: GraphQLObjectType, grouped: GroupedFieldSet
) -> Complete:
    """How an object of the type (the root's value included: None) is completed with the
    selection."""
    if object_type.is_type_of is not None:
        raise _NotCompiled
    reader = _plain_reader(compiler, object_type, grouped)
    if reader is not None:

        def complete_row(run: _Run, value: Any, path: Path) -> Any:
            row = read_row(value, reader)
            if row is None:
                raise Fallback
            return row

        return complete_row
    entries: list[_Entry] = []
    for key, details in grouped.items():
        name = details[0].node.name.value
        if name == "__typename":
            entries.append((key, object_type.name))
            continue
        if name.startswith("__"):
            raise _NotCompiled  # introspection
        definition = compiler.schema.get_field(object_type, name)
        if definition is None:
            raise _NotCompiled
        leaf = plain_leaf_of(definition)
        if leaf is not None:
            entries.append((key, leaf))
            continue
        nodes = [detail.node for detail in details]
        with_arguments = bool(definition.args or details[0].node.arguments)
        complete = _value(compiler, definition.type, details)
        entries.append(_Resolved(key, definition, nodes, object_type, with_arguments, complete))
    fixed = tuple(entries)
    type_name = object_type.name

    def complete_object(run: _Run, value: Any, path: Path) -> Any:
        row: dict[str, Any] = {}
        for entry in fixed:
            if isinstance(entry, _Resolved):
                row[entry.key] = _resolve(run, entry, value, Path(path, entry.key, type_name), row)
            elif isinstance(entry[1], str):
                row[entry[0]] = entry[1]
            else:
                read = read_leaf(value, entry[1])
                if read is Undefined:
                    raise Fallback
                row[entry[0]] = read
        return row

    return complete_object


def _value(compiler: _Compiler, type_: GraphQLOutputType, details: FieldDetailsList) -> Complete:
    """How a resolved value of the type is completed, for the field's selection."""
    if isinstance(type_, GraphQLNonNull):
        inner = _value(compiler, type_.of_type, details)

        def complete_non_null(run: _Run, value: Any, path: Path) -> Any:
            completed = inner(run, value, path)
            if completed is None:
                raise Fallback
            return completed

        return complete_non_null
    if isinstance(type_, GraphQLList):
        item_type = type_.of_type
        if isinstance(item_type, GraphQLNonNull):
            item_type = item_type.of_type
        if isinstance(item_type, GraphQLObjectType) and item_type.is_type_of is None:
            reader = _plain_reader(compiler, item_type, compiler.subfields(item_type, details))
            if reader is not None:
                return _rows(reader)
        item = _value(compiler, type_.of_type, details)

        def complete_list(run: _Run, value: Any, path: Path) -> Any:
            if value is None:
                return None
            if type(value) is not list and type(value) is not tuple:
                raise Fallback  # another iterable, or an error: the general path
            return [
                item(run, element, Path(path, index, None)) for index, element in enumerate(value)
            ]

        return complete_list
    if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
        serialize = type_.serialize

        def complete_leaf(run: _Run, value: Any, path: Path) -> Any:
            if value is None or value is Undefined:
                return None
            if isinstance(value, Exception):
                raise Fallback
            try:
                serialized = serialize(value)
            except Exception as error:
                raise Fallback from error
            if serialized is None or serialized is Undefined:
                raise Fallback
            return serialized

        return complete_leaf
    if isinstance(type_, GraphQLObjectType):
        selection = _object(compiler, type_, compiler.subfields(type_, details))

        def complete_object(run: _Run, value: Any, path: Path) -> Any:
            if value is None or value is Undefined:
                return None
            if isinstance(value, Exception):
                raise Fallback
            return selection(run, value, path)

        return complete_object
    raise _NotCompiled  # an interface or a union


def _plain_reader(
    compiler: _Compiler, object_type: GraphQLObjectType, grouped: GroupedFieldSet
) -> RowReader | None:
    """The selection read as one row, when every selected field is a plain leaf; None
    when one needs more (a resolver, arguments, `__typename`)."""
    fields: list[tuple[str, Leaf]] = []
    for key, details in grouped.items():
        definition = compiler.schema.get_field(object_type, details[0].node.name.value)
        leaf = plain_leaf_of(definition) if definition is not None else None
        if leaf is None:
            return None
        fields.append((key, leaf))
    return tuple(fields)


def _rows(reader: RowReader) -> Complete:
    """How a list of objects read as rows of plain leaves is completed: row after row in
    one loop (an item that is null, or needs more, sends the query to graphql-core)."""

    def complete_rows(run: _Run, value: Any, path: Path) -> Any:
        if value is None:
            return None
        if type(value) is not list and type(value) is not tuple:
            raise Fallback  # another iterable, or an error: the general path
        rows = []
        for element in value:
            row = read_row(element, reader)
            if row is None:
                raise Fallback
            rows.append(row)
        return rows

    return complete_rows


def _resolve(run: _Run, field: _Resolved, source: Any, path: Path, row: dict[str, Any]) -> Any:
    """The field's completed value; None for now when its resolver's awaitable is
    pending (its value then goes into `row` when the round awaits it)."""
    compiled = run.compiled
    plan = compiled.plan
    info = GraphQLResolveInfo(
        field.nodes[0].name.value,
        field.nodes,
        field.definition.type,
        field.parent,
        path,
        compiled.schema,
        plan.fragment_definitions,
        None,
        plan.operation,
        run.variable_values,
        run.context,
        compiled.is_awaitable,
        None,
        None,
    )
    arguments = (
        get_argument_values(field.definition, field.nodes[0], run.variable_values)
        if field.with_arguments
        else {}
    )
    resolve = field.definition.resolve or default_field_resolver
    result = resolve(source, info, **arguments)
    if compiled.is_awaitable(result):
        run.pending.append((row, field.key, result, field, path))
        return None
    return field.complete(run, result, path)


async def execute(
    compiled: CompiledQuery, variables: dict[str, Any] | None, context: Any
) -> dict[str, Any]:
    """The query's data; raises `Fallback` when graphql-core's executor must answer."""
    variable_values = coerce_variables(compiled.plan, variables or {})
    if variable_values is None:
        raise Fallback  # graphql-core words what is wrong with the variables
    run = _Run(compiled, context, variable_values)
    try:
        data = compiled.root(run, None, None)  # type: ignore[arg-type]
        while run.pending:
            pending, run.pending = run.pending, []
            if len(pending) == 1:
                values = [await pending[0][2]]
            else:
                values = await asyncio.gather(
                    *(entry[2] for entry in pending), return_exceptions=True
                )
            for (row, key, _, field, path), value in zip(pending, values, strict=True):
                if isinstance(value, BaseException):
                    if not isinstance(value, Exception):
                        raise value
                    raise Fallback from value
                row[key] = field.complete(run, value, path)
    except Fallback:
        raise
    except Exception as error:  # a resolver's error: the general path reports it
        raise Fallback from error
    finally:
        _abandon(run.pending)  # what no round awaited (an error, or the request cancelled)
    return data  # type: ignore[no-any-return]


def _abandon(pending: list[_Pending]) -> None:
    """Close the coroutines no round will await (a loader's future is left to its loader)."""
    for entry in pending:
        if asyncio.iscoroutine(entry[2]):
            entry[2].close()
    pending.clear()
