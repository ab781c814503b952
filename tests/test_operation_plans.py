"""An operation run from its kept plan answers as graphql-core's `execute` does, and
leaves every request graphql-core would refuse to `execute`."""

from typing import Any

import pytest
from graphql import ExecutionResult, build_schema, execute, parse
from graphql.execution import Executor

from coursepulse.schema.operation_plans import plan_operation, run

SCHEMA = build_schema("""
enum Shade { LIGHT DARK }
input Range { from: Int! = 1, to: Int }
type Query {
  echo(text: String, times: Int = 1, shade: Shade, range: Range, tags: [String!]): String
}
""")


def echo(_root: Any, _info: Any, **arguments: Any) -> str:
    """What the field was given, as text."""
    return repr(sorted(arguments.items()))


SCHEMA.query_type.fields["echo"].resolve = echo  # type: ignore[union-attr]

DOCUMENT = parse("""
query Echo($text: String, $times: Int = 2, $shade: Shade! = DARK, $range: Range,
           $tags: [String!]) {
  echo(text: $text, times: $times, shade: $shade, range: $range, tags: $tags)
  ...More
}
query Required($text: String!) { echo(text: $text) }
fragment More on Query { again: echo(text: "fragment") }
""")

RUNS = [
    ("Echo", {}),
    ("Echo", {"text": "hi", "times": 3, "shade": "LIGHT"}),
    ("Echo", {"text": None, "times": None}),
    ("Echo", {"range": {"to": 5}, "tags": "one"}),
    ("Echo", {"range": {"from": 2, "to": None}, "tags": ["a", "b"]}),
    ("Required", {"text": "given"}),
]
#: Requests graphql-core answers with an error: left to it.
REFUSED = [
    ("Required", {}),
    ("Required", {"text": None}),
    ("Echo", {"times": "three"}),
    ("Echo", {"shade": "PURPLE"}),
    ("Echo", {"range": {"to": 1, "extra": 2}}),
]


def _executed(operation_name: str, variables: dict[str, Any]) -> ExecutionResult:
    result = execute(SCHEMA, DOCUMENT, variable_values=variables, operation_name=operation_name)
    assert isinstance(result, ExecutionResult)
    return result


@pytest.mark.parametrize(("operation_name", "variables"), RUNS)
def test_a_planned_run_answers_as_execute(operation_name: str, variables: dict[str, Any]) -> None:
    plan = plan_operation(SCHEMA, DOCUMENT, operation_name)
    assert plan is not None
    planned = run(plan, SCHEMA, Executor, variables, None)
    assert planned is not None
    expected = _executed(operation_name, variables)
    assert isinstance(planned, ExecutionResult)
    assert (planned.data, planned.errors) == (expected.data, expected.errors)
    assert planned.data is not None
    assert all(value and value.startswith("[") for value in planned.data.values())


@pytest.mark.parametrize(("operation_name", "variables"), REFUSED)
def test_a_request_graphql_core_refuses_is_left_to_execute(
    operation_name: str, variables: dict[str, Any]
) -> None:
    plan = plan_operation(SCHEMA, DOCUMENT, operation_name)
    assert plan is not None
    assert run(plan, SCHEMA, Executor, variables, None) is None
    assert _executed(operation_name, variables).errors


def test_an_operation_graphql_core_cannot_pick_has_no_plan() -> None:
    assert plan_operation(SCHEMA, DOCUMENT, None) is None  # two operations, no name
    assert plan_operation(SCHEMA, DOCUMENT, "Missing") is None
    assert plan_operation(SCHEMA, parse("{ echo }"), None) is not None
