"""schema/executor.py reads plain leaf fields directly: its answers, errors included, are
graphql-core's, field for field."""

import enum
from typing import Any

import pytest
import strawberry
from graphql import (
    ExecutionResult,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLError,
    execute,
    parse,
)
from graphql.execution import collect_fields
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from coursepulse.schema.executor import Executor, _enum_serializer, collected_for


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Row:
    name: str
    nickname: str | None
    size: int
    colour: Colour
    tags: list[str]

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


GOOD = Row(name="ada", nickname=None, size=3, colour=Colour.RED, tags=["x"])
#: Values a field's type refuses: null where non-null, an Int beyond 32 bits, no colour.
BAD = Row(name=None, nickname=None, size=2**40, colour="green", tags=[])  # type: ignore[arg-type]


@strawberry.type
class Query:
    @strawberry.field
    def rows(self) -> list[Row]:
        return [GOOD, BAD]

    @strawberry.field
    def row(self) -> Row | None:
        return BAD

    @strawberry.field
    def good_rows(self) -> list[Row]:
        return [GOOD, GOOD]


def schema_with(executor: type) -> strawberry.Schema:
    return strawberry.Schema(query=Query, execution_context_class=executor)


DOCUMENTS = [
    "{ rows { name nickname size colour tags shout } }",
    "{ row { name } }",
    "{ row { size } }",
    "{ row { colour } }",
    "{ rows { n: name alias: nickname ...F } } fragment F on Row { size colour }",
    "query($s: Boolean!) { rows { name @skip(if: $s) size @include(if: $s) shout(times: 2) } }",
    "{ rows { __typename name } }",
    "{ rows { name nickname size colour } }",
    "{ goodRows { n: name nickname size colour } first: goodRows { size } }",
    "{ goodRows { name ...F } } fragment F on Row { size colour }",
]


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_answers_and_errors_are_graphql_cores(document: str) -> None:
    variables: dict[str, Any] = {"s": True}
    ours = await schema_with(Executor).execute(document, variable_values=variables)
    general = await schema_with(StrawberryGraphQLCoreExecutionContext).execute(
        document, variable_values=variables
    )
    assert ours.data == general.data
    assert [error.formatted for error in ours.errors or []] == [
        error.formatted for error in general.errors or []
    ]


async def test_a_refused_value_is_reported_at_its_field() -> None:
    result = await schema_with(Executor).execute("{ row { size } }")
    (error,) = result.errors or []
    assert error.path == ["row", "size"]
    assert "Int cannot represent" in error.message
    assert result.data == {"row": None}


async def test_plain_leaves_skip_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only fields with a resolver of their own, and values that are errors, go the
    general way; a row's stored scalars and enums are read directly."""
    general: list[str] = []
    execute_field = StrawberryGraphQLCoreExecutionContext.execute_field

    def recording(self: Any, parent_type: Any, source: Any, details: Any, *rest: Any) -> Any:
        general.append(details[0].node.name.value)
        return execute_field(self, parent_type, source, details, *rest)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "execute_field", recording)
    result = await schema_with(Executor).execute("{ rows { name size colour shout } }")
    assert result.data is None  # the second row's null name nulls the list
    # rows and shout have resolvers; the second row stops at its null name
    assert sorted(general) == ["name", "rows", "shout"]


