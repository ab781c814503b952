"""graphql-core's executor, with plain leaf fields read directly.

Most of what a client asks for is a stored value: a roster row's name, status and dates, a
progress bar's counters. graphql-core resolves each such field the general way: it builds
a resolve info, calls Strawberry's attribute resolver, asks whether the result is
awaitable and completes it by its type. For a field that Strawberry resolves by plain
attribute access (no resolver, argument, permission or extension of its own) and whose
type is a scalar or an enum, the answer is the attribute's serialized value: that is read
directly. Anything else, and any value that would be an error (null in a non-null field, a
value the type cannot serialize), goes the general way, which reports it as graphql-core
does.

An object whose selected fields are all such plain leaves (a roster row, a lesson of the
progress bar) is read the same way as a whole: one dictionary built from its attributes,
without graphql-core's per-field machinery (a path, a call and an awaitable check per
field). Any field that would need more sends the whole object the general way.

A list of such objects (a roster's students, a course's lessons) is read row after row
in one loop, without graphql-core's completion of each item; any item that would need
more sends the whole list the general way.

A field Strawberry resolves with its default resolver (`getattr`) is read with
`operator.attrgetter`, and a value of the exact Python type a built-in scalar serializes
as itself (a `str` for String and ID, a `bool` for Boolean, an `int` within 32 bits for
Int) is taken as it is.

Relies on graphql-core 3.3's `Executor.execute_field`, `collect_and_execute_subfields` and
`complete_iterable_value`, and on Strawberry marking its attribute resolvers `_is_default`
and keeping its field on the graphql-core field's `strawberry-definition` extension (both
pinned in pyproject.toml).
"""

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any
from weakref import WeakKeyDictionary

from graphql import (
    DirectiveNode,
    DocumentNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLResolveInfoHelpers,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    Node,
)
from graphql.execution.collect_fields import CollectedFields, FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

#: How a plain leaf field is read: the value's getter, its scalar or enum type's
#: serializer, whether null is allowed, and the Python type whose values the type
#: serializes as they are (None: every value is serialized).
Leaf = tuple[Callable[[Any], Any], Callable[[Any], Any], bool, type | None]
#: The built-in scalars that give a value of this exact type back unchanged (Int: within
#: 32 bits, checked in `read_leaf`).
_AS_IS: dict[GraphQLScalarType, type] = {
    GraphQLString: str,
    GraphQLID: str,
    GraphQLBoolean: bool,
    GraphQLInt: int,
}
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
#: How a row of plain leaves is read: (response key, leaf) for every selected field.
RowReader = tuple[tuple[str, Leaf], ...]


#: How each schema's fields are read (`Executor.plain_leaf`), by type and field name.
_PLAIN_LEAVES: "WeakKeyDictionary[GraphQLSchema, dict[tuple[str, str], Leaf | None]]" = (
    WeakKeyDictionary()
)

#: Selections collected for a document, kept with it across requests: by the type and
#: the field nodes (owned by the document, so their ids stay theirs) they were collected for.
CollectedSelections = dict[tuple[GraphQLObjectType, tuple[int, ...]], CollectedFields]


