"""Strawberry's resolver wrapper, worked out once per field instead of on every call.

For each field with a resolver, Strawberry's wrapper does on every call what depends
only on the field: it builds its `Info`, converts each argument by walking its type
(importing a module to do so), checks for exception handlers, chains the field's
extensions (even none) and wraps the result in one more coroutine. A field whose
arguments are all scalars or enums (optional or not) takes its values as graphql-core
gives them, so for such a field, without extensions, this module replaces the
wrapper with one that only builds the `Info` and passes the arguments on by their
Python names, as Strawberry's would. Any other field keeps Strawberry's wrapper.

Relies on Strawberry keeping its field on the graphql-core field's
`strawberry-definition` extension and on `StrawberryResolver`'s parameter properties
(pinned in pyproject.toml); tests/test_direct_resolvers.py compares both wrappers.
"""

from collections.abc import Callable, Mapping
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema
from strawberry import Schema
from strawberry.relay.types import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import StrawberryArgument
from strawberry.types.base import StrawberryMaybe, StrawberryOptional, StrawberryType
from strawberry.types.enum import StrawberryEnumDefinition, has_enum_definition
from strawberry.types.field import StrawberryField

Resolver = Callable[..., Any]


def install(strawberry_schema: Schema) -> list[str]:
    """Give each eligible field of the schema a direct resolver; the fields given one
    (`Type.field`). None where the schema maps exceptions to results (its wrapper then
    does more)."""
    converter = strawberry_schema.schema_converter
    if converter._exception_handler_specs:
        return []
    schema: GraphQLSchema = strawberry_schema._schema
    config, scalar_registry = strawberry_schema.config, converter.scalar_registry
    installed: list[str] = []
    for type_ in schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField):
                continue
            direct = direct_resolver(definition, config, scalar_registry)
            if direct is not None:
                field.resolve = direct
                installed.append(f"{type_.name}.{name}")
    return installed


def direct_resolver(
    field: StrawberryField, config: StrawberryConfig, scalar_registry: Mapping[object, Any]
) -> Resolver | None:
    """The field's resolver as Strawberry's wrapper calls it, or None when the field
    needs that wrapper (no resolver of its own, extensions, a subscription, an argument
    Strawberry converts)."""
    resolver = field.base_resolver
    if resolver is None or field.extensions or field.is_subscription:
        return None
    if not all(_taken_as_given(argument, scalar_registry) for argument in field.arguments):
        return None
    names = tuple(
        (config.name_converter.from_argument(argument), argument.python_name)
        for argument in field.arguments
    )
    info_class = config.info_class
    with_self = resolver.self_parameter is not None
    parent = resolver.parent_parameter.name if resolver.parent_parameter else None
    root = resolver.root_parameter.name if resolver.root_parameter else None
    info_name = resolver.info_parameter.name if resolver.info_parameter else None

    def resolve(_source: Any, info: GraphQLResolveInfo, **given: Any) -> Any:
        strawberry_info = info_class(_raw_info=info, _field=field)
        kwargs = {python: given[graphql] for graphql, python in names if graphql in given}
        if parent is not None:
            kwargs[parent] = _source
        if root is not None:
            kwargs[root] = _source
        if info_name is not None:
            kwargs[info_name] = strawberry_info
        if with_self:
            return resolver(_source, **kwargs)
        return resolver(**kwargs)

    return resolve


def _taken_as_given(argument: StrawberryArgument, scalar_registry: Mapping[object, Any]) -> bool:
    """Whether Strawberry passes the argument's value on as graphql-core gives it: a
    scalar or an enum, optional or not (a GlobalID is decoded, a list copied, an input
    built)."""
    type_: StrawberryType | type = argument.type
    if isinstance(type_, StrawberryMaybe):
        return False
    if isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    if type_ is GlobalID:
        return False
    return (
        is_scalar(type_, scalar_registry)
        or isinstance(type_, StrawberryEnumDefinition)
        or (isinstance(type_, type) and has_enum_definition(type_))
    )
