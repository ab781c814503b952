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

Relies on graphql-core 3.3's `Executor.execute_field` and on Strawberry marking its
attribute resolvers `_is_default` (both pinned in pyproject.toml).
"""

from typing import Any

from graphql import GraphQLEnumType, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class Executor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, reading plain scalar and enum fields without the general path."""

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        field = self.schema.get_field(parent_type, node.name.value)
        if field is not None and not field.args:
            resolve = field.resolve
            field_type = field.type
            nullable = not isinstance(field_type, GraphQLNonNull)
            leaf = field_type if nullable else field_type.of_type
            if (
                getattr(resolve, "_is_default", False)
                and isinstance(leaf, GraphQLScalarType | GraphQLEnumType)
                and (
                    self.middleware_manager is None
                    or self.middleware_manager.get_field_resolver(resolve) is resolve
                )
            ):
                try:
                    value = resolve(source, None)
                    if value is None:
                        if nullable:
                            return None
                    else:
                        serialized = leaf.serialize(value)
                        if serialized is not None and serialized is not Undefined:
                            return serialized
                except Exception:  # noqa: S110  (the general path below reports it)
                    pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
