"""graphql-core's `execute` for a document validated before, without redoing per request
what depends on the document alone.

On every request graphql-core's `Executor.build` finds the operation among the
document's definitions, collects its fragments and works out each variable's type from
its definition, before coercing the request's values. An `OperationPlan` keeps the
first three with the document (one per operation name); a request then only has its
values coerced, as graphql-core coerces them. Anything graphql-core would answer with
an error (no such operation, a value of the wrong type, a missing required variable)
is left to graphql-core's own `execute`, which words it: `run` returns None for it.

Relies on graphql-core 3.3's `Executor` constructor, `FragmentDetails`,
`get_variable_signature` and the value helpers of `graphql.execution.values` (pinned
in pyproject.toml).
"""

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    VariableDefinitionNode,
    default_field_resolver,
    default_type_resolver,
    is_non_null_type,
)
from graphql.execution.collect_fields import FragmentDetails
from graphql.execution.get_variable_signature import (
    GraphQLVariableSignature,
    get_variable_signature,
)
from graphql.execution.values import (
    VariableValues,
    VariableValueSource,
    input_is_nested_too_deeply,
    maybe_use_default_value,
)
from graphql.pyutils import Undefined
from graphql.utilities import coerce_input_value


@dataclass(frozen=True, slots=True)
class OperationPlan:
    """What graphql-core works out from the document for one operation."""

    operation: OperationDefinitionNode
    fragment_definitions: dict[str, FragmentDefinitionNode]
    fragments: dict[str, FragmentDetails]
    variables: tuple[tuple[VariableDefinitionNode, GraphQLVariableSignature], ...]


def plan_operation(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
) -> OperationPlan | None:
    """The operation's plan; None where graphql-core's `build` reports an error."""
    operation: OperationDefinitionNode | None = None
    fragment_definitions: dict[str, FragmentDefinitionNode] = {}
    fragments: dict[str, FragmentDetails] = {}
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            if operation_name is None:
                if operation is not None:
                    return None  # several operations and no name
                operation = definition
            elif definition.name and definition.name.value == operation_name:
                operation = definition
        elif isinstance(definition, FragmentDefinitionNode):
            fragment_definitions[definition.name.value] = definition
            signatures: dict[str, GraphQLVariableSignature] | None = None
            if definition.variable_definitions:
                signatures = {}
                for variable in definition.variable_definitions:
                    signature = get_variable_signature(schema, variable)
                    if isinstance(signature, GraphQLError):
                        return None
                    signatures[signature.name] = signature
            fragments[definition.name.value] = FragmentDetails(definition, signatures)
    if operation is None:
        return None
    variables: list[tuple[VariableDefinitionNode, GraphQLVariableSignature]] = []
    for variable in operation.variable_definitions or ():
        signature = get_variable_signature(schema, variable)
        if isinstance(signature, GraphQLError):
            return None
        variables.append((variable, signature))
    return OperationPlan(operation, fragment_definitions, fragments, tuple(variables))


def coerce_variables(plan: OperationPlan, inputs: dict[str, Any]) -> VariableValues | None:
    """The request's variables coerced as graphql-core's `coerce_variable_values` does;
    None when one of them needs its error reported."""
    sources: dict[str, VariableValueSource] = {}
    coerced: dict[str, Any] = {}
    failed: list[GraphQLError] = []
    for variable, signature in plan.variables:
        name, type_ = signature.name, signature.type
        value = inputs.get(name, Undefined)
        if value is Undefined:
            sources[name] = VariableValueSource(signature)
            if variable.default_value:
                maybe_use_default_value(
                    coerced, name, signature, lambda error, _path: failed.append(error)
                )
                if failed:
                    return None
                continue
            if not is_non_null_type(type_):
                continue  # a nullable variable not given is left out
            return None  # a required one is missing
        sources[name] = VariableValueSource(signature, value)
        if input_is_nested_too_deeply(value, type_):
            return None
        coerced_value = coerce_input_value(value, type_)
        if coerced_value is Undefined:
            return None
        coerced[name] = coerced_value
    return VariableValues(sources, coerced)


def run(
    plan: OperationPlan,
    schema: GraphQLSchema,
    executor_class: type[Any],
    variables: dict[str, Any] | None,
    context: Any,
    **executor_args: Any,
) -> Any:
    """The operation's result (or an awaitable of it) as graphql-core's `execute` gives
    it; None when its variables need graphql-core's error report."""
    variable_values = coerce_variables(plan, variables or {})
    if variable_values is None:
        return None
    executor = executor_class(
        schema,
        plan.fragment_definitions,
        plan.fragments,
        None,
        context,
        plan.operation,
        variable_values,
        default_field_resolver,
        default_type_resolver,
        default_field_resolver,
        **executor_args,
    )
    return executor.execute_operation()


def single_result(result: Any) -> ExecutionResult:
    """The result itself: the schema has no `@defer` or `@stream`, so there is one."""
    if not isinstance(result, ExecutionResult):
        raise GraphQLError(
            "Executing this GraphQL operation would unexpectedly produce"
            " multiple payloads (due to @defer or @stream directive)"
        )
    return result