async def test_an_object_of_plain_leaves_is_read_as_one_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No field of a row whose selection is all plain leaves goes field by field."""
    fields: list[str] = []
    execute_field = Executor.execute_field

    def recording(self: Any, parent_type: Any, source: Any, details: Any, *rest: Any) -> Any:
        fields.append(details[0].node.name.value)
        return execute_field(self, parent_type, source, details, *rest)

    monkeypatch.setattr(Executor, "execute_field", recording)
    result = await schema_with(Executor).execute("{ goodRows { name nickname size colour } }")
    assert result.errors is None
    assert result.data == {
        "goodRows": [{"name": "ada", "nickname": None, "size": 3, "colour": "RED"}] * 2
    }
    assert fields == ["goodRows"]
    # The first row is read whole; the second, whose name its type refuses, goes field by
    # field and stops at that field's error
    fields.clear()
    result = await schema_with(Executor).execute("{ rows { name size } }")
    assert result.data is None
    assert fields == ["rows", "name"]


def test_selections_collected_once_serve_the_next_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = schema_with(Executor)._schema
    general = schema_with(StrawberryGraphQLCoreExecutionContext)._schema
    document = parse("{ goodRows { n: name ...F } rows { size } } fragment F on Row { size }")
    store = collected_for(document)
    assert store == {}
    expected = execute(general, document)
    first = execute(schema, document, executor_class=Executor, collected=store)
    assert isinstance(expected, ExecutionResult)
    assert isinstance(first, ExecutionResult)
    assert store, "the first request keeps what it collected"
    collections: list[object] = []
    collect_subfields = collect_fields.collect_subfields

    def counting(*args: Any, **kwargs: Any) -> Any:
        collections.append(args)
        return collect_subfields(*args, **kwargs)

    monkeypatch.setattr("graphql.execution.executor.collect_subfields", counting)
    second = execute(schema, document, executor_class=Executor, collected=store)
    assert isinstance(second, ExecutionResult)
    assert collections == []
    assert first.data == second.data == expected.data
    assert [e.formatted for e in second.errors or []] == [
        e.formatted for e in expected.errors or []
    ]


def test_selections_that_depend_on_variables_are_not_kept() -> None:
    assert collected_for(parse("query($s: Boolean!) { rows { name @skip(if: $s) } }")) is None
    assert (
        collected_for(
            parse(
                "query($s: Boolean!) { rows { ...F } } fragment F on Row { size @include(if: $s) }"
            )
        )
        is None
    )
    assert collected_for(parse("{ rows { ... @skip(if: true) { name } } }")) is None


async def test_a_list_of_plain_rows_is_read_in_one_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list whose items are all read as rows skips graphql-core's completion of each
    item; one item that needs more sends the whole list the general way, with its error."""
    items: list[object] = []
    complete_item = StrawberryGraphQLCoreExecutionContext.complete_list_item_value

    def recording(self: Any, item: Any, *rest: Any) -> Any:
        items.append(item)
        return complete_item(self, item, *rest)

    monkeypatch.setattr(
        StrawberryGraphQLCoreExecutionContext, "complete_list_item_value", recording
    )
    result = await schema_with(Executor).execute("{ goodRows { name size colour } }")
    assert result.errors is None
    assert result.data == {"goodRows": [{"name": "ada", "size": 3, "colour": "RED"}] * 2}
    assert items == []
    result = await schema_with(Executor).execute("{ goodRows { name tags } }")
    assert result.data == {"goodRows": [{"name": "ada", "tags": ["x"]}] * 2}
    assert len(items) == 4, "a list field in the selection: the general way (and its tags)"
    items.clear()
    result = await schema_with(Executor).execute("{ rows { name } }")
    assert result.data is None
    assert items == [GOOD, BAD]


@strawberry.type
class Odd:
    """Values a fast read must not take as they are: each type serializes them its own way."""

    flag: int
    big: int
    word: str
    ident: strawberry.ID


@strawberry.type
class OddQuery:
    @strawberry.field
    def odds(self) -> list[Odd]:
        return [
            Odd(flag=True, big=2**31 - 1, word=Colour.RED, ident=7),  # type: ignore[arg-type]
            Odd(flag=-(2**31), big=2**31, word="x", ident="7"),  # type: ignore[arg-type]
        ]


async def test_values_of_another_type_are_serialized_as_graphql_core_does() -> None:
    document = "{ odds { flag big word ident } }"
    ours = await strawberry.Schema(query=OddQuery, execution_context_class=Executor).execute(
        document
    )
    general = await strawberry.Schema(
        query=OddQuery, execution_context_class=StrawberryGraphQLCoreExecutionContext
    ).execute(document)
    assert ours.data == general.data
    assert [e.formatted for e in ours.errors or []] == [e.formatted for e in general.errors or []]
    assert ours.errors, "2**31 is beyond Int: an error at its field"


def test_an_enum_is_serialized_once_per_value_and_type() -> None:
    enum_type = GraphQLEnumType("Color", {"RED": GraphQLEnumValue("red")})
    serialize = _enum_serializer(enum_type)
    assert [serialize("red"), serialize("red")] == ["RED", "RED"]
    with pytest.raises(GraphQLError):
        serialize("blue")  # refused every time, never remembered
    with pytest.raises(GraphQLError):
        serialize("blue")
    with pytest.raises(GraphQLError):
        serialize(["red"])  # unhashable: serialized (and refused) as it comes