class Executor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, reading plain scalar and enum fields without the general path."""

    def __init__(
        self, *args: Any, collected: CollectedSelections | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        #: The document's selections collected by earlier requests (see `collected_for`).
        self.collected = collected
        #: How this schema's fields are read, kept across executions (without middleware).
        self._leaves: dict[tuple[str, str], Leaf | None] | None = None
        if self.middleware_manager is None:
            self._leaves = _PLAIN_LEAVES.get(self.schema)
            if self._leaves is None:
                self._leaves = _PLAIN_LEAVES[self.schema] = {}

    @property
    def async_helpers(self) -> GraphQLResolveInfoHelpers:  # type: ignore[override]
        """The resolve infos' helpers, made when asked (kept, their bound methods would
        tie the executor into a reference cycle: see `__init__`)."""
        return GraphQLResolveInfoHelpers(gather=self.gather_async_work, track=self.track_async_work)

    @async_helpers.setter
    def async_helpers(self, _helpers: GraphQLResolveInfoHelpers) -> None:
        pass

    def collect_subfields(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> CollectedFields:
        """The selection of fields on `return_type`; with `collected`, as collected by an
        earlier request of the same document."""
        shared = self.collected
        if shared is None:
            return super().collect_subfields(return_type, field_details_list)
        key = (return_type, tuple(id(details.node) for details in field_details_list))
        known = shared.get(key)
        if known is None:
            known = shared[key] = super().collect_subfields(return_type, field_details_list)
        return known

    def plain_leaf(self, parent_type: GraphQLObjectType, name: str) -> Leaf | None:
        """How to read the field directly, or None when it takes the general path (kept
        with the schema, for executions without middleware)."""
        known = self._leaves
        if known is None:
            return self._plain_leaf(parent_type, name)
        key = (parent_type.name, name)
        try:
            return known[key]
        except KeyError:
            plain = known[key] = self._plain_leaf(parent_type, name)
            return plain

    def _plain_leaf(self, parent_type: GraphQLObjectType, name: str) -> Leaf | None:
        field = self.schema.get_field(parent_type, name)
        if field is None:
            return None
        if (
            self.middleware_manager is not None
            and self.middleware_manager.get_field_resolver(field.resolve) is not field.resolve
        ):
            return None
        return plain_leaf_of(field)

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        plain = self.plain_leaf(parent_type, field_details_list[0].node.name.value)
        if plain is not None:
            value = read_leaf(source, plain)
            if value is not Undefined:
                return value
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def collect_and_execute_subfields(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            return_type, field_details_list
        )
        if not new_defer_usages:
            reader = self._row_reader(return_type, grouped_field_set)
            if reader is not None:
                row = read_row(result, reader)
                if row is not None:
                    return row
        return self.execute_collected_subfields(
            return_type, result, path, grouped_field_set, new_defer_usages, position_context
        )

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo,
        path: Path,
        items: Iterable[Any],
        position_context: Any,
    ) -> Any:
        rows = self._plain_rows(item_type, field_details_list, items)
        if rows is not None:
            return rows
        return super().complete_iterable_value(
            item_type, field_details_list, info, path, items, position_context
        )

    def _plain_rows(
        self, item_type: GraphQLOutputType, field_details_list: FieldDetailsList, items: Any
    ) -> list[dict[str, Any]] | None:
        """The list's objects read as rows; None when the list or one of its items needs
        the general path (a directive such as `@stream` on the field, an abstract or leaf
        item type, an item that is null, awaitable or checked by `is_type_of`, a field that
        needs more than a plain read)."""
        if type(items) is not list and type(items) is not tuple:
            return None
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(object_type, GraphQLObjectType) or object_type.is_type_of is not None:
            return None
        if any(details.node.directives for details in field_details_list):
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages:
            return None
        reader = self._row_reader(object_type, grouped_field_set)
        if reader is None:
            return None
        rows: list[dict[str, Any]] = []
        for item in items:
            row = read_row(item, reader) if item is not None else None
            if row is None:
                return None
            rows.append(row)
        return rows

    def _row_reader(
        self, return_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> RowReader | None:
        """How to read the selection as one row, or None when a field needs more (kept for
        the execution: a list's items share their selection)."""
        readers: dict[int, tuple[GroupedFieldSet, RowReader | None]]
        readers = self.__dict__.setdefault("_row_readers", {})
        known = readers.get(id(grouped_field_set))
        if known is not None:
            return known[1]
        fields: list[tuple[str, Leaf]] = []
        reader: RowReader | None = None
        for key, details in grouped_field_set.items():
            plain = self.plain_leaf(return_type, details[0].node.name.value)
            if plain is None:
                break
            fields.append((key, plain))
        else:
            reader = tuple(fields)
        # The field set is kept with its reader, so its id is not reused meanwhile.
        readers[id(grouped_field_set)] = (grouped_field_set, reader)
        return reader


def plain_leaf_of(field: GraphQLField) -> Leaf | None:
    """How the field is read directly; None when it takes the general path (arguments, a
    resolver of its own, a type that is not a scalar or an enum)."""
    if field.args:
        return None
    resolve = field.resolve
    if not getattr(resolve, "_is_default", False):
        return None
    field_type = field.type
    nullable = not isinstance(field_type, GraphQLNonNull)
    leaf = field_type if nullable else field_type.of_type
    if not isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
        return None
    if isinstance(leaf, GraphQLEnumType):
        return _getter(field, resolve), _enum_serializer(leaf), nullable, None
    return _getter(field, resolve), leaf.serialize, nullable, _AS_IS.get(leaf)


def _getter(field: GraphQLField, resolve: Any) -> Callable[[Any], Any]:
    """How the field's value is read from its object: `attrgetter` for a field Strawberry
    reads with `getattr`, else its resolver (called without info, as Strawberry does for a
    field without one of its own)."""
    definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if (
        isinstance(definition, StrawberryField)
        and definition.is_basic_field
        and definition.default_resolver is getattr
    ):
        return attrgetter(definition.python_name)
    return lambda source: resolve(source, None)


def _enum_serializer(enum_type: GraphQLEnumType) -> Callable[[Any], Any]:
    """The enum's serializer, remembering its answer for each value (an enum has few)."""
    known: dict[tuple[type, Any], Any] = {}

    def serialize(value: Any) -> Any:
        key = (type(value), value)
        try:
            return known[key]
        except KeyError:
            serialized = enum_type.serialize(value)
            if len(known) < _ENUM_VALUES_KEPT:
                known[key] = serialized
            return serialized
        except TypeError:  # an unhashable value: serialized (and refused) as it comes
            return enum_type.serialize(value)

    return serialize


#: Answers an enum's serializer keeps at most (an enum value, or a string naming one).
_ENUM_VALUES_KEPT = 64


def read_leaf(source: Any, plain: Leaf) -> Any:
    """The field's serialized value, or Undefined when the general path must report it
    (null in a non-null field, a value the type cannot serialize, a failing attribute)."""
    get, serialize, nullable, as_is = plain
    try:
        value = get(source)
        if value is None:
            return None if nullable else Undefined
        if type(value) is as_is and (as_is is not int or _INT_MIN <= value <= _INT_MAX):
            return value
        serialized = serialize(value)
    except Exception:  # the general path reports it
        return Undefined
    return Undefined if serialized is None else serialized


def read_row(source: Any, reader: RowReader) -> dict[str, Any] | None:
    """The object's selected fields, or None when one must go the general path (as
    `read_leaf` for each, written out: a roster page reads a hundred and more)."""
    row: dict[str, Any] = {}
    for key, (get, serialize, nullable, as_is) in reader:
        try:
            value = get(source)
            if value is None:
                if not nullable:
                    return None
            elif type(value) is not as_is or (as_is is int and not _INT_MIN <= value <= _INT_MAX):
                value = serialize(value)
                if value is None:
                    return None
        except Exception:  # the general path reports it
            return None
        row[key] = value
    return row


def collected_for(document: DocumentNode) -> CollectedSelections | None:
    """An empty store for the document's collected selections, or None when they may
    change between requests: a directive (`@skip(if: $var)`, `@include`, `@defer`) makes
    what is selected depend on the variables."""
    return None if _has_directive(document) else {}


def _has_directive(node: Node) -> bool:
    """Whether the node or any node under it carries a directive."""
    for key in node.keys:
        value = getattr(node, key, None)
        children = value if isinstance(value, tuple | list) else (value,)
        for child in children:
            if isinstance(child, DirectiveNode):
                return True
            if isinstance(child, Node) and _has_directive(child):
                return True
    return False
