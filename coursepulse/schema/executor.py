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

Relies on graphql-core 3.3's `Executor.execute_field` and `collect_and_execute_subfields`
and on Strawberry marking its attribute resolvers `_is_default` (both pinned in
pyproject.toml).
"""

from typing import Any

from graphql import (
    DirectiveNode,
    DocumentNode,
    GraphQLEnumType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    Node,
)
from graphql.execution.collect_fields import CollectedFields, FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

#: How a plain leaf field is read: its resolver, its scalar or enum type, and whether null
#: is allowed.
_Leaf = tuple[Any, GraphQLScalarType | GraphQLEnumType, bool]
#: How a row of plain leaves is read: (response key, leaf) for every selected field.
_RowReader = tuple[tuple[str, _Leaf], ...]


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

    def plain_leaf(self, parent_type: GraphQLObjectType, name: str) -> _Leaf | None:
        """How to read the field directly, or None when it takes the general path."""
        field = self.schema.get_field(parent_type, name)
        if field is None or field.args:
            return None
        resolve = field.resolve
        if not getattr(resolve, "_is_default", False):
            return None
        field_type = field.type
        nullable = not isinstance(field_type, GraphQLNonNull)
        leaf = field_type if nullable else field_type.of_type
        if not isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
            return None
        if (
            self.middleware_manager is not None
            and self.middleware_manager.get_field_resolver(resolve) is not resolve
        ):
            return None
        return resolve, leaf, nullable

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
            value = _read_leaf(source, plain)
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
                row = _read_row(result, reader)
                if row is not None:
                    return row
        return self.execute_collected_subfields(
            return_type, result, path, grouped_field_set, new_defer_usages, position_context
        )

    def _row_reader(
        self, return_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> _RowReader | None:
        """How to read the selection as one row, or None when a field needs more (kept for
        the execution: a list's items share their selection)."""
        readers: dict[int, tuple[GroupedFieldSet, _RowReader | None]]
        readers = self.__dict__.setdefault("_row_readers", {})
        known = readers.get(id(grouped_field_set))
        if known is not None:
            return known[1]
        fields: list[tuple[str, _Leaf]] = []
        reader: _RowReader | None = None
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


def _read_leaf(source: Any, plain: _Leaf) -> Any:
    """The field's serialized value, or Undefined when the general path must report it
    (null in a non-null field, a value the type cannot serialize, a failing attribute)."""
    resolve, leaf, nullable = plain
    try:
        value = resolve(source, None)
        if value is None:
            return None if nullable else Undefined
        serialized = leaf.serialize(value)
    except Exception:  # the general path reports it
        return Undefined
    return Undefined if serialized is None else serialized


def _read_row(source: Any, reader: _RowReader) -> dict[str, Any] | None:
    """The object's selected fields, or None when one must go the general path."""
    row: dict[str, Any] = {}
    for key, plain in reader:
        value = _read_leaf(source, plain)
        if value is Undefined:
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
